"""Batches of similar length (`LengthBatches`) and the trainer running on them."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from captioner.pipelines.batching import LengthBatches
from captioner.pipelines.trainer import TrainConfig, Trainer


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 50) for _ in range(n)]


def _padded(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_every_item_once_per_epoch_and_the_length_says_how_many_batches():
    lengths = _lengths(1003)
    sampler = LengthBatches(lengths, 16, pool=10, seed=3)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 63  # ceil(1003 / 16)
        assert sorted(i for b in batches for i in b) == list(range(1003))
        assert sum(len(b) < 16 for b in batches) == 1  # only the epoch's last scrap is short


def test_batches_are_of_similar_length_and_carry_far_less_padding_than_random_ones():
    lengths = _lengths()
    batches = list(LengthBatches(lengths, 32, pool=20))
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(lengths), generator=gen).tolist()
    random_batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    real = sum(lengths)
    assert _padded(random_batches, lengths) > 1.5 * real
    assert _padded(batches, lengths) < 1.1 * real
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert max(spread) <= 10 and sorted(spread)[len(spread) // 2] <= 3  # of 47 possible


def test_the_order_depends_on_seed_and_epoch_only():
    lengths = _lengths()
    a, b = LengthBatches(lengths, 32, seed=1), LengthBatches(lengths, 32, seed=1)
    for s in (a, b):
        s.set_epoch(4)
    assert list(a) == list(b)
    b.set_epoch(5)
    assert list(a) != list(b)
    assert list(LengthBatches(lengths, 32, seed=2)) != list(LengthBatches(lengths, 32, seed=1))
    # not simply shortest first: the batches of a pool are shuffled
    first = [max(lengths[i] for i in batch) for batch in a]
    assert first != sorted(first)


def test_ranks_split_one_order_into_equal_disjoint_shares():
    lengths = _lengths(1001)
    whole = LengthBatches(lengths, 10, seed=5).batches()
    shares = [list(LengthBatches(lengths, 10, seed=5, rank=r, world_size=3)) for r in range(3)]
    assert {len(s) for s in shares} == {101 // 3}
    seen = [i for s in shares for b in s for i in b]
    assert len(seen) == len(set(seen))
    assert shares[1][0] == whole[1] and shares[2][1] == whole[5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"pool": 0}, "pool"),
        ({"rank": 2, "world_size": 2}, "rank 2"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    args = {"batch_size": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        LengthBatches(_lengths(), args.pop("batch_size"), **args)


class _Seqs(Dataset):
    """Sequences of ones of a given length; the batch remembers which items it holds."""

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return i


def test_the_trainer_trains_on_the_samplers_batches_and_resumes_them_exactly(tmp_path):
    lengths = _lengths(200)
    seen: list[list[int]] = []

    def collate(items):
        seen.append(list(items))
        longest = max(lengths[i] for i in items)
        x = torch.zeros(len(items), longest)
        for row, i in enumerate(items):
            x[row, : lengths[i]] = 1.0
        return x

    def fit(run_dir, epochs=2, resume=False, stop_after=0):
        torch.manual_seed(0)
        model = nn.Linear(50, 1)
        cfg = TrainConfig(epochs=epochs, batch_size=16, lr=0.01, warmup=0, device="cpu",
                          plot_every=0, resume=resume, stop_after=stop_after)  # fmt: skip
        sampler = LengthBatches(lengths, 16, pool=4, seed=cfg.seed)

        def loss_fn(m, x):
            return m(nn.functional.pad(x, (0, 50 - x.shape[1]))).pow(2).mean()

        Trainer(model=model, config=cfg, train_dataset=_Seqs(lengths), collate_fn=collate,
                loss_fn=loss_fn, run_dir=run_dir, batch_sampler=sampler).fit()  # fmt: skip
        return model

    full = fit(tmp_path / "full")
    expected = []
    for epoch in (1, 2):
        s = LengthBatches(lengths, 16, pool=4, seed=0)
        s.set_epoch(epoch)
        expected += list(s)
    assert seen == expected
    fit(tmp_path / "split", stop_after=1)  # as if killed after epoch 1
    resumed = fit(tmp_path / "split", resume=True)
    assert torch.equal(full.weight, resumed.weight)


def test_recipes_refuse_a_negative_pool_before_any_work_and_pool_0_means_random_batches():
    from types import SimpleNamespace

    from captioner.pipelines.batching import length_batches
    from captioner.pipelines.train_everyday import EverydayConfig
    from captioner.pipelines.train_translator import TranslateTrainConfig

    for make in (lambda **kw: EverydayConfig(out="o", **kw),
                 lambda **kw: TranslateTrainConfig(dataset="d", out="o", **kw)):  # fmt: skip
        with pytest.raises(ValueError, match="--length-pool must be >= 0, got -1"):
            make(length_pool=-1)
        dist = SimpleNamespace(rank=1, world_size=2)
        assert length_batches([1, 2, 3], make(length_pool=0), dist) is None
        made = length_batches([1, 2, 3], make(length_pool=7, batch_size=2, seed=4), dist)
        assert (made.pool, made.batch_size, made.seed, made.rank, made.world_size) == (
            7,
            2,
            4,
            1,
            2,
        )
    TrainConfig()  # a recipe without the field is not asked for it
