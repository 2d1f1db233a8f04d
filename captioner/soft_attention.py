"""Soft attention of the caption decoder (Show, Attend and Tell): each step, the decoder's
hidden state scores every cell of the image grid, and the softmax of the scores weighs the
grid into one context vector. `captioner.decoders.CaptionDecoder` (attention "soft") holds one
`SoftAttention`; the keys of a grid are computed once per image (`keys2`) and shared by all
of that image's rows (beams, samples).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _usable(scratch: Tensor | None) -> bool:
    """Whether `scratch` may be written here: no grad, and an inference-mode tensor only
    inside inference mode."""
    if scratch is None or torch.is_grad_enabled():
        return False
    return torch.is_inference_mode_enabled() or not scratch.is_inference()


class SoftAttention(nn.Module):
    """Additive (Bahdanau) attention: score_i = v . tanh(W_f f_i + W_h h) + b.

    Computed as 2 v . sigmoid(2 W_f f_i + 2 W_h h): tanh(z) = 2 sigmoid(2z) - 1, and the
    constants (and b) cancel in the softmax. PyTorch's CPU sigmoid is much faster than its
    tanh; `keys2` = 2 W_f f is computed once per image (`keys2(grid)`)."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.key = nn.Linear(feature_dim, attention_dim)
        self.query = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)  # stays float in an int8 decoder

    def keys2(self, grid: Tensor) -> Tensor:
        return 2.0 * self.key(grid)  # (B, N, A)

    def forward(
        self, grid: Tensor, keys2: Tensor, h: Tensor, scratch: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """grid (B, N, C), keys2 (B, N, A), h (B*K, H) with K rows per image -> context
        (B*K, C), alpha (B*K, N). All K rows of an image attend with one batched product.
        scratch: without grad, a tensor whose memory holds the (B, K, N, A) sum from step to
        step (a fresh block of that size every step is mapped and faulted in anew once
        `captioner label` serves large blocks from mmap)."""
        b = grid.size(0)
        k = h.size(0) // b
        q2 = 2.0 * self.query(h).view(b, k, 1, -1)
        if _usable(scratch):
            z = torch.add(keys2[:, None], q2, out=scratch.resize_(b, k, *keys2.shape[1:]))
            z.sigmoid_()
        else:
            z = keys2[:, None] + q2  # (B, K, N, A)
            z = torch.sigmoid(z) if torch.is_grad_enabled() else torch.sigmoid_(z)
        v2 = 2.0 * self.score.weight.reshape(-1).to(z.dtype)  # (A,)
        alpha = torch.softmax(torch.matmul(z, v2), dim=-1)  # (B, K, N)
        context = torch.bmm(alpha, grid)  # (B, K, C)
        return context.view(b * k, -1), alpha.view(b * k, -1)

    def some_rows(
        self,
        grid: Tensor,
        keys2: Tensor,
        h: Tensor,
        rows: Tensor,
        total: int,
        scratch: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """`forward` (without grad) for some of its `total` rows: h (R', H) holds the rows
        `rows` (R',) of the B*K layout. The same operations on the same values per row."""
        b = grid.size(0)
        k = total // b
        out = scratch.resize_(rows.numel(), *keys2.shape[1:]) if _usable(scratch) else None
        z = torch.index_select(keys2, 0, rows // k, out=out)  # (R', N, A): the rows' keys
        z.add_(2.0 * self.query(h)[:, None]).sigmoid_()
        v2 = 2.0 * self.score.weight.reshape(-1).to(z.dtype)
        alpha = torch.softmax(torch.matmul(z, v2), dim=-1)  # (R', N)
        # context: the rows at their places in (B, K, N), other rows 0; one product per image
        spread = alpha.new_zeros(total, alpha.size(1)).index_copy_(0, rows, alpha)
        context = torch.bmm(spread.view(b, k, -1), grid).view(total, -1)
        return context.index_select(0, rows), alpha
