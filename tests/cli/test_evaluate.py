"""`captioner eval`: caption metrics from real decoding, JSON / table output, sentiment."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from tests_support import tiny_captioner, tiny_model_dir

from captioner import evaluation as ev
from captioner.cli import run_command
from captioner.data.scenes import build_scene_dataset

SPEC = "scenes:2?num_eval=3&image_size=48"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("eval"), encoder="mobilenet_v3_small")


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = run_command("eval", list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_eval_json_scores_the_models_own_decoding(model_dir, capsys):
    code, out, _ = _run(capsys, "--model", str(model_dir), "--dataset", SPEC, "--split", "test",
                        "--beam-size", "2", "--no-meteor", "--json", "--device", "cpu")  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert (result["split"], result["n"], result["dataset"]) == ("test", 3, SPEC)
    assert result["decoding"] == {"method": "beam", "beam_size": 2, "max_length": 20}
    scores = result["scores"]
    expected = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D", "scene_f1"}
    assert expected <= set(scores) and "METEOR" not in scores
    # the same numbers as decoding with the API and scoring those captions
    from captioner import Captioner

    split = build_scene_dataset(num_train=2, num_eval=3, image_size=48)["test"]
    hyps = Captioner.from_pretrained(model_dir, device="cpu").caption(
        [r["image"] for r in split], beam_size=2
    )
    again = ev.caption_scores(split["captions"], hyps, meteor=False, scenes=split["scene"])
    assert scores == pytest.approx(again)
    assert [e["caption"] for e in result["examples"]] == hyps


def test_eval_table_limit_and_greedy(model_dir, capsys):
    code, out, _ = _run(capsys, "--model", str(model_dir), "--dataset", SPEC, "--split",
                        "validation", "--limit", "2", "--beam-size", "1", "--no-meteor")  # fmt: skip
    assert code == 0
    assert "items 2" in out and "decoding greedy" in out
    assert "CIDEr-D" in out and "scene_f1" in out


def test_eval_errors(model_dir, tmp_path, capsys):
    code, _, err = _run(capsys, "--model", str(model_dir), "--dataset", SPEC, "--split", "nope")
    assert code == 2 and "no split 'nope'" in err
    assert (
        run_command("eval", ["--model", str(model_dir), "--dataset", SPEC, "--beam-size", "0"]) == 2
    )
    tagger = tiny_captioner(encoder="mobilenet_v3_small", sentiment=False)
    tagger.decoder = tagger.vocab = None
    no_decoder = tagger.save_pretrained(tmp_path / "tagger")
    code, _, err = _run(capsys, "--model", str(no_decoder), "--dataset", SPEC)
    assert code == 2 and "no caption decoder" in err


def test_decode_grids_matches_the_api(model_dir):
    from captioner import Captioner

    model = Captioner.from_pretrained(model_dir, device="cpu")
    images = [torch.rand(3, 40, 40) for _ in range(3)]
    grid, _ = model.encoder(model.preprocess(images))
    for beam in (1, 3):
        mine = ev.decode_grids(model.decoder, model.vocab, grid, beam_size=beam, batch_size=2)
        api = model.caption(images, beam_size=beam, method="beam" if beam > 1 else "greedy")
        assert mine == api


def test_caption_scores_on_perfect_captions():
    split = build_scene_dataset(num_train=0, num_eval=3, image_size=32)["test"]
    refs = split["captions"]
    perfect = ev.caption_scores(refs, [r[0] for r in refs], meteor=False, scenes=split["scene"])
    assert perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["scene_f1"] == 1.0
    wrong = ev.caption_scores(refs, ["a dog"] * 3, meteor=False, scenes=split["scene"])
    assert wrong["CIDEr-D"] < perfect["CIDEr-D"] and wrong["scene_f1"] == 0.0
    with pytest.raises(ValueError, match="3 reference sets but 2 hypotheses"):
        ev.caption_scores(refs, ["a", "b"])


def test_eval_sentiment_accuracy_and_per_class(model_dir, tmp_path, capsys):
    from captioner import Captioner

    path = tmp_path / "reviews.csv"
    words = ["good day", "lovely circle", "bad day", "awful square", "good circle", "bad"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(30):
            w.writerow([words[i % 6], "positive" if i % 6 in (0, 1, 4) else "negative"])
    spec = f"sentiment-csv:{path}"
    code, out, _ = _run(capsys, "--model", str(model_dir), "--dataset", spec, "--split", "test",
                        "--json")  # fmt: skip
    assert code == 0
    result = json.loads(out)
    from captioner.data import load_sentiment_dataset

    split = load_sentiment_dataset(spec)["test"]
    names = split.features["label"].names
    pred = Captioner.from_pretrained(model_dir, device="cpu").sentiment(split["text"])
    expected = sum(p == names[g] for (p, _), g in zip(pred, split["label"])) / len(split)
    assert result["n"] == len(split) and result["scores"]["accuracy"] == pytest.approx(expected)
    assert set(result["per_class"]) <= {"negative", "positive"}
    assert sum(c["support"] for c in result["per_class"].values()) == len(split)
    code, out, _ = _run(capsys, "--model", str(model_dir), "--dataset", spec, "--split", "test")
    assert code == 0 and "accuracy" in out


def test_caption_stats_counts_dangling_endings_lengths_and_distinct_captions():
    from captioner.evaluation import caption_stats

    refs = [["a dog runs on the grass", "a brown dog runs"], ["two men ride bikes", "men ride"]]
    hyps = ["a dog runs on the", "a dog runs on the", "two men ride bikes", ""]
    stats = caption_stats(refs + refs, hyps)
    assert stats["dangling_end"] == pytest.approx(2 / 4)  # "the" twice; "" is not dangling
    assert stats["empty"] == pytest.approx(1 / 4)
    assert stats["mean_length"] == pytest.approx((5 + 5 + 4 + 0) / 4)
    assert stats["reference_mean_length"] == pytest.approx((6 + 4 + 4 + 2) / 4)
    assert stats["distinct"] == pytest.approx(3 / 4)
