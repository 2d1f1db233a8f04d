"""Optimisation helpers of the engine: AdamW parameter groups, LR schedules, AMP choice."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from captioner.pipelines.config import TrainConfig


def param_groups(
    model: nn.Module, config: TrainConfig, *, encoder_prefix: str = "encoder."
) -> list[dict]:
    """AdamW groups: trainable parameters under `encoder_prefix` get `config.encoder_lr`, the
    rest `config.lr`; weight decay only on matrices (not biases, norms, scalars)."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (name.startswith(encoder_prefix), p.ndim >= 2)
            groups.setdefault(key, []).append(p)
    out = []
    for (is_enc, decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "lr": config.encoder_lr if is_enc else config.lr,
                "weight_decay": config.weight_decay if decay else 0.0,
                "name": ("encoder" if is_enc else "head") + ("" if decay else "_no_decay"),
            }
        )
    return out


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, *, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine to `min_lr_ratio`, step decay, or constant; per step."""
    total = max(1, config.epochs * steps_per_epoch)
    warm = int(config.warmup * total) if config.warmup < 1 else int(config.warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if config.schedule == "cosine":
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        if config.schedule == "step":
            return config.gamma ** (step // max(1, config.step_epochs * steps_per_epoch))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def amp_settings(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """-> (autocast dtype or None, use GradScaler)."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True
