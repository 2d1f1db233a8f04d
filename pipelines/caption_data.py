"""Caption training data: (image or cached features, caption) pairs and their batches.

Features of a frozen encoder come from `captioner.data.features.compute_features` (cached on
disk by encoder and dataset fingerprint) and are viewed as one float16 tensor (n, N, C).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import Tensor
from torch.utils.data import Dataset

from captioner.text import Vocabulary

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
) -> Tensor:
    """Grid features (n, N, C) float16 on CPU for every image of `split`, computed once and
    cached by `captioner.data.features.compute_features` (a memory-mapped Arrow file)."""
    from captioner.data.features import compute_features

    start = time.perf_counter()
    feats = compute_features(split, encoder, batch_size=batch_size, device=str(device),
                             cache_dir=cache_dir)  # fmt: skip
    grid = grid_tensor(feats, encoder.out_channels)
    log.info("%s: %d grids %s ready in %.1f s", desc, len(split), tuple(grid.shape),
             time.perf_counter() - start)  # fmt: skip
    return grid


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


class CaptionPairs(Dataset):
    """One item per (image, reference caption): {"grid" (N, C) | "image" (3, S, S), "caption"
    (L,) ids with <start>/<end>, truncated to `max_length` words}."""

    def __init__(
        self,
        split: datasets.Dataset,
        vocab: Vocabulary,
        *,
        features: Tensor | None = None,
        transform=None,
        max_length: int = 20,
    ):
        if features is None and transform is None:
            raise ValueError("CaptionPairs needs cached features or an image transform")
        self.split, self.features, self.transform = split, features, transform
        self.pairs: list[tuple[int, list[int]]] = []
        for i, captions in enumerate(split["captions"]):
            for text in captions:
                ids = vocab.encode(text)
                if len(ids) > max_length + 2:
                    ids = ids[: max_length + 1] + [vocab.eos_id]
                self.pairs.append((i, ids))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i, ids = self.pairs[k]
        item: dict[str, Any] = {"caption": torch.tensor(ids, dtype=torch.long)}
        if self.features is not None:
            item["grid"] = self.features[i]
        else:
            item["image"] = self.transform(self.split[i]["image"].convert("RGB"))
        return item


def collate_pairs(items: list[dict[str, Any]], pad_id: int = 0) -> dict[str, Tensor]:
    """-> {"captions" (B, T) padded, "grid" (B, N, C) float | "images" (B, 3, S, S)}."""
    captions = torch.nn.utils.rnn.pad_sequence(
        [it["caption"] for it in items], batch_first=True, padding_value=pad_id
    )
    batch = {"captions": captions}
    if "grid" in items[0]:
        batch["grid"] = torch.stack([it["grid"] for it in items]).float()
    else:
        batch["images"] = torch.stack([it["image"] for it in items])
    return batch
