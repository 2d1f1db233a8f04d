"""Text data for the sentiment recipe: encoded sentences, batches, word dropout and the
neutral texts (plain descriptions) the model learns to be unsure about."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from captioner.text import Vocabulary


class EncodedTexts(Dataset):
    """Sentences as id lists (no <start>/<end>) with integer labels."""

    def __init__(self, texts: list[str], labels: list[int], vocab: Vocabulary, max_length: int):
        self.ids = [
            vocab.encode(t, add_special=False)[:max_length] or [vocab.unk_id] for t in texts
        ]
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.labels[i]


def collate(items: list[tuple[list[int], int]]) -> dict[str, Tensor]:
    lengths = torch.tensor([len(ids) for ids, _ in items])
    ids = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)  # (B, T), 0 = <pad>
    for row, (seq, _) in enumerate(items):
        ids[row, : len(seq)] = torch.tensor(seq)
    return {"ids": ids, "lengths": lengths, "labels": torch.tensor([y for _, y in items])}


def labelled_texts(split, names: list[str], extra: list[str], extra_label: int):
    """(texts, label ids in `names`, matched by label name) of a split, plus the `extra`
    texts labelled `extra_label` (-1: no label, trained toward equal probabilities)."""
    theirs = split.features["label"].names
    ids = [names.index(theirs[y]) for y in split["label"]]
    return [*split["text"], *extra], [*ids, *[extra_label] * len(extra)]


def drop_words(ids: Tensor, p: float, unk_id: int) -> Tensor:
    """Replace each real token of ids (B, T) by `unk_id` with probability p."""
    if p <= 0:
        return ids
    hit = (torch.rand(ids.shape, device=ids.device) < p) & (ids != 0)
    return ids.masked_fill(hit, unk_id)


def neutral_texts(spec: str, *, split: str = "train", seed: int = 0) -> list[str]:
    """Descriptive captions for one split: `flickr8k:DIR`, `scenes[:N]` (N synthetic scene
    captions, default 1000) or a UTF-8 text FILE (one a line, train only), joined with '+'
    (see `captioner.data.sentiment_sources`)."""
    from captioner.data.sentiment_sources import caption_texts

    return caption_texts(spec, split, seed=seed) if spec else []
