"""PyTorch side of the data layer: vocabulary, a caption Dataset, collate, length buckets.

`CaptionDataset` reads a caption split either with precomputed features (`grid`, `pooled`
columns from `compute_features`) or with images (`image` column + the encoder's
`transform`). `mode="all"` yields one (features, caption) pair per reference caption per
epoch; `mode="sample"` yields one pair per image, the reference drawn afresh each epoch
(`set_epoch`), deterministically from (seed, epoch, index) so DataLoader workers agree.

Targets are `Vocabulary.encode(caption)`: `<start> w1 .. wk <end>`, at most `max_length`
ids; a longer caption keeps its first `max_length - 2` words and still ends with `<end>`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from captioner.text import Vocabulary


def build_vocabulary(
    dataset_split, *, min_count: int = 1, max_size: int | None = None
) -> Vocabulary:
    """A vocabulary from every reference caption of a (training) split."""
    captions = dataset_split["captions"]
    return Vocabulary.build(
        (c for caps in captions for c in caps), min_count=min_count, max_size=max_size
    )


def encode_caption(vocab: Vocabulary, text: str, max_length: int) -> list[int]:
    """`<start> ... <end>` ids, truncated to `max_length` (the last id stays `<end>`)."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (<start> and <end>), got {max_length}")
    ids = vocab.encode(text)
    return ids if len(ids) <= max_length else [*ids[: max_length - 1], vocab.eos_id]


class CaptionDataset(Dataset):
    """(features or image, caption ids) pairs over a caption split."""

    def __init__(
        self,
        ds,
        vocab: Vocabulary,
        *,
        mode: Literal["all", "sample"] = "all",
        max_length: int = 30,
        transform: Callable | None = None,
        seed: int = 0,
        preload: bool = False,
    ):
        if mode not in ("all", "sample"):
            raise ValueError(f"mode must be 'all' or 'sample', not {mode!r}")
        self.mode, self.seed, self.epoch, self.transform = mode, seed, 0, transform
        self.use_features = "grid" in ds.column_names
        if not self.use_features and "image" not in ds.column_names:
            raise ValueError(
                f"need 'grid'/'pooled' (compute_features) or 'image' columns; got {ds.column_names}"
            )
        if not self.use_features and transform is None:
            raise ValueError("reading images needs a transform (e.g. encoder.transform)")
        self.refs = [
            [torch.tensor(encode_caption(vocab, c, max_length), dtype=torch.long) for c in caps]
            for caps in ds["captions"]
        ]
        if any(not r for r in self.refs):
            bad = next(i for i, r in enumerate(self.refs) if not r)
            raise ValueError(f"row {bad} has no reference caption")
        self.pairs = [(i, k) for i, refs in enumerate(self.refs) for k in range(len(refs))]
        if self.use_features:
            self.ds = ds.with_format("torch", columns=["grid", "pooled"])
            self.grid = self.pooled = None
            if preload:  # one (M, N, C) float16 tensor in memory: no Arrow reads per item
                columns = self.ds[:]
                self.grid = columns["grid"].to(torch.float16)  # (M, N, C)
                self.pooled = columns["pooled"].float()  # (M, C)
        else:
            self.ds = ds.select_columns(["image"])

    def set_epoch(self, epoch: int) -> None:
        """Pick the references of `epoch` (mode "sample"); call before each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs) if self.mode == "all" else len(self.refs)

    def _pair(self, index: int) -> tuple[int, int]:
        if self.mode == "all":
            return self.pairs[index]
        k = int(
            np.random.default_rng([self.seed, self.epoch, index]).integers(len(self.refs[index]))
        )
        return index, k

    def lengths(self) -> list[int]:
        """Caption length of every item this epoch (for length bucketing)."""
        return [len(self.refs[i][k]) for i, k in map(self._pair, range(len(self)))]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        i, k = self._pair(index)
        item = {"caption": self.refs[i][k], "image_index": i}
        if self.use_features:
            if self.grid is not None:
                item["grid"], item["pooled"] = self.grid[i].float(), self.pooled[i]  # (N, C), (C,)
            else:
                row = self.ds[i]
                item["grid"], item["pooled"] = row["grid"].float(), row["pooled"].float()
        else:
            from captioner.imageio import to_rgb

            item["image"] = self.transform(to_rgb(self.ds[i]["image"]))  # (3, S, S)
        return item


def collate_captions(
    batch: Sequence[dict], *, pad_id: int = 0, sort_by_length: bool = False
) -> dict:
    """Stack features / images, pad captions with `pad_id`.

    Returns `captions` (B, T) long, `lengths` (B,) long, `image_index` (B,) long and `grid`
    (B, N, C) + `pooled` (B, C) or `image` (B, 3, S, S). With `sort_by_length` the batch is
    ordered longest caption first (as `pack_padded_sequence` wants).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    if sort_by_length:
        batch = sorted(batch, key=lambda item: -len(item["caption"]))
    lengths = torch.tensor([len(item["caption"]) for item in batch], dtype=torch.long)  # (B,)
    captions = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)  # (B, T)
    for row, item in enumerate(batch):
        captions[row, : len(item["caption"])] = item["caption"]
    out = {
        "captions": captions,
        "lengths": lengths,
        "image_index": torch.tensor([item["image_index"] for item in batch], dtype=torch.long),
    }
    for key in ("grid", "pooled", "image"):
        if key in batch[0]:
            out[key] = torch.stack([item[key] for item in batch])
    return out


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar caption length (less padding): shuffle, cut into pools of
    `batch_size * pool_batches` items, sort each pool by length, cut batches, shuffle them."""

    def __init__(
        self,
        dataset: CaptionDataset,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_batches: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.seed, self.drop_last, self.pool = seed, drop_last, batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for `epoch`, and let the dataset pick that epoch's references."""
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        lengths = self.dataset.lengths()
        order = list(range(len(lengths)))
        rng = random.Random(f"{self.seed}:{self.epoch}")
        if self.shuffle:
            rng.shuffle(order)
        batches = []
        for start in range(0, len(order), self.pool):
            pool = sorted(order[start : start + self.pool], key=lambda i: lengths[i])
            batches += [pool[j : j + self.batch_size] for j in range(0, len(pool), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
