"""One record: `captioner label`, `captioner describe --json` and the demo's batch tab write
the same fields with the same values (`Description.to_record`), and heads are chosen by one
rule (`Heads.select`)."""

from __future__ import annotations

import json

import pytest
from labeling_support import make_photos
from tests_support import tiny_captioner

from captioner.api import SCORE_DIGITS, Description, Heads
from captioner.cli.infer import main as infer_main
from captioner.decoding import GenerationConfig
from captioner.demo import batch as batching
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.recognition import RecognitionConfig, RecognitionHead

FIELDS = ("caption", "tags", "sentiment")


@pytest.fixture(scope="module")
def model_and_dir(tmp_path_factory):
    model = tiny_captioner()
    labels = ["cat", "dog", "bird", "car", "tree", "house"]
    model.recognizer = RecognitionHead(RecognitionConfig(in_dim=model.encoder.out_channels, labels=labels))  # fmt: skip
    out = model.save_pretrained(tmp_path_factory.mktemp("rec") / "m")
    return model, out


@pytest.mark.slow
def test_label_describe_json_and_demo_batch_give_the_same_records(model_and_dir, tmp_path, capsys):
    model, directory = model_and_dir
    photos = tmp_path / "photos"
    rels = make_photos(photos, 4, sub_every=0)
    paths = [str(photos / r) for r in rels]

    engine = LabelEngine(
        model, EngineOptions(backend="torch", generation=GenerationConfig(beam_size=3), top_k=3)
    )
    label_folders([photos], engine, LabelOptions(out=tmp_path / "l.jsonl", progress=False))
    lines = (tmp_path / "l.jsonl").read_text().splitlines()
    labelled = {r["path"]: r for r in map(json.loads, lines)}

    argv = ["describe", *paths, "--model", str(directory), "--device", "cpu",
            "--backend", "torch", "--top-k", "3", "--json"]  # fmt: skip
    assert infer_main(argv) == 0
    described = {json.loads(x)["path"]: json.loads(x) for x in capsys.readouterr().out.splitlines()}

    items = list(batching.iter_batch_items(paths, work_dir=tmp_path))
    demo = {r["path"]: r for r in batching.describe_items(model, items, tags=3, beam_size=3)}

    api = model.describe(paths, tags=3, beam_size=3)
    for rel, path, d in zip(rels, paths, api):
        want = d.to_record()
        assert set(want) == set(FIELDS)
        got = [labelled[rel], described[path], demo[rel]]
        for record in got:
            assert {f: record[f] for f in FIELDS} == want
        assert all(round(t["score"], SCORE_DIGITS) == t["score"] for t in want["tags"])
        assert len(want["tags"]) == 3 and want["sentiment"]["label"] in ("negative", "positive")


def test_records_say_none_for_missing_heads_and_round_scores():
    d = Description("a cat", None, ("positive", 0.123456789))
    assert d.to_record() == {
        "caption": "a cat",
        "tags": None,
        "sentiment": {"label": "positive", "score": 0.1235},
    }
    assert Description(None, [("cat", 0.5)]).to_record()["tags"] == [{"label": "cat", "score": 0.5}]


def test_one_head_selection_rule_for_the_api_and_labeling(model_and_dir):
    model, _ = model_and_dir
    assert Heads.select(model) == Heads(caption=True, tags=True, sentiment=True)
    assert Heads.select(model, tags=False, sentiment=False) == Heads(True, False, False)
    engine = LabelEngine(model, EngineOptions(backend="torch"))
    assert engine.available_heads == {"caption": True, "tags": True, "sentiment": True}
    tagger = tiny_captioner(sentiment=True)
    tagger.decoder = tagger.vocab = None  # no caption: no sentiment of it either
    assert Heads.select(tagger) == Heads(caption=False, tags=False, sentiment=False)
