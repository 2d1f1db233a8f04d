"""The many-to-one sentiment model: a (bi)LSTM or GRU reads a sentence, one label comes out.

Labels are `negative | positive` (older models) or `negative | neutral | positive`. The
states over time are pooled into one vector: `last_max` (last state + max over time, the
pooling of the first models, kept so they still load), `max_mean` (max + mean over time) or
`attention` (a learned weighted mean + max over time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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
    pooling: str = "last_max"  # "last_max" | "max_mean" | "attention"
    vectors: str = ""  # provenance only: the pretrained word vectors the embedding started from

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if len(self.labels) < 2:
            raise ValueError("a sentiment model needs at least two labels")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SentimentConfig:
        """Strict: unknown keys are an error naming them (missing `pooling` = an older model)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sentiment config key(s) {unknown}")
        return cls(**data)


POOLINGS = ("last_max", "max_mean", "attention")


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
        width = (2 if c.bidirectional else 1) * c.hidden_dim
        self.drop = nn.Dropout(c.dropout)
        if c.pooling == "attention":
            self.score = nn.Linear(width, 1)
        self.head = nn.Linear(2 * width, len(c.labels))

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) padded with 0, lengths (B,) -> logits (B, K)."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, hidden = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)  # (B, T', D), zeros past the end
        mask = (
            torch.arange(out.size(1), device=out.device)[None, :] < lengths.to(out.device)[:, None]
        )
        mx = out.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values  # (B, D)
        if self.config.pooling == "last_max":
            h = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers*dirs, B, H)
            dirs = 2 if self.config.bidirectional else 1
            other = torch.cat(list(h[-dirs:]), dim=-1)  # (B, D)
        elif self.config.pooling == "max_mean":
            other = out.sum(dim=1) / lengths.clamp(min=1).to(out)[:, None]  # (B, D)
        else:
            s = self.score(out).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T')
            other = (torch.softmax(s, dim=-1)[..., None] * out).sum(dim=1)  # (B, D)
        return self.head(self.drop(torch.cat([other, mx], dim=-1)))


def encode_texts(texts: list[str], vocab: Vocabulary, max_length: int) -> tuple[Tensor, Tensor]:
    """Texts -> (ids (B, T) padded with 0, lengths (B,)). Empty texts become one `<unk>`."""
    seqs = [vocab.encode(t, add_special=False)[:max_length] or [vocab.unk_id] for t in texts]
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(len(seqs), int(lengths.max()) if seqs else 1, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, lengths


@torch.no_grad()
def sentiment_probs(
    model: SentimentModel,
    vocab: Vocabulary,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> Tensor:
    """Label probabilities (n, K) of `texts` on the CPU (eval mode, batches of `batch_size`)."""
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    out = [torch.zeros(0, len(model.config.labels))]
    for i in range(0, len(texts), batch_size):
        ids, lengths = encode_texts(list(texts[i : i + batch_size]), vocab, model.config.max_length)
        out.append(torch.softmax(model(ids.to(device), lengths).float(), dim=-1).cpu())
    model.train(was)
    return torch.cat(out)


def binary_decision(probs: Tensor, labels: Sequence[str]) -> Tensor:
    """Positive-vs-negative decision (n,) as 0 = negative / 1 = positive, ignoring any other
    label (the neutral class), as binary benchmarks are scored."""
    names = list(labels)
    return (probs[:, names.index("positive")] > probs[:, names.index("negative")]).long()
