"""Caption training data glue over `captioner.data` (features cache, loader).

Features of a frozen encoder come from `captioner.data.features.compute_features` (cached on
disk by encoder and dataset fingerprint); `grid_tensor` views them as one float16 tensor
(n, N, C) for decoding; `captioner.data.caption_dataset.CaptionDataset` makes the training pairs.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import datasets
import torch
from torch import Tensor
from torch.utils.data import Dataset

log = logging.getLogger(__name__)


def load_caption_dataset(spec: str) -> datasets.DatasetDict:
    """`captioner.data.load_caption_dataset(spec)`."""
    from captioner.data import load_caption_dataset as load

    return load(spec)


def take(split: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    return split if not limit or limit >= len(split) else split.select(range(limit))


class ImageColumn(Dataset):
    """Item i -> the encoder's normalised tensor (3, S, S) of image i."""

    def __init__(self, split: datasets.Dataset, transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Tensor:
        return self.transform(self.split[int(i)]["image"].convert("RGB"))


def encode_features(
    split: datasets.Dataset,
    encoder,
    *,
    device: torch.device,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    desc: str = "features",
) -> datasets.Dataset:
    """`split` with `image` replaced by the encoder's `grid` (N, C) float16 and `pooled`,
    computed once and cached by `captioner.data.features.compute_features` (Arrow on disk)."""
    from captioner.data.features import compute_features

    start = time.perf_counter()
    feats = compute_features(split, encoder, batch_size=batch_size, device=str(device),
                             cache_dir=cache_dir)  # fmt: skip
    log.info("%s: %d images ready in %.1f s", desc, len(split), time.perf_counter() - start)
    return feats


def grid_tensor(feats: datasets.Dataset, channels: int) -> Tensor:
    """The `grid` column (n, N, C) float16 as a tensor, zero-copy over the memory-mapped
    Arrow buffer where the column is one chunk."""
    parts = []
    for chunk in feats.data.column("grid").chunks:
        storage = getattr(chunk, "storage", chunk)  # Array2D extension -> list<list<half>>
        flat = storage.flatten().flatten().to_numpy(zero_copy_only=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only buffer: never written
            parts.append(torch.from_numpy(flat).view(len(chunk), -1, channels))
    if not parts:
        return torch.zeros((0, 1, channels), dtype=torch.float16)
    return parts[0] if len(parts) == 1 else torch.cat(parts)
