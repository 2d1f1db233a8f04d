"""One meaning of a device name everywhere: "auto", "cpu", "cuda" or "cuda:N"."""

from __future__ import annotations

import torch

from captioner.errors import DeviceError

DEVICE_HELP = "auto (cuda when available, else cpu), cpu, cuda or cuda:N"


def resolve_device(
    spec: str | torch.device | None = "auto", *, local_rank: int = 0
) -> torch.device:
    """A device name -> `torch.device`.

    Args:
        spec: "auto" or None (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu",
            "cuda" (cuda:LOCAL_RANK), "cuda:N", or a `torch.device`.
        local_rank: the CUDA index "auto" and "cuda" mean (a torchrun process's rank).

    Raises:
        DeviceError: the name is malformed or names a device this machine lacks.
    """
    if isinstance(spec, torch.device):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {text!r}: CUDA is not available on this machine")
        if text == "cuda":
            text = f"cuda:{local_rank}"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(f"device {spec!r}: not a device; use {DEVICE_HELP}") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"device {text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return device
