"""Scoring captions and sentiment on a dataset split with real decoding: `captioner eval`
(captioner.cli.evaluate) and the training recipes' validation share it.

    captioner eval --model DIR --dataset scenes --split test [--beam-size 3] [--limit N] [--json]

Caption datasets: BLEU-1..4, METEOR (when Java is available), ROUGE-L, CIDEr-D, plus scene
precision / recall / F1 when the dataset has a `scene` column (the synthetic scene world).
Sentiment datasets (`uci-sentiment`, `sentiment-csv:...`, ...): accuracy and per-class
precision / recall / F1. Captions always come from greedy or beam search, never from
teacher-forced outputs.

Sentiment: binary benchmarks (gold labels negative / positive only) are scored on the
positive-vs-negative decision, as usual, even when the model also has a `neutral` label; the
share of texts whose most probable label is `neutral` is reported beside it. A split of
neutral texts only (`neutral:flickr8k:DIR`) scores the share called neutral.

Why here, in the core: the scoring needs only the core (decoding, the metrics, the sentiment
head, the progress bar), and a split is any object with `image` / `captions` (or `text` /
`label`) columns, so the CLI and the pipelines both import it from below them. What the
data layer or a training run adds stays above: loading the split (`captioner.data.spec`),
and the sentiment recipe's validation on encoded texts (`predict_logits`, `scores_of` in
`captioner.pipelines.sentiment_eval`, which need its batching). The calibration error moved
down with it (`pipelines.calibration` fits temperatures and imports it from here).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.sentiment import binary_decision, sentiment_probs
from captioner.text import Vocabulary

log = logging.getLogger(__name__)


@torch.no_grad()
def decode_grids(
    decoder,
    vocab: Vocabulary,
    grids: Tensor,
    *,
    generation: GenerationConfig | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    **decoding: Any,
) -> list[str]:
    """Captions for encoder grids (n, N, C) (e.g. cached features), searched as `generation`
    (default: beam 3, max_length 20) with `decoding` (GenerationConfig fields) applied."""
    config = dataclasses.replace(generation or GenerationConfig(), **decoding)
    ids = SpecialIds.from_vocab(vocab)
    was_training = decoder.training
    decoder.eval()
    out: list[str] = []
    for i in range(0, grids.size(0), batch_size):
        grid = grids[i : i + batch_size].to(device, non_blocking=True).float()  # (B, N, C)
        step, state = decoder.start(grid, grid.mean(dim=1))
        out.extend(vocab.decode(t) for t in generate(step, state, ids, config).tokens)
    decoder.train(was_training)
    return out


def caption_scores(
    references: Sequence[Sequence[str]],
    hypotheses: Sequence[str],
    *,
    meteor: bool = True,
    scenes: Sequence[str] | None = None,
) -> dict[str, float]:
    """COCO caption metrics (0-1 scale) plus scene precision/recall/F1 when `scenes` given."""
    try:
        from captioner.metrics import score
    except ImportError:  # captioner.metrics not installed yet: pycocoevalcap's Python scorers
        score = _pycoco_score

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets but {len(hypotheses)} hypotheses")
    refs = {str(i): list(r) for i, r in enumerate(references)}
    hyps = {str(i): h for i, h in enumerate(hypotheses)}
    scores = {k: float(v) for k, v in score(refs, hyps, meteor=meteor).items()}
    if scenes is not None:
        from captioner.metrics import scene_score

        s = scene_score(list(scenes), list(hypotheses))
        scores.update({k: float(s[k]) for k in ("scene_precision", "scene_recall", "scene_f1")})
    return scores


def _pycoco_score(refs: dict, hyps: dict, *, meteor: bool = True) -> dict[str, float]:
    """BLEU-1..4, ROUGE-L, CIDEr-D from pycocoevalcap's pure-Python scorers (no METEOR)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from captioner.text import tokenize

    gts = {k: [" ".join(tokenize(r)) for r in v] for k, v in refs.items()}
    res = {k: [" ".join(tokenize(h))] for k, h in hyps.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)}
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    return out


def caption_stats(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str]
) -> dict[str, float]:
    """How finished and varied captions read: the share ending in a dangling word (a, the,
    of, with...: target 0), mean length in words beside the references' mean, and the share
    of distinct captions. With 5 or more references per image, also the share of photos
    whose main object (a COCO object kind 3 references name, people aside) the caption
    names (`captioner.metrics.objects.main_object_named`)."""
    from captioner.metrics.objects import main_object_named
    from captioner.text import DANGLING_WORDS, tokenize

    hyp_tokens = [tokenize(h) for h in hypotheses]
    ref_lengths = [len(tokenize(r)) for refs in references for r in refs]
    n = max(1, len(hyp_tokens))
    stats = {
        "dangling_end": sum(bool(t) and t[-1] in DANGLING_WORDS for t in hyp_tokens) / n,
        "empty": sum(not t for t in hyp_tokens) / n,
        "mean_length": sum(map(len, hyp_tokens)) / n,
        "reference_mean_length": sum(ref_lengths) / max(1, len(ref_lengths)),
        "distinct": len(set(hypotheses)) / n,
    }
    if references and min(len(r) for r in references) >= 5:
        stats.update(main_object_named(references, hypotheses))
    return stats


