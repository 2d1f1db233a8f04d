"""Vocabulary, CaptionDataset ("all" / "sample" modes, features or images), collate padding
and length buckets."""

import io
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from captioner.data import CaptionDataset, LengthBucketSampler, build_vocabulary, collate_captions
from captioner.data.caption_dataset import encode_caption
from captioner.data.common import CaptionRecord, DataReport, build_caption_dict

CAPTIONS = [
    ["a red ball", "the red ball is on the floor", "ball"],
    ["two blue cubes next to a small red ball"],
    ["a green cube", "one green cube"],
    ["a tiny yellow star above two blue cubes and a red ball", "a star"],
]


def features_split(n_grid=3, channels=2):
    from datasets import Array2D, Dataset, Features, List, Value

    feats = Features(
        {
            "captions": List(Value("string")),
            "image_id": Value("string"),
            "grid": Array2D(shape=(n_grid, channels), dtype="float16"),
            "pooled": List(Value("float32"), length=channels),
        }
    )
    grid = [np.full((n_grid, channels), i, dtype=np.float16) for i in range(len(CAPTIONS))]
    return Dataset.from_dict(
        {
            "captions": CAPTIONS,
            "image_id": [str(i) for i in range(len(CAPTIONS))],
            "grid": grid,
            "pooled": [[i, -i] for i in range(len(CAPTIONS))],
        },
        features=feats,
    )


def image_split():
    def png(i):
        buf = io.BytesIO()
        Image.new("RGB", (6, 6), (60 * i, 0, 0)).save(buf, format="PNG")
        return buf.getvalue()

    records = [CaptionRecord(png(i), caps, str(i)) for i, caps in enumerate(CAPTIONS)]
    return build_caption_dict({"train": records}, DataReport(source="t"))["train"]


@pytest.fixture
def vocab():
    return build_vocabulary(features_split())


def test_build_vocabulary(vocab):
    assert vocab.itos[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    counts = Counter(w for caps in CAPTIONS for c in caps for w in c.split())
    assert vocab.itos[4:] == sorted(counts, key=lambda w: (-counts[w], w))  # most frequent first
    assert vocab.itos[4:7] == ["a", "ball", "red"]
    small = build_vocabulary(features_split(), min_count=3)
    assert small.itos[4:] == ["a", "ball", "red", "blue", "cube", "cubes"][: len(small) - 4]
    assert set(small.itos[4:]) == {w for w, c in counts.items() if c >= 3}


def test_encode_caption_truncates_and_keeps_end(vocab):
    ids = encode_caption(vocab, CAPTIONS[3][0], 6)
    assert len(ids) == 6 and ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == "a tiny yellow star"
    assert encode_caption(vocab, "a star", 6) == vocab.encode("a star")
    with pytest.raises(ValueError, match="max_length"):
        encode_caption(vocab, "a star", 1)


def test_mode_all_yields_every_reference_once(vocab):
    ds = CaptionDataset(features_split(), vocab, mode="all", max_length=8)
    assert len(ds) == sum(len(c) for c in CAPTIONS) == 8
    seen = Counter()
    for k in range(len(ds)):
        item = ds[k]
        i = item["image_index"]
        assert item["grid"].shape == (3, 2) and item["grid"].dtype == torch.float32
        assert torch.all(item["grid"] == i) and item["pooled"].tolist() == [i, -i]
        seen[(i, vocab.decode(item["caption"]))] += 1
    assert len(seen) == 8 and set(seen.values()) == {1}
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_mode_sample_one_reference_per_image_per_epoch(vocab):
    ds = CaptionDataset(features_split(), vocab, mode="sample", seed=3)
    assert len(ds) == 4
    first = [ds[i]["caption"].tolist() for i in range(4)]
    assert first == [ds[i]["caption"].tolist() for i in range(4)]  # same epoch, same pick
    picks = set()
    for epoch in range(30):
        ds.set_epoch(epoch)
        picks |= {(i, tuple(ds[i]["caption"].tolist())) for i in range(4)}
    assert len(picks) == 8  # every reference of every image drawn at some epoch
    again = CaptionDataset(features_split(), vocab, mode="sample", seed=3)
    again.set_epoch(29)
    assert [again[i]["caption"].tolist() for i in range(4)] == [
        ds[i]["caption"].tolist() for i in range(4)
    ]


def test_preload_gives_the_same_items(vocab):
    lazy = CaptionDataset(features_split(), vocab)
    eager = CaptionDataset(features_split(), vocab, preload=True)
    for k in range(len(lazy)):
        a, b = lazy[k], eager[k]
        assert torch.equal(a["grid"], b["grid"]) and torch.equal(a["caption"], b["caption"])


def test_image_mode_and_collate(vocab):
    def transform(img):
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(
            2, 0, 1
        )  # (3, 6, 6)

    ds = CaptionDataset(image_split(), vocab, transform=transform)
    batch = collate_captions([ds[0], ds[4]])
    assert batch["image"].shape == (2, 3, 6, 6)
    assert batch["image_index"].tolist() == [0, 2]  # item 4 is image 2's first reference
    assert batch["image"][1, 0, 0, 0].item() == pytest.approx(120 / 255)
    with pytest.raises(ValueError, match="transform"):
        CaptionDataset(image_split(), vocab)


def test_collate_pads_with_zero_and_sorts(vocab):
    ds = CaptionDataset(features_split(), vocab, max_length=30)
    items = [ds[2], ds[3], ds[6]]  # "ball", "two blue cubes ...", "a tiny yellow star ..."
    batch = collate_captions(items)
    lengths = [len(it["caption"]) for it in items]
    assert batch["lengths"].tolist() == lengths and batch["captions"].shape == (3, max(lengths))
    assert batch["captions"].dtype == torch.long and batch["grid"].shape == (3, 3, 2)
    assert batch["pooled"].shape == (3, 2) and batch["image_index"].tolist() == [0, 1, 3]
    for row, n in enumerate(lengths):
        assert batch["captions"][row, :n].tolist() == items[row]["caption"].tolist()
        assert (batch["captions"][row, n:] == 0).all()
    ordered = collate_captions(items, sort_by_length=True)
    assert ordered["lengths"].tolist() == sorted(lengths, reverse=True)
    assert ordered["image_index"].tolist() == [3, 1, 0]
    with pytest.raises(ValueError, match="empty"):
        collate_captions([])


def test_length_buckets_cover_everything_with_less_padding(vocab):
    ds = CaptionDataset(features_split(), vocab)
    sampler = LengthBucketSampler(ds, batch_size=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    lengths = ds.lengths()
    srt = sorted(lengths)  # one pool holds everything: batches are neighbours in length order
    expected = sorted(tuple(srt[j : j + 2]) for j in range(0, len(srt), 2))
    assert sorted(tuple(sorted(lengths[i] for i in b)) for b in batches) == expected
    sampler.set_epoch(1)
    assert sorted(i for b in sampler for i in b) == list(range(len(ds)))
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_captions)
    total = sum(batch["captions"].shape[0] for batch in loader)
    assert total == len(ds)
    assert len(LengthBucketSampler(ds, batch_size=3, drop_last=True)) == 2
    assert all(len(b) == 3 for b in LengthBucketSampler(ds, batch_size=3, drop_last=True))


def test_bad_arguments(vocab):
    with pytest.raises(ValueError, match="mode"):
        CaptionDataset(features_split(), vocab, mode="every")
    with pytest.raises(ValueError, match="grid"):
        CaptionDataset(features_split().remove_columns(["grid", "pooled"]), vocab)
