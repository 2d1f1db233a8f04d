"""COCO caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D.

Every number is computed the way the COCO caption evaluation (pycocoevalcap) computes it,
including its quirks, so results compare with published tables:
- captions are tokenised by `captioner.metrics.ptb` (a pure-Python twin of the Stanford
  PTBTokenizer run; lower case, punctuation dropped), references and hypotheses each as one
  stream in the order of `references`;
- BLEU is corpus level with the "closest" reference length and pycocoevalcap's smoothing
  constants (1e-15 / 1e-9);
- ROUGE-L is the LCS F-measure with beta 1.2, best precision and best recall over the
  references, averaged over images;
- CIDEr-D uses 1..4-grams, document frequencies from the references being scored, clipped
  tf-idf, a Gaussian length penalty (sigma 6) and x10, i.e. pycocoevalcap's `Cider` (which is
  CIDEr-D): about 0-10, not 0-1;
- METEOR 1.5 runs the Java jar from pycocoevalcap (`captioner.metrics.meteor`); when that is
  impossible the key is absent and a warning says why.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from captioner.metrics.meteor import MeteorScorer, meteor_unavailable_reason
from captioner.metrics.ptb import tokenize_captions

logger = logging.getLogger(__name__)

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")
NGRAM = 4
ROUGE_BETA = 1.2
CIDER_SIGMA = 6.0


def _ngrams(words: Sequence[str], n: int = NGRAM) -> Counter:
    return Counter(
        tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)
    )


def bleu(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str], n: int = NGRAM
) -> list[float]:
    """Corpus BLEU-1..n over tokenised captions, as pycocoevalcap's `Bleu(4)` computes it."""
    tiny, small = 1e-15, 1e-9
    testlen = reflen = 0
    guess, correct = [0] * n, [0] * n
    for refs, hyp in zip(references, hypotheses):
        words = hyp.split()
        counts = _ngrams(words, n)
        max_ref: dict[tuple[str, ...], int] = {}
        ref_lens = []
        for ref in refs:
            ref_words = ref.split()
            ref_lens.append(len(ref_words))
            for gram, c in _ngrams(ref_words, n).items():
                max_ref[gram] = max(max_ref.get(gram, 0), c)
        testlen += len(words)
        reflen += min((abs(length - len(words)), length) for length in ref_lens)[1]  # closest
        for k in range(n):
            guess[k] += max(0, len(words) - k)
        for gram, c in counts.items():
            correct[len(gram) - 1] += min(max_ref.get(gram, 0), c)
    scores, product = [], 1.0
    for k in range(n):
        product *= float(correct[k] + tiny) / (guess[k] + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(references: Sequence[str], hypothesis: str, beta: float = ROUGE_BETA) -> float:
    """ROUGE-L of one tokenised hypothesis (pycocoevalcap splits on single spaces)."""
    hyp = hypothesis.split(" ")
    precision = recall = 0.0
    for ref in references:
        ref_words = ref.split(" ")
        common = _lcs(ref_words, hyp)
        precision = max(precision, common / len(hyp))
        recall = max(recall, common / len(ref_words))
    if precision == 0 or recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def cider_d(
    references: Sequence[Sequence[str]],
    hypotheses: Sequence[str],
    n: int = NGRAM,
    sigma: float = CIDER_SIGMA,
) -> list[float]:
    """Per-image CIDEr-D (x10) of tokenised captions, as pycocoevalcap's `Cider` computes it."""
    ref_counts = [[_ngrams(r.split(), n) for r in refs] for refs in references]
    doc_freq: Counter = Counter()
    for counts in ref_counts:
        doc_freq.update({gram for c in counts for gram in c})
    log_images = math.log(float(len(references)))

    def vector(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(n)]
        norm, length = [0.0] * n, 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            vec[k][gram] = float(tf) * (log_images - math.log(max(1.0, doc_freq[gram])))
            norm[k] += vec[k][gram] ** 2
            if k == 1:  # pycocoevalcap counts bigrams as the "length"
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    scores = []
    for hyp, refs in zip(hypotheses, ref_counts):
        vec_h, norm_h, len_h = vector(_ngrams(hyp.split(), n))
        total = [0.0] * n
        for ref in refs:
            vec_r, norm_r, len_r = vector(ref)
            penalty = math.e ** (-(float(len_h - len_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                val = sum(
                    min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec_h[k].items()
                )
                if norm_h[k] != 0 and norm_r[k] != 0:
                    val /= norm_h[k] * norm_r[k]
                total[k] += val * penalty
        scores.append(sum(total) / n / len(refs) * 10.0)
    return scores


def _validate(references: Mapping, hypotheses: Mapping) -> list[Hashable]:
    for name, value in (("references", references), ("hypotheses", hypotheses)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict keyed by image id, got {type(value).__name__}")
    missing = [i for i in references if i not in hypotheses]
    extra = [i for i in hypotheses if i not in references]
    if missing or extra:
        raise ValueError(
            "references and hypotheses must have the same ids: "
            + (f"no hypothesis for {missing[:5]!r}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"no references for {extra[:5]!r}" if extra else "")
        )
    if not references:
        raise ValueError("nothing to score: references and hypotheses are empty")
    for image_id, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise ValueError(
                f"references[{image_id!r}] must be a list of strings, got {type(refs).__name__}"
            )
        if not refs:
            raise ValueError(
                f"references[{image_id!r}] is empty; every image needs at least one reference"
            )
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise ValueError(
                    f"references[{image_id!r}][{j}] must be a string, got {type(ref).__name__}"
                )
        if not isinstance(hypotheses[image_id], str):
            kind = type(hypotheses[image_id]).__name__
            raise ValueError(f"hypotheses[{image_id!r}] must be a string, got {kind}")
    return list(references)


def _meteor(refs: list[list[str]], hyps: list[str], meteor: bool | MeteorScorer) -> float | None:
    if isinstance(meteor, MeteorScorer):
        return meteor.score(refs, hyps)[0]
    reason = meteor_unavailable_reason()
    if reason is not None:
        logger.warning("METEOR left out: %s", reason)
        return None
    try:
        with MeteorScorer() as scorer:
            return scorer.score(refs, hyps)[0]
    except (OSError, RuntimeError, ValueError) as err:
        logger.warning("METEOR left out: the METEOR jar failed: %s", err)
        return None


def score(
    references: Mapping[Hashable, Sequence[str]],
    hypotheses: Mapping[Hashable, str],
    *,
    meteor: bool | MeteorScorer = True,
) -> dict[str, float]:
    """COCO caption metrics of `hypotheses[id]` against `references[id]` (raw, untokenised text).

    Returns `BLEU-1`..`BLEU-4`, `METEOR`, `ROUGE-L`, `CIDEr-D`. METEOR needs Java and
    pycocoevalcap; without them (or with `meteor=False`) the key is absent. Pass a running
    `MeteorScorer` as `meteor` to skip the jar's start-up on repeated calls.
    Raises ValueError naming the offending id when the two dicts do not line up.
    """
    ids = _validate(references, hypotheses)
    flat = tokenize_captions([ref for i in ids for ref in references[i]])
    refs, start = [], 0
    for i in ids:
        refs.append(flat[start : start + len(references[i])])
        start += len(references[i])
    hyps = tokenize_captions([hypotheses[i] for i in ids])

    results = {f"BLEU-{k + 1}": b for k, b in enumerate(bleu(refs, hyps))}
    if meteor is not False:
        value = _meteor(refs, hyps, meteor)
        if value is not None:
            results["METEOR"] = value
    results["ROUGE-L"] = sum(rouge_l(r, h) for r, h in zip(refs, hyps)) / len(ids)
    results["CIDEr-D"] = sum(cider_d(refs, hyps)) / len(ids)
    return results


def format_scores(scores: Mapping[str, float]) -> str:
    """One line, e.g. `BLEU-1 0.712 | BLEU-4 0.301 | ... | CIDEr-D 0.934`."""
    names = [m for m in METRIC_NAMES if m in scores] + [m for m in scores if m not in METRIC_NAMES]
    return " | ".join(f"{name} {scores[name]:.3f}" for name in names)
