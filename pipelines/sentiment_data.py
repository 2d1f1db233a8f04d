"""Text data for the sentiment recipe: encoded sentences, batches, word dropout, the
neutral texts (plain descriptions) the model learns to be unsure about, and pretrained word
vectors (`--vectors`) for the embedding."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import Dataset

from captioner.text import Vocabulary

if TYPE_CHECKING:
    from captioner.sentiment import SentimentModel

log = logging.getLogger(__name__)


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


def vectors_name(spec: str) -> str:
    """What the model's config records of `--vectors`: `glove`, or a file / folder's name (a
    local path would leak the trainer's folders into a shared model)."""
    return spec if spec in ("", "glove") else Path(spec).name


def pretrained_embeddings(model: SentimentModel, vocab: Vocabulary, spec: str, *, freeze: bool):
    """Copy the vectors of the vocabulary's words into the embedding (others keep their random
    start; `<pad>` stays zero); `freeze` keeps the whole table fixed."""
    from captioner.data.vectors import load_vectors

    matrix, found = load_vectors(spec, vocab.itos)
    if matrix.shape[1] != model.config.embed_dim:
        raise ValueError(
            f"--vectors {spec} has {matrix.shape[1]}-d vectors but --embed-dim is "
            f"{model.config.embed_dim}: pass --embed-dim {matrix.shape[1]}"
        )
    found[0] = False
    with torch.no_grad():
        weight = model.embed.weight
        # random rows on the pretrained rows' scale, so both kinds start alike
        scale = float(matrix[found].std()) if found.any() else 1.0
        weight.normal_(0.0, scale)
        weight[found] = matrix[found]
        weight[0] = 0.0
    model.embed.weight.requires_grad_(not freeze)
    log.info("pretrained vectors (%s) for %d of %d words%s", spec, int(found.sum()),
             len(vocab) - 4, ", frozen" if freeze else "")  # fmt: skip
