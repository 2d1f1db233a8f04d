"""The training data loader, and batches of items of similar length.

`make_loader` builds the `Trainer`'s DataLoader: random batches (a `DistributedSampler`
under torchrun), or the batches of a batch sampler such as `LengthBatches`.

`LengthBatches` is what sequence-to-sequence recipes use: a batch is padded to its longest
item, so random batches of Multi30k captions carry about as many padding positions as real
subwords (measured: 1.89 M padded positions for 0.93 M real ones over an epoch of EN->DE at
batch 64), and the RNN steps over the padding all the same. Each epoch it shuffles the items,
sorts each pool of `pool` batches' worth of items by length, cuts the pool into batches and
shuffles the batches (the padding falls to about 9 %). The order depends only on the seed and
the epoch, as the random batches' does, so `--resume` continues with the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from captioner.pipelines.runstate import DistInfo

__all__ = ["LengthBatches", "length_batches", "make_loader"]


class LengthBatches(Sampler[list[int]]):
    """Batches of indices whose `lengths` (any sortable keys, e.g. (target, source) lengths)
    are close. `lengths` may be a function, read at the start of each epoch (after the
    trainer's `set_epoch` calls), for datasets whose items change from epoch to epoch. Under
    DDP each of `world_size` ranks takes every `world_size`-th batch of the same global order,
    and every rank gets the same number of batches (the few left over at the end of an epoch
    are dropped there)."""

    def __init__(
        self,
        lengths: Sequence[Any] | Callable[[], Sequence[Any]],
        batch_size: int,
        *,
        pool: int = 100,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size and pool must be >= 1, got {batch_size} and {pool}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.lengths, self.batch_size, self.pool = lengths, batch_size, pool
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """The epoch's whole batch order, before the ranks split it."""
        lengths = self.current_lengths()
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(lengths), generator=gen).tolist()
        size = self.batch_size * self.pool
        out: list[list[int]] = []
        for start in range(0, len(order), size):
            part = sorted(order[start : start + size], key=lengths.__getitem__)
            out += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]

    def current_lengths(self) -> Sequence[Any]:
        return self.lengths() if callable(self.lengths) else self.lengths

    def _per_rank(self, total: int) -> int:
        return total if self.world_size == 1 else total // self.world_size

    def __len__(self) -> int:
        return self._per_rank(-(-len(self.current_lengths()) // self.batch_size))

    def __iter__(self) -> Iterator[list[int]]:
        whole = self.batches()  # reads the lengths once; len(self) would read them again
        return iter(whole[self.rank :: self.world_size][: self._per_rank(len(whole))])


def length_batches(lengths, config: Any, dist: DistInfo) -> LengthBatches | None:
    """A recipe's batch sampler: batches of similar length cut from pools of
    `config.length_pool` batches (its `batch_size` and `seed`, this process's DDP rank), or
    None, the trainer's random batches, when the pool is 0."""
    if not config.length_pool:
        return None
    return LengthBatches(lengths, config.batch_size, pool=config.length_pool, seed=config.seed,
                         rank=dist.rank, world_size=dist.world_size)  # fmt: skip


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int,
    dist: DistInfo,
    device: torch.device,
    seed: int,
    collate_fn: Callable | None = None,
    batch_sampler: Sampler | None = None,
) -> tuple[DataLoader, torch.Generator]:
    """The training DataLoader and the generator its shuffling draws from (the trainer seeds
    it each epoch). With a `batch_sampler`, its batches replace the random ones."""
    gen = torch.Generator()
    common = dict(
        collate_fn=collate_fn,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
    )
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common), gen
    sampler = None
    if dist.world_size > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=dist.world_size, rank=dist.rank, seed=seed
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=gen,
        **common,
    )
    return loader, gen