def evaluate_captions(
    model, split, *, generation: GenerationConfig | None = None, batch_size: int = 32,
    meteor: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Caption every image of a dataset split with `model` (a Captioner) and score it;
    `generation`: how to search (default: the model's own settings)."""
    from captioner.progress import progress_bar

    start = time.perf_counter()
    generation = model.generation_config(generation)
    hyps: list[str] = []
    images = split.select_columns(["image"])
    for i in progress_bar(range(0, len(split), batch_size), desc="captioning"):
        chunk = images[i : i + batch_size]["image"]  # decode one batch of images at a time
        hyps += model.caption(chunk, generation=generation, batch_size=batch_size)
    seconds = time.perf_counter() - start
    scenes = split["scene"] if "scene" in split.column_names else None
    scores = caption_scores(split["captions"], hyps, meteor=meteor, scenes=scenes)
    return {
        "n": len(split),
        "decoding": {
            "method": generation.search,
            "beam_size": generation.beam_size,
            "max_length": generation.max_length,
        },  # fmt: skip
        "scores": scores,
        "stats": caption_stats(split["captions"], hyps),
        "seconds": round(seconds, 2),
        "examples": [
            {
                "image_id": split[i]["image_id"],
                "caption": hyps[i],
                "references": split[i]["captions"],
            }
            for i in range(min(5, len(hyps)))
        ],
    }


def expected_calibration_error(probs: Tensor, labels: Sequence[int], *, bins: int = 15) -> float:
    """Top-label ECE: the mean |accuracy - confidence| over equal-width confidence bins,
    weighted by the share of examples in each bin. probs (n, K) sum to one per row."""
    y = torch.as_tensor(list(labels))
    if len(y) == 0:
        raise ValueError("the expected calibration error needs at least one example")
    conf, pred = probs.max(dim=-1)
    hit = (pred == y).float()
    which = (conf * bins).long().clamp(max=bins - 1)  # bin of each example
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += float(inside.float().mean()) * abs(
                float(hit[inside].mean()) - float(conf[inside].mean())
            )
    return ece


def _per_class(gold: list[str], pred: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for name in sorted(set(gold) | set(pred)):
        tp = sum(p == g == name for p, g in zip(pred, gold))
        n_pred, n_gold = pred.count(name), gold.count(name)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[name] = {"precision": prec, "recall": rec, "f1": f1, "support": n_gold}
    return out


def predictions(probs: torch.Tensor, names: list[str], gold: list[str]) -> tuple[list[str], dict]:
    """Predicted label names and calibration scores; binary gold -> the binary decision."""
    binary = set(gold) <= {"negative", "positive"} and {"negative", "positive"} <= set(names)
    if binary:
        decision = binary_decision(probs, names)
        pred = [("negative", "positive")[int(d)] for d in decision]
        pair = probs[:, [names.index("negative"), names.index("positive")]]
        pair = pair / pair.sum(dim=-1, keepdim=True)  # (n, 2) renormalised without neutral
        ece = expected_calibration_error(pair, [int(g == "positive") for g in gold])
        return pred, {"ece_binary": ece}
    pred = [names[k] for k in probs.argmax(dim=-1).tolist()]
    known = [i for i, g in enumerate(gold) if g in names]
    if not known:
        return pred, {}
    ece = expected_calibration_error(probs[known], [names.index(gold[i]) for i in known])
    return pred, {"ece": ece}


def evaluate_sentiment(model, split, *, batch_size: int = 256) -> dict[str, Any]:
    """Accuracy (the binary decision on binary gold), neutral share, ECE, per-class
    precision / recall / F1 and, when the split has several `source`s, accuracy per source."""
    names = list(model.sentiment_model.config.labels)
    feature = split.features["label"]
    gold_names = getattr(feature, "names", None) or names
    gold = [gold_names[i] for i in split["label"]]
    probs = sentiment_probs(
        model.sentiment_model, model.sentiment_vocab, split["text"], batch_size=batch_size
    )
    pred, calibration = predictions(probs, names, gold) if gold else ([], {})
    scores: dict[str, float] = {
        "accuracy": sum(p == g for p, g in zip(pred, gold)) / max(1, len(gold))
    }
    if "neutral" in names:
        top = probs.argmax(dim=-1) == names.index("neutral")
        scores["neutral_share"] = float(top.float().mean()) if len(gold) else 0.0
    scores.update(calibration)
    sources = split["source"] if "source" in split.column_names else []
    if len(set(sources)) > 1:
        for source in sorted(set(sources)):
            rows = [i for i, s in enumerate(sources) if s == source]
            scores[f"accuracy_{source}"] = sum(pred[i] == gold[i] for i in rows) / len(rows)
    return {"n": len(gold), "scores": scores, "per_class": _per_class(gold, pred)}
