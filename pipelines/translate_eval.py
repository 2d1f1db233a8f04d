"""BLEU of a translator with sacrebleu, the standard scorer, two ways (both labelled):

- `BLEU tok`: lower-cased, Moses-tokenised output (sacremoses: punctuation normalised, then
  tokenised with XML escapes, as Multi30k's `scripts/task1-tokenize.sh`) against the `tok/`
  files behind the published Multi30k scores, scored with `tokenize="none"` (= multi-bleu);
- `BLEU detok`: the output as written against the raw references with sacrebleu's default
  tokenizer (13a), cased: the number comparable across tokenisations.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
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
    batch_size: int = 64,
    examples: int = 5,
) -> dict[str, Any]:
    """Translate the `source` column of a split and score it against `target` (and the
    tokenised references when given). Returns {"n", "scores", "labels", "decoding",
    "examples", "signatures"}."""
    from captioner.translation import DEFAULT_GENERATION

    generation = generation or DEFAULT_GENERATION
    sources, targets = list(split["source"]), list(split["target"])
    hyps = model.translate(sources, generation=generation, batch_size=batch_size)
    lang = model.config.tgt_lang
    scores = bleu_scores(hyps, targets, lang=lang, tokenised_references=tokenised_references)
    signatures = scores.pop("signatures")
    return {
        "n": len(sources),
        "pair": f"{model.config.src_lang}-{lang}",
        "scores": scores,
        "labels": {k: LABELS[k] for k in scores},
        "signatures": signatures,
        "decoding": generation.describe(),
        "examples": [
            {"source": s, "translation": h, "reference": r}
            for s, h, r in list(zip(sources, hyps, targets))[:examples]
        ],
    }
