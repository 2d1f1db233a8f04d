"""What every training recipe does with its best epoch: score it for selection and write it
out as a model directory (`Captioner.from_pretrained(OUT)` loads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from captioner.pipelines.runstate import publish_model_dir


def selection_score(score: float, loss: float) -> float:
    """`score` (accuracy, F1) with ties broken by the lower loss: the loss term (at most 1e-6)
    is below one example's worth of accuracy on validation sets up to 100,000 examples."""
    return score - 1e-7 * min(loss, 10.0)


def export_model(
    trained: nn.Module,
    directory: Path,
    out: Path | None = None,
    *,
    data: str = "",
    dtype: torch.dtype | None = None,
    **parts: Any,
) -> Path:
    """Save a `Captioner` made of `parts` (its keyword arguments; `device` defaults to the one
    `trained` is on) as a model directory in `directory` and, with `out`, copy it into `out`
    beside its run folder. `data` names the training data on the model card; `dtype`: how the
    weights are stored (`Captioner.save_pretrained`). The facade puts
    its modules in eval mode; `trained`, the module being trained, gets its own mode back."""
    from captioner.api import Captioner

    was = trained.training
    parts.setdefault("device", next(trained.parameters()).device)
    try:
        model = Captioner(**parts)
        model.training_data = [data] if data else []  # for the model card
        path = model.save_pretrained(directory, dtype=dtype)
    finally:
        trained.train(was)
    return publish_model_dir(path, out) if out is not None else path
