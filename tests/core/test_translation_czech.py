"""Issue 26: English -> Czech end to end (train, average the last epochs, evaluate, list the
language only when a translator is installed), Czech tokenisation for `BLEU tok`, and the
release recipe for all three directions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from captioner.cli import run_command
from captioner.translation import TranslationModel, check_language

EN = ["A dog runs on the grass.", "Two men sit on a bench.", "A child plays in the water.",
      "A woman rides a red bike.", "Three dogs run on the beach.", "A man sits on a bench.",
      "Two children play in the water.", "A dog plays on the beach."]  # fmt: skip
CS = ["Pes běží po trávě.", "Dva muži sedí na lavičce.", "Dítě si hraje ve vodě.",
      "Žena jede na červeném kole.", "Tři psi běží po pláži.", "Muž sedí na lavičce.",
      "Dvě děti si hrají ve vodě.", "Pes si hraje na pláži."]  # fmt: skip
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"


def write_czech_corpus(root: Path) -> Path:
    """Multi30k's layout for en/cs: train, val, test_2016_flickr and test_2018_flickr (no
    test_2017 files, as in the real folder), tok/ for val and test_2016_flickr."""
    from captioner.pipelines.translate_eval import moses_tokenise

    (root / "raw").mkdir(parents=True)
    (root / "tok").mkdir()
    for stem in ("train", "val", "test_2016_flickr", "test_2018_flickr"):
        for lang, lines in (("en", EN), ("cs", CS)):
            with gzip.open(root / "raw" / f"{stem}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        if stem in ("val", "test_2016_flickr"):
            tok = "\n".join(moses_tokenise(CS, "cs")) + "\n"
            (root / "tok" / f"{stem}.lc.norm.tok.cs").write_text(tok, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_czech_corpus(tmp_path_factory.mktemp("m30k-cs") / "multi30k")


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from captioner.pipelines.train_translator import TranslateTrainConfig, train

    out = tmp_path_factory.mktemp("tr-cs") / "translate-en-cs"
    cfg = TranslateTrainConfig(
        dataset=f"multi30k:{corpus}", out=str(out), tgt="cs", vocab_size=90, embed_dim=32,
        hidden_dim=32, attention_dim=32, dropout=0.0, label_smoothing=0.0, epochs=40,
        batch_size=8, lr=0.01, warmup=0, patience=0, threads=1, plot_every=0, device="cpu",
        average_last=3,
    )  # fmt: skip
    return out, train(cfg)


@pytest.mark.slow  # the `trained` fixture: 10-14 s of training
def test_czech_trains_averages_and_scores(trained):
    out, report = trained
    assert report["pair"] == "en-cs" and report["test"]["pair"] == "en-cs"
    assert report["test"]["scores"]["BLEU tok"] > 80, report["test"]["examples"]
    averaged = report["averaged"]
    assert averaged["epochs"] == [38, 39, 40] and isinstance(averaged["chosen"], bool)
    kept = sorted(p.name for p in (out / "run" / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["epoch-0038", "epoch-0039", "epoch-0040"]  # --average-last keeps 3
    assert "dropped_number" in report["test"]["errors"]  # Czech error counts work
    model = TranslationModel.load(out)
    assert model.pair == ("en", "cs") and model.translate(EN[:2]) == CS[:2]


@pytest.mark.slow  # the `trained` fixture: 10-14 s of training
def test_eval_command_scores_a_czech_run_on_test(trained, corpus, capsys):
    out, _ = trained
    args = ["--model", str(out), "--dataset", f"multi30k:{corpus}", "--split", "test"]
    assert run_command("eval", [*args, "--json", "--beam-size", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pair"] == "en-cs" and result["n"] == len(EN)
    assert set(result["scores"]) == {"BLEU tok", "BLEU detok"}
    assert result["decoding"]["length_penalty"] == 0.0  # the translator's own ranking
    assert run_command("eval", args) == 0
    text = capsys.readouterr().out
    assert "pair en-cs" in text and "dropped number word" in text
    extra = run_command("eval", [*args[:4], "--split", "test_2018_flickr", "--json"])
    assert extra == 0 and json.loads(capsys.readouterr().out)["n"] == len(EN)


@pytest.mark.slow  # the `trained` fixture: 10-14 s of training
def test_czech_is_listed_only_where_a_translator_is_installed(trained, tmp_path, monkeypatch):
    import captioner.translation as tr

    assert check_language("CS") == "cs" and tr.LANGUAGES["cs"] == "Czech"
    monkeypatch.setattr(tr, "BUNDLED_DIR", tmp_path)
    assert tr.available_languages() == [("en", "English")]
    (tmp_path / "translate-en-cs").mkdir()
    for name in ("config.json", "model.safetensors", "subwords.model"):
        (tmp_path / "translate-en-cs" / name).write_bytes((trained[0] / name).read_bytes())
    assert tr.available_languages() == [("en", "English"), ("cs", "Czech")]
    assert tr.find_translator("cs").translate(EN[:1]) == CS[:1]


def test_czech_splits_follow_the_folder(corpus):
    from captioner.data.multi30k import load_multi30k, tokenised_references

    dsd = load_multi30k(str(corpus), tgt="cs")
    assert list(dsd) == ["train", "validation", "test", "test_2018_flickr"]  # no 2017 files
    assert tokenised_references(corpus, "test_2018_flickr", "cs") is None  # none there
    assert len(tokenised_references(corpus, "test", "cs")) == len(EN)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"Multi30k is not at {REAL} (../shared/data)")
@pytest.mark.parametrize("stem", ["val", "test_2016_flickr"])
def test_czech_moses_tokenisation_reproduces_the_tok_files(stem):
    """`BLEU tok` tokenises the output as the published tok/ files were made: for Czech the
    raw references tokenised here equal those files line for line (val, test_2016)."""
    from captioner.data.multi30k import read_lines
    from captioner.pipelines.translate_eval import moses_tokenise

    raw = read_lines(REAL / "raw" / f"{stem}.cs.gz")
    tok = read_lines(REAL / "tok" / f"{stem}.lc.norm.tok.cs")
    assert moses_tokenise(raw, "cs") == tok


def test_the_release_recipe_builds_all_three_directions(tmp_path):
    from captioner.pipelines import translators

    assert translators.TARGETS == ("de", "fr", "cs")
    for tgt in translators.TARGETS:
        argv = translators.train_args(tmp_path, tgt)
        assert argv[argv.index("--tgt") + 1] == tgt and "--threads" in argv
        assert argv[argv.index("--epochs") + 1] == "6"  # the bundled recipe
    longer = translators.Recipe(epochs=30, hidden=320, dropout=0.4, patience=5, average_last=5)
    argv = translators.train_args(tmp_path, "cs", longer)
    assert [argv[argv.index(f) + 1] for f in ("--epochs", "--hidden-dim", "--average-last")] == [
        "30", "320", "5"
    ]  # fmt: skip
    quick = translators.train_args(tmp_path, "cs", longer, quick=True)
    assert quick[len(quick) - 1 - quick[::-1].index("--epochs") + 1] == "1"  # quick wins
    with pytest.raises(ValueError, match="no release recipe for en->xx"):
        translators.train_args(tmp_path, "xx")
    with pytest.raises(ValueError, match="epochs, hidden >= 1"):
        translators.Recipe(epochs=0)
