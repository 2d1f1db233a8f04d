"""The many-to-one sentiment model: a (bi)LSTM or GRU reads a sentence, one label comes out."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from captioner.text import Vocabulary


@dataclass
class SentimentConfig:
    vocab_size: int
    labels: list[str] = field(default_factory=lambda: ["negative", "positive"])
    embed_dim: int = 128
    hidden_dim: int = 128
    cell: str = "lstm"  # "lstm" | "gru"
    bidirectional: bool = True
    num_layers: int = 1
    dropout: float = 0.3
    max_length: int = 64

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        if len(self.labels) < 2:
            raise ValueError("a sentiment model needs at least two labels")


class SentimentModel(nn.Module):
    """Embedding -> packed (bi)RNN -> [last state ; masked max over time] -> label logits."""

    def __init__(self, config: SentimentConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=0)
        rnn_cls = nn.LSTM if c.cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            c.embed_dim,
            c.hidden_dim,
            num_layers=c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        directions = 2 if c.bidirectional else 1
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(2 * directions * c.hidden_dim, len(c.labels))

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) padded with 0, lengths (B,) -> logits (B, K)."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, hidden = self.rnn(packed)
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers*dirs, B, H)
        dirs = 2 if self.config.bidirectional else 1
        last = torch.cat(list(h[-dirs:]), dim=-1)  # (B, dirs*H)
        out, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
        pooled = out.max(dim=1).values  # (B, dirs*H)
        return self.head(self.drop(torch.cat([last, pooled], dim=-1)))


def encode_texts(texts: list[str], vocab: Vocabulary, max_length: int) -> tuple[Tensor, Tensor]:
    """Texts -> (ids (B, T) padded with 0, lengths (B,)). Empty texts become one `<unk>`."""
    seqs = [vocab.encode(t, add_special=False)[:max_length] or [vocab.unk_id] for t in texts]
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(len(seqs), int(lengths.max()) if seqs else 1, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, lengths
