"""The translator (issue 13): training on a tiny Multi30k-layout corpus, the shared search,
model directories, the commands, and captions in another language."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captioner.beam_search import beam_search
from captioner.checkpoint import CheckpointError
from captioner.cli import run_command
from captioner.data.common import DataError
from captioner.decoding import GenerationConfig, generate
from captioner.translation import (
    TranslationModel,
    TranslatorNotFoundError,
    UnknownLanguageError,
    find_translator,
)
from captioner.translator_net import SPECIAL_IDS, Translator, TranslatorConfig

SUBJECTS = [("a dog", "ein hund"), ("a man", "ein mann"), ("a woman", "eine frau"),
            ("a child", "ein kind"), ("two men", "zwei männer")]  # fmt: skip
VERBS = [("runs on the grass.", "läuft auf dem gras."), ("sits on a bench.", "sitzt auf einer bank."),
         ("plays in the water.", "spielt im wasser."),
         ("rides a red bike.", "fährt ein rotes fahrrad.")]  # fmt: skip
EN = [f"{s.capitalize()} {v}" for s, _ in SUBJECTS for v, _ in VERBS]  # 20 pairs
DE = [f"{s.capitalize()} {v}" for _, s in SUBJECTS for _, v in VERBS]
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"


def write_corpus(root: Path, en=EN, de=DE) -> Path:
    """A folder in Multi30k's layout: raw/SPLIT.LANG.gz and tok/SPLIT.lc.norm.tok.LANG."""
    (root / "raw").mkdir(parents=True)
    (root / "tok").mkdir()
    for split in ("train", "val", "test_2016_flickr"):
        for lang, lines in (("en", en), ("de", de)):
            with gzip.open(root / "raw" / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        if split != "train":
            tok = [t.lower().replace(".", " .") for t in de]
            (root / "tok" / f"{split}.lc.norm.tok.de").write_text("\n".join(tok) + "\n")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("m30k") / "multi30k")


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """(model directory, final report) of the recipe on the 20 pairs, tiny settings."""
    from captioner.pipelines.train_translator import TranslateTrainConfig, train

    out = tmp_path_factory.mktemp("tr") / "translate-en-de"
    cfg = TranslateTrainConfig(
        dataset=f"multi30k:{corpus}", out=str(out), vocab_size=100, embed_dim=32, hidden_dim=32,
        attention_dim=32, dropout=0.0, label_smoothing=0.0, epochs=20, batch_size=10, lr=0.03,
        warmup=0, patience=4, threads=1, plot_every=0, device="cpu",
    )  # fmt: skip
    return out, train(cfg)


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_the_recipe_overfits_20_sentence_pairs(trained):
    out, report = trained
    scores = report["test"]["scores"]
    assert scores["BLEU detok"] > 95 and scores["BLEU tok"] > 95, report["test"]["examples"]
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "run", "subwords.model"
    ]  # fmt: skip
    steps = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r["type"] == "step"]
    assert losses[-1] < 0.1 * losses[0]
    assert TranslationModel.load(out).translate(EN[:3]) == DE[:3]


def test_resume_keeps_the_runs_subwords(corpus, tmp_path, monkeypatch):
    from captioner.pipelines.train_translator import TranslateTrainConfig, train
    from captioner.subwords import Subwords

    out = tmp_path / "tr"
    cfg = TranslateTrainConfig(
        dataset=f"multi30k:{corpus}", out=str(out), vocab_size=100, embed_dim=16, hidden_dim=16,
        attention_dim=16, epochs=2, stop_after=1, batch_size=10, threads=1, plot_every=0,
        device="cpu", test_split="",
    )  # fmt: skip
    train(cfg)
    learnt = (out / "run" / "subwords.model").read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run must not learn new subwords")

    monkeypatch.setattr(Subwords, "train", refuse)
    cfg.resume, cfg.stop_after = True, 0
    train(cfg)
    epochs = [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["type"] == "epoch"] == [1, 2]
    assert (out / "subwords.model").read_bytes() == learnt


def test_every_translator_parameter_learns_at_lr():
    from captioner.pipelines.train_translator import TranslateTrainConfig, optimizer_groups

    cfg = TranslateTrainConfig(dataset="multi30k:x", out="x", lr=0.01, encoder_lr=1e-5)
    model = Translator(TranslatorConfig(vocab_size=40, embed_dim=8, hidden_dim=8))
    groups = optimizer_groups(model, cfg)
    assert {g["lr"] for g in groups} == {0.01}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert any(p is model.encoder.weight_ih_l0 for g in groups for p in g["params"])


