"""BLEU of a translator with sacrebleu, the standard scorer, two ways (both labelled):

- `BLEU tok`: lower-cased, Moses-tokenised output (sacremoses: punctuation normalised, then
  tokenised with XML escapes, as Multi30k's `scripts/task1-tokenize.sh`) against the `tok/`
  files behind the published Multi30k scores, scored with `tokenize="none"` (= multi-bleu);
- `BLEU detok`: the output as written against the raw references with sacrebleu's default
  tokenizer (13a), cased: the number comparable across tokenisations.

Every evaluation also counts two errors by rule (`captioner.pipelines.translation_errors`):
the share of sentences with a repeated verb and with a dropped number word. `sweep` scores a
grid of decoding settings on one split (beam width x n-gram blocking searched once each; length
penalty, coverage and repeat penalties rerank the same hypotheses), and is the command line:

    python -m captioner.pipelines.translate_eval --model captioner/models/translate-en-de \
        --multi30k ../shared/data/multi30k --split validation --beam 4,6,8 \
        --length-penalty 0,0.6,1 --coverage-penalty 0,0.2 --repeat-penalty 0,0.5 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
TOK, DETOK = "BLEU tok", "BLEU detok"
LABELS = {
    TOK: "lower-cased Moses-tokenised output vs the Multi30k tok/ references "
    "(sacrebleu tokenize=none, as the published scores)",
    DETOK: "detokenised output vs the raw references (sacrebleu default 13a tokenizer, cased)",
}


@functools.lru_cache(maxsize=8)
def _moses(lang: str):
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)


def moses_tokenise(texts: Sequence[str], lang: str) -> list[str]:
    """Lower-case, normalise punctuation and tokenise like Multi30k's `tok/` files."""
    norm, tok = _moses(lang)
    return [tok.tokenize(norm.normalize(t.lower()), escape=True, return_str=True) for t in texts]


