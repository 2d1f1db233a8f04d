"""Temperature scaling (Guo et al. 2017) and the expected calibration error.

`fit_temperature` finds the T > 0 that minimises the held-out NLL of softmax(logits / T);
`apply_temperature` folds 1/T into a model's output layer, so the calibrated model is the
same class with rescaled weights. `crossfit_ece` measures ECE before and after scaling on
data the temperature was not fitted on (two folds, each fitted on the other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fit_temperature(logits: Tensor, labels: Sequence[int]) -> float:
    """The softmax temperature T > 0 minimising the NLL of logits / T (golden-section search
    over log T in [1/10, 10])."""
    y = torch.as_tensor(list(labels))

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), y))

    lo, hi = math.log(0.1), math.log(10.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(40):
        if nll(a) < nll(b):
            hi, b = b, a
            a = hi - g * (hi - lo)
        else:
            lo, a = a, b
            b = lo + g * (hi - lo)
    return math.exp((lo + hi) / 2)


def apply_temperature(model: nn.Module, temperature: float) -> None:
    """Fold logits / T into the output layer `model.head` (weight and bias divided by T)."""
    with torch.no_grad():
        model.head.weight.div_(temperature)
        model.head.bias.div_(temperature)


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


def crossfit_ece(logits: Tensor, labels: Sequence[int], *, seed: int = 0) -> dict[str, float]:
    """ECE before / after temperature scaling with two seeded folds: each fold is scored with
    the temperature fitted on the other, so no example calibrates its own score."""
    y = torch.as_tensor(list(labels))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    folds = (order[: len(y) // 2], order[len(y) // 2 :])
    after = torch.empty_like(logits)
    for fit, score in (folds, folds[::-1]):
        after[score] = logits[score] / fit_temperature(logits[fit], y[fit].tolist())
    return {
        "ece_before": expected_calibration_error(torch.softmax(logits, -1), y.tolist()),
        "ece_after": expected_calibration_error(torch.softmax(after, -1), y.tolist()),
    }
