"""Text data for the sentiment recipe: encoded sentences, batches, word dropout and the
neutral texts (plain descriptions) the model learns to be unsure about."""

from __future__ import annotations

from pathlib import Path

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


def drop_words(ids: Tensor, p: float, unk_id: int) -> Tensor:
    """Replace each real token of ids (B, T) by `unk_id` with probability p."""
    if p <= 0:
        return ids
    hit = (torch.rand(ids.shape, device=ids.device) < p) & (ids != 0)
    return ids.masked_fill(hit, unk_id)


def neutral_texts(spec: str, *, seed: int = 0) -> list[str]:
    """`scenes[:N]`: N captions of random synthetic scenes (default 1000); else a UTF-8 text
    file with one sentence per line."""
    if not spec:
        return []
    kind, _, count = spec.partition(":")
    if kind == "scenes" and (not count or count.isdigit()):
        import numpy as np

        from captioner.data.scene_grammar import canonical_caption
        from captioner.data.scenes import generate_scene

        rng = np.random.default_rng(seed)
        return [canonical_caption(generate_scene(rng)) for _ in range(int(count or 1000))]
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--neutral {spec}: no such file (or use scenes[:N])")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"--neutral {path}: not UTF-8 text ({e})") from None
    return [line.strip() for line in lines if line.strip()]