def bleu_scores(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    lang: str,
    tokenised_references: Sequence[str] | None = None,
) -> dict[str, Any]:
    """{"BLEU detok": float, "BLEU tok": float (with tokenised references), "signatures"}."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} translations for {len(references)} references")
    detok = sacrebleu.BLEU()
    scores: dict[str, Any] = {DETOK: detok.corpus_score(list(hypotheses), [list(references)])}
    signatures = {DETOK: str(detok.get_signature())}
    if tokenised_references is not None:
        if len(tokenised_references) < len(hypotheses):
            raise ValueError("fewer tokenised references than translations")
        tok = sacrebleu.BLEU(tokenize="none", force=True)
        refs = list(tokenised_references[: len(hypotheses)])
        scores[TOK] = tok.corpus_score(moses_tokenise(hypotheses, lang), [refs])
        signatures[TOK] = str(tok.get_signature())
    out: dict[str, Any] = {k: round(v.score, 2) for k, v in sorted(scores.items())}
    out["signatures"] = signatures
    return out


def evaluate_translator(
    model: Any,
    split: Any,
    *,
    tokenised_references: Sequence[str] | None = None,
    generation: Any = None,
    rescoring: Any = None,
    batch_size: int = 64,
    examples: int = 5,
) -> dict[str, Any]:
    """Translate the `source` column of a split and score it against `target` (and the
    tokenised references when given). Returns {"n", "scores", "labels", "decoding",
    "examples", "signatures"} and, for German, French and Czech, "errors"
    (`translation_errors.error_stats`)."""
    from captioner.translation import DEFAULT_GENERATION, DEFAULT_RESCORING

    generation = generation or DEFAULT_GENERATION
    rescoring = rescoring or DEFAULT_RESCORING
    sources, targets = list(split["source"]), list(split["target"])
    hyps = model.translate(
        sources, generation=generation, rescoring=rescoring, batch_size=batch_size
    )
    lang = model.config.tgt_lang
    scores = bleu_scores(hyps, targets, lang=lang, tokenised_references=tokenised_references)
    signatures = scores.pop("signatures")
    out = {
        "n": len(sources),
        "pair": f"{model.config.src_lang}-{lang}",
        "scores": scores,
        "labels": {k: LABELS[k] for k in scores},
        "signatures": signatures,
        "decoding": {
            **generation.describe(),
            **(rescoring.describe() if rescoring.active and generation.search == "beam" else {}),
        },
        "examples": [
            {"source": s, "translation": h, "reference": r}
            for s, h, r in list(zip(sources, hyps, targets))[:examples]
        ],
    }
    errors = _errors(sources, hyps, targets, lang, examples=examples)
    if errors is not None:
        out["errors"] = errors
    return out


def _errors(sources, hyps, targets, lang: str, *, examples: int = 3) -> dict | None:
    """`translation_errors.error_stats`, or None for a language it has no word lists for."""
    from captioner.pipelines import translation_errors

    if lang not in translation_errors.LANGS:
        return None
    return translation_errors.error_stats(sources, hyps, targets, lang, examples=examples)


# ---------------------------------------------------------------------- decoding sweeps
def _pick(found, lengths: Sequence[int], k: int, length_penalty: float, rescoring) -> list[int]:
    """Per sentence, the row of `found` (k hypotheses a sentence, searched with length
    penalty 0: raw log-probability sums) that ranks first under `length_penalty` and
    `rescoring`: what `TranslationModel.translate` picks with those settings."""
    picks = []
    for b, source_length in enumerate(lengths):
        best, best_score = b * k, float("-inf")
        for r in range(b * k, (b + 1) * k):
            score = found.scores[r]
            if length_penalty and score != float("-inf"):
                score /= max(1, len(found.tokens[r]) + int(found.ended[r])) ** length_penalty
            score += rescoring.bonus(found.alphas[r], source_length)
            if score > best_score:
                best, best_score = r, score
        picks.append(best)
    return picks


def sweep(
    model: Any,
    split: Any,
    *,
    beams: Sequence[int] = (4,),
    length_penalties: Sequence[float] = (0.0,),
    coverage_penalties: Sequence[float] = (0.0,),
    repeat_penalties: Sequence[float] = (0.0,),
    no_repeat_ngram_sizes: Sequence[int] = (3,),
    tokenised_references: Sequence[str] | None = None,
    batch_size: int = 64,
    on_row: Any = None,
) -> list[dict[str, Any]]:
    """BLEU (both ways) and the two error shares of every combination of decoding settings
    on `split`. Each (beam, n-gram blocking) pair is searched once, keeping all beam
    hypotheses; the other settings only rerank them (as in `TranslationModel.translate`).
    Each row has the settings, `BLEU tok` / `BLEU detok`, `repeated_verb` and
    `dropped_number` (% of sentences) and `search_ms` (batched search time a sentence);
    `on_row(row)` is called with each as soon as it is scored."""
    from captioner.translation import DEFAULT_GENERATION, Rescoring

    sources, targets = list(split["source"]), list(split["target"])
    lang = model.config.tgt_lang
    rows = []
    for beam, ngram in itertools.product(beams, no_repeat_ngram_sizes):
        config = dataclasses.replace(DEFAULT_GENERATION, beam_size=beam, length_penalty=0.0,
                                     no_repeat_ngram_size=ngram)  # fmt: skip
        t0 = time.perf_counter()
        batches = model.search(sources, generation=config, batch_size=batch_size,
                               every_hypothesis=True)  # fmt: skip
        search_ms = 1000 * (time.perf_counter() - t0) / max(1, len(sources))
        grid = itertools.product(length_penalties if beam > 1 else (0.0,),
                                 coverage_penalties if beam > 1 else (0.0,),
                                 repeat_penalties if beam > 1 else (0.0,))  # fmt: skip
        for lp, cp, rp in grid:
            rescoring = Rescoring(coverage_penalty=cp, repeat_penalty=rp)
            k = beam
            hyps = [model.subwords.decode(found.tokens[r])
                    for found, lengths in batches
                    for r in _pick(found, lengths, k, lp, rescoring)]  # fmt: skip
            scores = bleu_scores(hyps, targets, lang=lang,
                                 tokenised_references=tokenised_references)  # fmt: skip
            scores.pop("signatures")
            row = {"beam_size": beam, "no_repeat_ngram_size": ngram, "length_penalty": lp,
                   "coverage_penalty": cp, "repeat_penalty": rp, **scores}  # fmt: skip
            errors = _errors(sources, hyps, targets, lang, examples=0)
            if errors is not None:
                row["repeated_verb"] = errors["repeated_verb"]["share"]
                row["dropped_number"] = errors["dropped_number"]["share"]
            row["search_ms"] = round(search_ms, 1)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


COLUMNS = ("beam_size", "no_repeat_ngram_size", "length_penalty", "coverage_penalty",
           "repeat_penalty", TOK, DETOK, "repeated_verb", "dropped_number", "search_ms")  # fmt: skip


_NAMES = {"no_repeat_ngram_size": "no-repeat n-gram", "repeated_verb": "repeated verb %",
          "dropped_number": "dropped number %", "search_ms": "ms/sentence (batched)"}  # fmt: skip


def markdown_header(columns: Sequence[str] = COLUMNS) -> str:
    return "\n".join(["| " + " | ".join(_NAMES.get(c, c.replace("_", " ")) for c in columns)
                      + " |", "|" + "---|" * len(columns)])  # fmt: skip


def markdown_row(row: dict[str, Any], columns: Sequence[str] = COLUMNS) -> str:
    return "| " + " | ".join(str(row.get(c, "-")) for c in columns) + " |"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Sweep rows as a Markdown table (error columns in % of sentences)."""
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    return "\n".join([markdown_header(columns), *(markdown_row(r, columns) for r in rows)])


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    """Score a translator on a Multi30k split over a grid of decoding settings."""
    p = argparse.ArgumentParser(
        prog="python -m captioner.pipelines.translate_eval",
        description="BLEU and error shares (repeated verb, dropped number word) of a "
        "translator over a grid of decoding settings. Choose settings on validation only.",
    )
    p.add_argument("--model", required=True, help="translator directory")
    p.add_argument("--multi30k", required=True, help="Multi30k folder (raw/, tok/)")
    p.add_argument("--split", default="validation", help="validation (default) | test | ...")
    p.add_argument("--limit", type=int, default=None, help="first N sentences only")
    p.add_argument("--beam", type=_ints, default=[4], help="beam widths, e.g. 4,6,8")
    p.add_argument("--length-penalty", type=_floats, default=[0.0], help="e.g. 0,0.6,1")
    p.add_argument("--coverage-penalty", type=_floats, default=[0.0], help="e.g. 0,0.2")
    p.add_argument("--repeat-penalty", type=_floats, default=[0.0], help="e.g. 0,0.5")
    p.add_argument("--no-repeat-ngram", type=_ints, default=[3], help="e.g. 0,3")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from captioner.data.multi30k import load_multi30k, tokenised_references
    from captioner.translation import TranslationModel

    torch.set_num_threads(max(1, args.threads))
    model = TranslationModel.load(args.model)
    src, tgt = model.pair
    split = load_multi30k(args.multi30k, src=src, tgt=tgt)[args.split]
    refs = tokenised_references(args.multi30k, args.split, tgt)
    if args.limit:
        split = split.select(range(min(args.limit, len(split))))
    print(f"{args.model} ({src}->{tgt}), {args.split}, {len(split)} sentences")
    print(markdown_header(), flush=True)  # each row as soon as it is scored
    rows = sweep(
        model, split, beams=args.beam, length_penalties=args.length_penalty,
        coverage_penalties=args.coverage_penalty, repeat_penalties=args.repeat_penalty,
        no_repeat_ngram_sizes=args.no_repeat_ngram, tokenised_references=refs,
        on_row=lambda row: print(markdown_row(row), flush=True),
    )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