def _manual_greedy(model: Translator, src, lengths, steps: int) -> list[list[int]]:
    step, state = model.start(src, lengths)
    tokens = torch.full((src.size(0),), SPECIAL_IDS.bos_id)
    rows = [[] for _ in range(src.size(0))]
    for _ in range(steps):
        logits, state, _ = step(tokens, state)
        logits[:, [SPECIAL_IDS.pad_id, SPECIAL_IDS.bos_id, *SPECIAL_IDS.banned]] = -float("inf")
        tokens = logits.argmax(-1)
        for row, t in zip(rows, tokens.tolist()):
            row.append(t)
    return [r[: r.index(SPECIAL_IDS.eos_id)] if SPECIAL_IDS.eos_id in r else r for r in rows]


@pytest.mark.parametrize("attention,cell", [("bahdanau", "gru"), ("luong", "lstm")])
def test_beam_1_equals_greedy(attention, cell):
    torch.manual_seed(1)
    config = TranslatorConfig(vocab_size=40, embed_dim=16, hidden_dim=16, attention_dim=16,
                              attention=attention, decoder_cell=cell, encoder_cell=cell)  # fmt: skip
    model = Translator(config).eval()
    src = torch.randint(4, 40, (5, 7))
    lengths = torch.tensor([7, 3, 5, 1, 6])
    src[torch.arange(7)[None] >= lengths[:, None]] = 0
    config = GenerationConfig(method="greedy", max_length=12, avoid_dangling=False)
    greedy = generate(*model.start(src, lengths), SPECIAL_IDS, config).tokens
    beam1, *_ = beam_search(*model.start(src, lengths), SPECIAL_IDS, [], beam_size=1,
                            max_length=12, length_penalty=0.0, trim=False)  # fmt: skip
    assert greedy == beam1 == _manual_greedy(model, src, lengths, 12)
    # a padded sentence translates as it does alone (the source mask works)
    alone = generate(*model.start(src[1:2, :3], lengths[1:2]), SPECIAL_IDS, config).tokens
    assert alone[0] == greedy[1]


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_a_saved_translator_reloads_with_the_same_output(trained, tmp_path):
    out, _ = trained
    model = TranslationModel.load(out)
    texts = ["A dog plays in the water.", "Two men sit on a red bench."]
    copy = TranslationModel.load(model.save(tmp_path / "copy"))
    assert copy.translate(texts, beam_size=3) == model.translate(texts, beam_size=3)
    for k, v in model.model.state_dict().items():
        assert torch.equal(v, copy.model.state_dict()[k]), k
    half = TranslationModel.load(model.save(tmp_path / "half", dtype=torch.float16))
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < (
        tmp_path / "copy" / "model.safetensors"
    ).stat().st_size * 0.6
    assert half.translate(EN[:4]) == DE[:4]


