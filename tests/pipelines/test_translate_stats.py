"""Issue 26: the translation error counts (repeated verb, dropped number word), the
attention-based reranking (coverage / repeat penalties), decoding sweeps and checkpoint
averaging."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from tests_support import CAPTIONS

from captioner.decoding import Decoded
from captioner.pipelines import translation_errors as te
from captioner.translation import Rescoring, rerank

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"


# ---------------------------------------------------------------------- error counts
@pytest.mark.parametrize(
    ("lang", "source", "translation", "missing"),
    [
        ("de", "Two men sit on a bench.", "Zwei Männer sitzen auf einer Bank.", []),
        ("de", "Two children are playing in the water.", "Kinder spielen im Wasser.", ["2"]),
        ("de", "A two-year-old boy and three dogs", "Ein zweijähriger Junge und Hunde", ["3"]),
        ("de", "A man with the number 23 runs.", "Ein Mann mit der Nummer 23 läuft.", []),
        ("de", "A man with the number 23 runs.", "Ein Mann mit einer Nummer läuft.", ["23"]),
        ("de", "One man and two women", "Ein Mann und 2 Frauen", []),  # digits count
        ("fr", "Four girls jump.", "Quatre filles sautent.", []),
        ("fr", "Four girls jump.", "Des filles sautent.", ["4"]),
        ("cs", "Two women walk.", "Dvě ženy jdou.", []),
        ("cs", "Two women walk.", "Ženy jdou.", ["2"]),
        ("cs", "A two-year-old plays with three dogs.", "Dvouleté dítě si hraje se třemi psy.",
         []),
        ("cs", "Five men in a group of twelve", "Pět mužů ve skupině dvanácti", []),
    ],
)  # fmt: skip
def test_dropped_number_words(lang, source, translation, missing):
    assert te.dropped_numbers(source, translation, lang) == missing


def test_one_is_not_a_number_word_here():
    assert te.source_numbers("One man and someone else in a two-story house") == {"2"}
    assert te.dropped_numbers("One dog runs.", "Hunde laufen.", "de") == []


def test_verb_forms_and_repeated_verbs():
    assert te.verb_forms("Ein Hund rennt im Gras läuft.", "de") == ["rennt", "läuft"]
    assert te.verb_forms("Das Essen ist fertig und sie essen.", "de") == ["essen"]  # German case
    assert te.verb_forms("Un chien court sur l'herbe.", "fr") == ["court"]
    assert te.verb_forms("Pes běží a skáče.", "cs") == ["běží", "skáče"]
    reference = "Ein Hund läuft auf dem Gras."
    assert te.repeated_verb("Ein Hund rennt im Gras läuft.", reference, "de")
    assert not te.repeated_verb("Ein Hund rennt im Gras.", reference, "de")
    assert not te.repeated_verb("Ein Hund rennt.", "Ein Hund im Gras.", "de")  # 1 verb vs 0
    assert not te.repeated_verb("Er sitzt und liest.", "Er sitzt und liest ein Buch.", "de")
    assert te.same_verb_twice("Zwei Pudel rennen rennen.", "Zwei Pudel rennen.", "de")
    assert not te.same_verb_twice("Ein Hund rennt im Gras läuft.", reference, "de")
    with pytest.raises(ValueError, match="know de, fr, cs, not 'it'"):
        te.verb_forms("x", "it")


def test_the_word_lists_hold_lexical_verb_forms_only():
    auxiliaries = {"de": {"ist", "sind", "hat", "haben", "wird", "werden"},
                   "fr": {"est", "sont", "a", "ont", "être"},
                   "cs": {"je", "jsou", "má", "mají"}}  # fmt: skip
    for lang, forms in te.VERB_FORMS.items():
        assert len(forms) >= 90, lang
        assert all(re.fullmatch(r"\w+", f) and f == f.lower() for f in forms), lang
        assert not forms & auxiliaries[lang], lang
    for lang, numbers in te.NUMBER_FORMS.items():
        assert sorted(numbers) == list(range(2, 13)), lang


@pytest.mark.skipif(not REAL.is_dir(), reason=f"Multi30k is not at {REAL} (../shared/data)")
@pytest.mark.parametrize(("lang", "top"), [("de", 700), ("fr", 600), ("cs", 700)])
def test_verb_forms_come_from_the_most_frequent_training_words(lang, top):
    """The rule the lists were made by: verb forms among the `top` most frequent lower-cased
    words of Multi30k train in that language."""
    counts: Counter = Counter()
    with gzip.open(REAL / "raw" / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
        for line in f:
            counts.update(re.findall(r"\w+", line.lower()))
    frequent = {w for w, _ in counts.most_common(top)}
    assert te.VERB_FORMS[lang] <= frequent, sorted(te.VERB_FORMS[lang] - frequent)


def test_error_stats_count_shares_and_the_reference_floor():
    sources = ["Two dogs run.", "A dog runs on the grass.", "Three men sit.", "A man sits."]
    translations = ["Hunde rennen.", "Ein Hund rennt im Gras läuft.", "Drei Männer sitzen.",
                    "Ein Mann sitzt sitzt."]  # fmt: skip
    references = ["Zwei Hunde rennen.", "Ein Hund läuft im Gras.", "Männer sitzen.",
                  "Ein Mann sitzt."]  # fmt: skip
    stats = te.error_stats(sources, translations, references, "de", examples=1)
    assert stats["n"] == 4 and stats["numbered_sources"] == 2
    assert stats["repeated_verb"] == {"count": 2, "share": 50.0}
    assert stats["same_verb_twice"] == {"count": 1, "share": 25.0}
    assert stats["dropped_number"] == {"count": 1, "share": 25.0, "of_numbered": 50.0}
    assert stats["reference_dropped_number"]["of_numbered"] == 50.0  # "Männer sitzen."
    assert stats["examples"]["dropped_number"][0]["source"] == "Two dogs run."
    with pytest.raises(ValueError, match="equally many"):
        te.error_stats(sources, translations[:2], references, "de")


# ---------------------------------------------------------------------- reranking
def test_rescoring_terms():
    one_pass = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])  # source: 3 + </s>
    assert Rescoring().bonus(one_pass, 4) == 0.0  # off
    missed = Rescoring(coverage_penalty=0.5).bonus(one_pass, 4)  # the third subword unread
    assert missed == pytest.approx(0.5 * torch.tensor(1e-6).log().item())
    assert Rescoring(repeat_penalty=2.0).bonus(one_pass, 4) == 0.0
    twice = torch.tensor([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0]])  # subword 0 read twice (0.8 over)
    assert Rescoring(repeat_penalty=2.0).bonus(twice, 3) == pytest.approx(-1.6)
    assert Rescoring(coverage_penalty=1.0).bonus(twice, 3) == pytest.approx(
        torch.tensor(0.2).log().item()
    )  # fmt: skip
    with pytest.raises(ValueError, match="coverage_penalty must be a finite number >= 0"):
        Rescoring(coverage_penalty=-1.0)


def test_rerank_picks_the_best_rescored_hypothesis():
    full = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0]])  # covers both source subwords
    short = torch.tensor([[1.0, 0.0]])  # never reads the second
    found = Decoded([[5, 6], [7]], [-2.0, -1.0], [full, short], [True, True])
    assert rerank(found, [3], 2, Rescoring()) == [0]  # off: the search's order
    assert rerank(found, [3], 2, Rescoring(coverage_penalty=0.1)) == [0]
    found = Decoded([[7], [5, 6]], [-1.0, -2.0], [short, full], [True, True])
    assert rerank(found, [3], 2, Rescoring()) == [0]
    assert rerank(found, [3], 2, Rescoring(coverage_penalty=0.1)) == [1]  # the full one wins


def random_translator(tgt: str = "de"):
    """A tiny EN->`tgt` translator with random weights that does end its sentences."""
    from captioner.subwords import Subwords
    from captioner.translation import TranslationModel
    from captioner.translator_net import Translator, TranslatorConfig

    torch.manual_seed(3)
    subwords = Subwords.train(CAPTIONS + ["ein roter kreis", "zwei hunde"], vocab_size=50)
    config = TranslatorConfig(vocab_size=len(subwords), tgt_lang=tgt, embed_dim=8,
                              hidden_dim=8, attention_dim=8, dropout=0.0)  # fmt: skip
    return TranslationModel(Translator(config), subwords, name=f"random-en-{tgt}")


def test_offline_reranking_picks_what_translate_picks():
    from captioner.pipelines.translate_eval import _pick
    from captioner.translation import DEFAULT_GENERATION

    model = random_translator()
    texts = ["a red circle", "two small yellow triangles", "a blue square left of a star"]
    texts = texts * 2 + ["a dog"]
    config = DEFAULT_GENERATION.__class__(beam_size=3, length_penalty=0.0, avoid_dangling=False,
                                          no_repeat_ngram_size=3, max_length=12)  # fmt: skip
    batches = model.search(texts, generation=config, batch_size=4, every_hypothesis=True)
    for lp, cp, rp in [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.3, 0.0), (0.6, 0.2, 0.5)]:
        offline = [model.subwords.decode(found.tokens[r]) for found, lengths in batches
                   for r in _pick(found, lengths, 3, lp, Rescoring(cp, rp))]  # fmt: skip
        online = model.translate(texts, generation=config, batch_size=4, length_penalty=lp,
                                 coverage_penalty=cp, repeat_penalty=rp)  # fmt: skip
        assert offline == online, (lp, cp, rp)
    plain = model.translate(texts, generation=config)
    assert plain == model.translate(texts, generation=config, rescoring=Rescoring())


def write_corpus(root: Path, lines: list[str], tgt: str = "de") -> Path:
    (root / "raw").mkdir(parents=True)
    for stem in ("train", "val", "test_2016_flickr"):
        for lang in ("en", tgt):
            with gzip.open(root / "raw" / f"{stem}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
    return root


def test_sweep_command_scores_a_grid(tmp_path, capsys):
    from captioner.pipelines import translate_eval

    model_dir = random_translator().save(tmp_path / "random-en-de")
    lines = ["Two dogs run.", "A red circle.", "A dog runs.", "Three small stars."]
    corpus = write_corpus(tmp_path / "m30k", lines)
    out = tmp_path / "rows.json"
    argv = ["--model", str(model_dir), "--multi30k", str(corpus), "--split", "validation",
            "--limit", "3", "--beam", "1,2", "--length-penalty", "0,1",
            "--coverage-penalty", "0,0.2", "--json", str(out)]  # fmt: skip
    assert translate_eval.main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation, 3 sentences" in printed and "| beam size |" in printed
    rows = json.loads(out.read_text())
    assert len(rows) == 1 + 4  # greedy once; beam 2 x 2 length penalties x 2 coverage
    assert {r["beam_size"] for r in rows} == {1, 2}
    assert all({"BLEU detok", "repeated_verb", "dropped_number"} <= set(r) for r in rows)
    assert "BLEU tok" not in rows[0]  # this corpus has no tok/ files


# ---------------------------------------------------------------------- checkpoint averaging
def test_average_checkpoints_takes_the_mean_of_the_newest(tmp_path):
    from captioner.checkpoint import CheckpointError
    from captioner.pipelines.runstate import save_checkpoint
    from captioner.pipelines.train_translator import average_and_choose, average_checkpoints

    ckpt = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError, match="no epoch checkpoints"):
        average_checkpoints(ckpt, 3)
    for epoch in (1, 2, 3, 4):
        weights = {"w": torch.full((2, 2), float(epoch)), "steps": torch.tensor([epoch])}
        save_checkpoint(ckpt, epoch, weights, {"epoch": epoch}, keep=4)
    mean, epochs = average_checkpoints(ckpt, 3)
    assert epochs == [2, 3, 4] and torch.equal(mean["w"], torch.full((2, 2), 3.0))
    assert mean["steps"].tolist() == [4]  # integers: the newest, not a mean
    assert average_checkpoints(ckpt, 10)[1] == [1, 2, 3, 4]

    model = torch.nn.Module()
    model.register_buffer("w", torch.zeros(2, 2))
    model.register_buffer("steps", torch.zeros(1, dtype=torch.long))
    published = []

    def publish(m, score):
        published.append((score, m.w[0, 0].item()))

    def validate(m):
        return 31.0

    found = average_and_choose(model, ckpt, 2, 30.0, validate=validate, publish=publish)
    assert found == {"epochs": [3, 4], "val_bleu": 31.0, "best_epoch_val_bleu": 30.0,
                     "chosen": True} and published == [(31.0, 3.5)]  # fmt: skip
    found = average_and_choose(model, ckpt, 2, 32.0, validate=validate, publish=publish)
    assert not found["chosen"] and len(published) == 1
