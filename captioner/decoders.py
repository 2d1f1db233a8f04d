"""The caption decoder (one-to-many): image features in, one word per step out.

Two families, chosen by `DecoderConfig.attention`:
- "none" (Show and Tell): the pooled image vector initialises the recurrent state and is
  injected into the input at every step.
- "soft" (Show, Attend and Tell): additive attention over the spatial grid at every step,
  scaled by a learned gating scalar; `alphas` feed the doubly stochastic regulariser.

The recurrent cell is "lstm", "gru" or "rnn" (plain tanh RNN). The decoder only knows how to
take one step (`step`); how a caption is searched lives in `captioner.decoding`.

State is a dict of tensors whose first dimension is the batch, so a search can reorder or
expand it with `index_select` without knowing what is inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CELLS = ("lstm", "gru", "rnn")
ATTENTIONS = ("none", "soft")
State = dict[str, Tensor]


@dataclass
class DecoderConfig:
    vocab_size: int
    feature_dim: int  # C of the encoder's grid / pooled vector
    embed_dim: int = 256
    hidden_dim: int = 512
    attention_dim: int = 256
    cell: str = "lstm"
    attention: str = "soft"
    dropout: float = 0.3
    tie_weights: bool = False

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        for name in ("vocab_size", "feature_dim", "embed_dim", "hidden_dim", "attention_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SoftAttention(nn.Module):
    """Additive (Bahdanau) attention: score_i = v . tanh(W_f f_i + W_h h)."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.key = nn.Linear(feature_dim, attention_dim)
        self.query = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, grid: Tensor, keys: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        # grid (B, N, C), keys (B, N, A) = self.key(grid) precomputed, h (B, H)
        e = self.score(torch.tanh(keys + self.query(h)[:, None, :])).squeeze(-1)  # (B, N)
        alpha = torch.softmax(e, dim=-1)  # (B, N)
        context = torch.bmm(alpha[:, None, :], grid).squeeze(1)  # (B, C)
        return context, alpha


class CaptionDecoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=0)
        self.init_h = nn.Linear(c.feature_dim, c.hidden_dim)
        self.init_c = nn.Linear(c.feature_dim, c.hidden_dim) if c.cell == "lstm" else None
        if c.attention == "soft":
            self.attend = SoftAttention(c.feature_dim, c.hidden_dim, c.attention_dim)
            self.gate = nn.Linear(
                c.hidden_dim, c.feature_dim
            )  # the f_beta gating scalar, per channel
            self.inject = None
        else:
            self.attend = self.gate = None
            self.inject = nn.Linear(c.feature_dim, c.embed_dim)
        input_dim = c.embed_dim + (c.feature_dim if c.attention == "soft" else c.embed_dim)
        cell_cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}[c.cell]
        self.rnn = cell_cls(input_dim, c.hidden_dim)
        self.drop = nn.Dropout(c.dropout)
        if c.tie_weights:
            self.pre_out = nn.Linear(c.hidden_dim, c.embed_dim)
            self.out = nn.Linear(c.embed_dim, c.vocab_size)
            self.out.weight = self.embed.weight
        else:
            self.pre_out = None
            self.out = nn.Linear(c.hidden_dim, c.vocab_size)

    def init_state(self, grid: Tensor, pooled: Tensor) -> State:
        """grid (B, N, C), pooled (B, C) -> the state before the first word."""
        mean = grid.mean(dim=1) if self.config.attention == "soft" else pooled  # (B, C)
        state: State = {"h": torch.tanh(self.init_h(mean))}
        if self.init_c is not None:
            state["c"] = torch.tanh(self.init_c(mean))
        if self.config.attention == "soft":
            state["grid"] = grid
            state["keys"] = self.attend.key(grid)  # (B, N, A), computed once per image
        else:
            state["image"] = self.inject(pooled)  # (B, E)
        return state

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State, Tensor | None]:
        """tokens (B,) -> logits (B, V), new state, attention weights (B, N) or None."""
        x = self.embed(tokens)  # (B, E)
        h = state["h"]
        alpha = None
        if self.config.attention == "soft":
            context, alpha = self.attend(state["grid"], state["keys"], h)
            context = torch.sigmoid(self.gate(h)) * context  # (B, C)
            x = torch.cat([x, context], dim=-1)
        else:
            x = torch.cat([x, state["image"]], dim=-1)
        new = dict(state)
        if self.config.cell == "lstm":
            new["h"], new["c"] = self.rnn(x, (h, state["c"]))
        else:
            new["h"] = self.rnn(x, h)
        out = self.drop(new["h"])
        if self.pre_out is not None:
            out = self.pre_out(out)
        return self.out(out), new, alpha

    def forward(
        self, grid: Tensor, pooled: Tensor, captions: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing. captions (B, T) start with <start>; returns logits (B, T-1, V)
        predicting captions[:, 1:], and attention weights (B, T-1, N) or None.
        Padding positions are masked by the loss (see `caption_loss`)."""
        state = self.init_state(grid, pooled)
        logits, alphas = [], []
        for t in range(captions.size(1) - 1):
            step_logits, state, alpha = self.step(captions[:, t], state)
            logits.append(step_logits)
            if alpha is not None:
                alphas.append(alpha)
        return torch.stack(logits, 1), (torch.stack(alphas, 1) if alphas else None)


def caption_loss(
    logits: Tensor,
    captions: Tensor,
    alphas: Tensor | None = None,
    *,
    pad_id: int = 0,
    alpha_c: float = 1.0,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy over non-padding targets plus, for soft attention, the doubly stochastic
    regulariser alpha_c * mean_i (1 - sum_t alpha_ti)^2 (each pixel attended about once)."""
    targets = captions[:, 1:]  # (B, T-1)
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=label_smoothing,
    )
    if alphas is not None and alpha_c > 0:
        mask = (targets != pad_id).float()[:, :, None]  # (B, T-1, 1)
        coverage = (alphas * mask).sum(dim=1)  # (B, N)
        loss = loss + alpha_c * ((1.0 - coverage) ** 2).mean()
    return loss
