"""Scoring a sentiment model on a labelled split (`captioner eval` with a sentiment spec).

Binary benchmarks (gold labels negative / positive only) are scored on the
positive-vs-negative decision, as usual, even when the model also has a `neutral` label; the
share of texts whose most probable label is `neutral` is reported beside it. A split of
neutral texts only (`neutral:flickr8k:DIR`) scores the share called neutral.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captioner.pipelines.calibration import expected_calibration_error
from captioner.pipelines.sentiment_data import EncodedTexts, collate
from captioner.sentiment import SentimentModel, binary_decision, sentiment_probs


@torch.no_grad()
def predict_logits(
    model: SentimentModel, data: EncodedTexts, *, device: torch.device, batch_size: int = 256
) -> Tensor:
    """Logits (n, K) of every sentence in `data`, on the CPU."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        b = collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
        out.append(model(b["ids"].to(device), b["lengths"]).float().cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, len(model.config.labels))


def scores_of(logits: Tensor, labels: list[int], names: list[str] | None = None) -> dict:
    """Accuracy and loss; with label `names`, also `binary_accuracy` (the positive-vs-negative
    decision on the negative / positive rows) and `neutral_share` (neutral rows called
    neutral) where those rows exist."""
    y = torch.tensor(labels)
    out = {
        "accuracy": float((logits.argmax(-1) == y).float().mean()),
        "loss": float(F.cross_entropy(logits, y)),
    }
    if names and {"negative", "positive"} <= set(names):
        polar = (y == names.index("negative")) | (y == names.index("positive"))
        if polar.any():
            decision = binary_decision(torch.softmax(logits[polar], -1), names)
            out["binary_accuracy"] = float(
                (decision == (y[polar] == names.index("positive"))).float().mean()
            )
        if "neutral" in names and (y == names.index("neutral")).any():
            k = names.index("neutral")
            out["neutral_share"] = float((logits[y == k].argmax(-1) == k).float().mean())
    return out


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
