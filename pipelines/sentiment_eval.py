"""The sentiment recipe's validation (`captioner.pipelines.train_sentiment`): logits of
encoded texts in its own batches (`sentiment_data.collate`), and accuracy / loss from them.

Scoring a sentiment model on a labelled split (`captioner eval` with a sentiment spec, the
release's report) is `captioner.evaluation.evaluate_sentiment`, in the core.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from captioner.pipelines.sentiment_data import EncodedTexts, collate
from captioner.sentiment import SentimentModel, binary_decision


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
