"""Temperature scaling (Guo et al. 2017), measured with the expected calibration error
(`captioner.evaluation.expected_calibration_error`, which `captioner eval` reports too).

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

from captioner.evaluation import expected_calibration_error


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