def _copy_dir(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_a_malformed_translator_directory_is_one_clear_error(trained, tmp_path):
    out, _ = trained
    broken = _copy_dir(out, tmp_path / "no-subwords")
    (broken / "subwords.model").unlink()
    with pytest.raises(CheckpointError, match=r"subwords\.model: missing file"):
        TranslationModel.load(broken)
    garbled = _copy_dir(out, tmp_path / "garbled")
    (garbled / "subwords.model").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"garbled/subwords\.model: not a SentencePiece"):
        TranslationModel.load(garbled)
    resized = _copy_dir(out, tmp_path / "resized")
    config = json.loads((resized / "config.json").read_text())
    config["translator"]["hidden_dim"] = 48
    (resized / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model\.safetensors and config\.json"):
        TranslationModel.load(resized)
    config["translator"] = {**config["translator"], "hidden_dim": 32, "attention": "cosine"}
    (resized / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json.*attention must be one of"):
        TranslationModel.load(resized)
    from captioner.api import Captioner

    with pytest.raises(CheckpointError, match="en->de translator, not a captioner"):
        Captioner.from_pretrained(out)


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_languages_and_missing_translators_are_clear_errors(trained, tmp_path, monkeypatch):
    import captioner.translation as tr

    with pytest.raises(UnknownLanguageError, match=r"unknown language 'xx'.*de \(German\)"):
        find_translator("xx")
    monkeypatch.setattr(tr, "BUNDLED_DIR", tmp_path)
    with pytest.raises(
        TranslatorNotFoundError,
        match=r"no EN->FR translator bundled.*"
        r"captioner train translate --dataset multi30k:DIR --src en --tgt fr",
    ):
        find_translator("fr")
    with pytest.raises(UnknownLanguageError, match="translates en->de, not en->fr"):
        find_translator("fr", path=trained[0])
    assert tr.available_languages() == [("en", "English")]
    _copy_dir(trained[0], tmp_path / "translate-en-de")
    assert tr.available_languages() == [("en", "English"), ("de", "German")]
    assert find_translator("DE").translate(EN[:1]) == DE[:1]


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_translate_command(trained, capsys, monkeypatch):
    out = str(trained[0])
    assert run_command("translate", [EN[0], EN[5], "--to", "de", "--translator", out]) == 0
    assert capsys.readouterr().out.splitlines() == [DE[0], DE[5]]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{EN[2]}\n\n{EN[3]}\n"))
    assert run_command("translate", ["--to", "de", "--translator", out, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"text": EN[i], "translation": DE[i], "lang": "de"} for i in (2, 3)]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{EN[4]}\n"))  # a lone '-' reads stdin too
    assert run_command("translate", ["-", "--to", "de", "--translator", out]) == 0
    assert capsys.readouterr().out.splitlines() == [DE[4]]
    assert run_command("translate", ["x", "--to", "xx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("captioner translate: error: unknown language 'xx'") and "\n" not in err
    missing = str(trained[0].parent / "nope")
    assert run_command("translate", ["x", "--to", "de", "--translator", missing]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"captioner translate: error: {missing}: not a model directory"


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_eval_reports_both_bleu_scores(trained, corpus, capsys):
    args = ["--model", str(trained[0]), "--dataset", f"multi30k:{corpus}", "--json"]
    assert run_command("eval", [*args, "--split", "validation", "--limit", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 8 and result["pair"] == "en-de"
    assert set(result["scores"]) == {"BLEU tok", "BLEU detok"} == set(result["labels"])
    assert min(result["scores"].values()) > 95
    assert "tok:none" in result["signatures"]["BLEU tok"]
    bad = run_command("eval", [*args[:3], f"multi30k:{corpus}?tgt=fr"])
    assert bad == 2 and "does not match the translator's pair en->de" in capsys.readouterr().err


@pytest.mark.slow
def test_label_lang_de_writes_both_captions(trained, tmp_path, monkeypatch, capsys):
    from tests_support import tiny_model_dir

    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    model = tiny_model_dir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((24, 24, 3), 60 * i, np.uint8)).save(photos / f"p{i}.png")
    args = [str(photos), "--model", str(model), "--workers", "0", "--backend", "torch"]
    lang = ["--lang", "de", "--translator", str(trained[0]), "--format", "csv"]
    assert run_command("label", [*args, *lang]) == 0
    rows = [json.loads(x) for x in (photos / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    translator = TranslationModel.load(trained[0])
    for row in rows:
        assert row["caption"] and set(row["translations"]) == {"de"}
        assert row["translations"]["de"] == translator.translate([row["caption"]])[0]
    with (photos / "labels.csv").open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))  # labels.csv keeps the translation too, last
    assert list(table[0])[-2:] == ["model", "caption_de"]
    assert {r["path"]: r["caption_de"] for r in table} == {
        r["path"]: r["translations"]["de"] for r in rows
    }
    img = str(photos / "p1.png")
    args = [img, "--model", str(model), "--backend", "torch", "--json"]
    assert run_command("caption", [*args, "--lang", "de", "--translator", str(trained[0])]) == 0
    (row,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert row["translations"] == {"de": translator.translate([row["caption"]])[0]}
    from captioner.api import Captioner

    cap = Captioner.from_pretrained(model, backend="torch")
    english = cap.caption(photos / "p1.png")
    german = cap.caption(photos / "p1.png", lang="DE", translator=trained[0])
    assert german == translator.translate(english)
    (found,) = cap.describe(photos / "p1.png", lang="de")  # the translator stays loaded
    assert found.caption == english[0] and found.to_record()["translations"] == {"de": german[0]}
    assert "translations" not in cap.describe(photos / "p1.png")[0].to_record()


def test_multi30k_spec(corpus, tmp_path, capsys):
    from captioner.data.spec import dataset_kind, load_translation_dataset

    assert dataset_kind(f"multi30k:{corpus}") == "translation"
    dsd = load_translation_dataset(f"multi30k:{corpus}?limit=4")
    assert list(dsd) == ["train", "validation", "test"]
    assert dsd["test"][3] == {"source": EN[3], "target": DE[3], "id": 3}
    with pytest.raises(DataError, match="src must be one of en, de, fr, cs"):
        load_translation_dataset(f"multi30k:{corpus}?src=xx")
    with pytest.raises(DataError, match="no raw/ folder"):
        load_translation_dataset(f"multi30k:{tmp_path}")
    assert run_command("data", ["info", f"multi30k:{corpus}"]) == 0
    assert re.search(r"validation\s+20 rows", capsys.readouterr().out)
    short = write_corpus(tmp_path / "short", en=EN, de=DE[:-1])
    with pytest.raises(DataError, match=r"train\.en\.gz has 20 lines but .*train\.de\.gz has 19"):
        load_translation_dataset(f"multi30k:{short}")


def test_tokenised_bleu_follows_the_published_tokenisation():
    from captioner.pipelines.translate_eval import bleu_scores, moses_tokenise

    assert moses_tokenise(["Un groupe d'hommes."], "fr") == ["un groupe d&apos; hommes ."]
    same = bleu_scores(DE, DE, lang="de", tokenised_references=moses_tokenise(DE, "de"))
    assert same["BLEU tok"] == same["BLEU detok"] == 100.0
    worse = bleu_scores(DE[::-1], DE, lang="de")
    assert 0 <= worse["BLEU detok"] < 50 and "BLEU tok" not in worse


@pytest.mark.skipif(not REAL.is_dir(), reason=f"Multi30k is not at {REAL} (../shared/data)")
def test_real_multi30k_layout():
    from captioner.data.multi30k import load_multi30k, tokenised_references

    dsd = load_multi30k(str(REAL), tgt="fr")
    assert (len(dsd["train"]), len(dsd["validation"]), len(dsd["test"])) == (29000, 1014, 1000)
    refs = tokenised_references(REAL, "test", "fr")
    assert len(refs) == 1000 and refs[0] == refs[0].lower()


@pytest.mark.slow  # the `trained` fixture: 5-9 s of training
def test_release_bundles_a_trained_translator_with_its_scores_and_card(trained, corpus, tmp_path):
    from captioner.pipelines import translators

    out, report = trained
    row = translators.bundle(out, tmp_path / "translate-en-de", corpus)
    bundled = tmp_path / "translate-en-de"
    assert sorted(p.name for p in bundled.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "scores.json", "subwords.model"
    ]  # fmt: skip
    assert TranslationModel.load(bundled).translate(EN[:3]) == TranslationModel.load(out).translate(
        EN[:3]
    )
    assert row == json.loads((bundled / "scores.json").read_text())["multi30k/test_2016_flickr"]
    assert row["n"] == 20 and row["BLEU detok"] == report["test"]["scores"]["BLEU detok"]
    assert row["BLEU tok"] > 50  # the 20 pairs it learnt by heart
    card = (bundled / "README.md").read_text()
    assert "pipeline_tag: translation" in card and "Multi30k task 1" in card
    assert "Translator EN->DE: bidirectional GRU encoder" in card and "| BLEU tok |" in card
    assert "image-to-text" not in card


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason=f"Multi30k is not at {REAL} (../shared/data)")
@pytest.mark.parametrize(("lang", "floor"), [("de", 28.0), ("fr", 44.0)])
def test_bundled_translator_on_the_first_50_test_sentences(lang, floor):
    """README, BLEU tok on all 1,000: EN->DE 30.29, EN->FR 48.50; the first 50: 32.1, 48.1."""
    from captioner.data.multi30k import load_multi30k, tokenised_references
    from captioner.pipelines.translate_eval import evaluate_translator

    test = load_multi30k(str(REAL), tgt=lang)["test"].select(range(50))
    refs = tokenised_references(REAL, "test", lang)[:50]
    found = evaluate_translator(find_translator(lang), test, tokenised_references=refs)
    assert found["scores"]["BLEU tok"] >= floor, found["examples"]
