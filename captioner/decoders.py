"""The caption decoder (one-to-many): image features in, one word per step out.

Two families, chosen by `DecoderConfig.attention`:
- "none" (Show and Tell): the pooled image vector initialises the recurrent state and is
  injected into the input at every step.
- "soft" (Show, Attend and Tell): additive attention over the spatial grid at every step
  (`captioner.soft_attention.SoftAttention`), scaled by a learned gating scalar; `alphas`
  feed the doubly stochastic regulariser.

The recurrent cell is "lstm", "gru" or "rnn" (plain tanh RNN). The decoder only knows how to
take one step (`step`); how a caption is searched lives in `captioner.decoding`.

Two kinds of tensors feed a step:
- the per-image *context* (`context(grid, pooled)`: the grid and its attention keys, or the
  injected image vector), computed once per image and never copied per beam;
- the per-row *state* (`init_state`: h, and c for an LSTM), a dict of tensors whose first
  dimension is the row, so a search can reorder or expand it with `index_select` without
  knowing what is inside. Rows are grouped by image: with K rows per image (beams, samples),
  row b*K + j belongs to image b.
`start(grid, pooled)` binds the two: it returns `step(tokens, state)` and the first state.
A search may pass `live` (R,) to that step: the rows it will not read (finished or dead
beams) are skipped, and the rows it reads get the same results (`CaptionDecoder.step`).

`quantize_decoder` makes an int8 dynamically quantised copy for CPU inference.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captioner.soft_attention import SoftAttention

CELLS = ("lstm", "gru", "rnn")
ATTENTIONS = ("none", "soft")
State = dict[str, Tensor]
Context = dict[str, Tensor]
StepFn = Callable[[Tensor, State], tuple[Tensor, State, "Tensor | None"]]
log = logging.getLogger(__name__)


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
    # Concepts (captioner.concepts): with num_concepts > 0 the decoder also reads the caption
    # words the tagger sees. It holds a copy of the ImageNet tagger (num_classes outputs) and
    # which classes name which concept, so `start(grid, pooled)` finds a photo's concepts on
    # its own; training passes them explicitly (text-only captions have no photo).
    num_concepts: int = 0
    num_classes: int = 1000
    concept_top_k: int = 5
    concept_threshold: float = 0.1
    # Caption styles: with num_styles > 0 (concept decoders only) a learned vector per style
    # joins the concept input, so rows from corpora that caption differently ("a dog is
    # running" vs "a dog running") train one decoder; `style` is the one it writes in.
    num_styles: int = 0
    style: int = 0

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
        if self.num_concepts < 0 or (self.num_concepts and self.concept_top_k <= 0):
            raise ValueError("num_concepts must be >= 0 and concept_top_k positive")
        if self.num_styles < 0 or (self.num_styles and not self.num_concepts):
            raise ValueError("num_styles must be >= 0 and needs num_concepts > 0")
        if self.num_styles and not 0 <= self.style < self.num_styles:
            raise ValueError(f"style must be in [0, {self.num_styles}), got {self.style}")


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
        if c.num_concepts:
            self.tagger = nn.Linear(c.feature_dim, c.num_classes).requires_grad_(False)
            self.register_buffer("concept_classes", torch.zeros(c.num_classes, c.num_concepts))
            self.register_buffer("concept_ids", torch.zeros(c.num_concepts, dtype=torch.long))
            self.concept_init = nn.Linear(c.embed_dim, c.hidden_dim)
            self.copy = nn.Linear(c.hidden_dim, 1)  # how much each step copies a concept
            input_dim += c.embed_dim
        else:
            self.tagger = self.concept_init = self.copy = None
        self.styles = nn.Embedding(c.num_styles, c.embed_dim) if c.num_styles else None
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

    def concepts(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """A photo's concepts from its pooled features (B, C): vocabulary ids (B, K) and
        weights (B, K), the summed tagger probability of each concept's classes, most
        probable first; concepts under `concept_threshold` get weight 0."""
        c = self.config
        probs = torch.softmax(self.tagger(pooled.float()), dim=-1)  # (B, classes)
        scores = probs @ self.concept_classes.float()  # (B, num_concepts)
        weights, idx = scores.topk(min(c.concept_top_k, c.num_concepts), dim=1)
        weights = torch.where(weights >= c.concept_threshold, weights, torch.zeros_like(weights))
        return self.concept_ids[idx], weights

    def init_state(self, grid: Tensor, pooled: Tensor, context: Context | None = None) -> State:
        """grid (B, N, C), pooled (B, C) -> the per-row state before the first word."""
        mean = grid.mean(dim=1) if self.config.attention == "soft" else pooled  # (B, C)
        h, c = self.init_h(mean), self.init_c(mean) if self.init_c is not None else None
        if context is not None and "concept" in context:
            extra = self.concept_init(context["concept"])  # (B, H)
            h = h + extra
            c = c + extra if c is not None else None
        state: State = {"h": torch.tanh(h)}
        if c is not None:
            state["c"] = torch.tanh(c)
        if context is not None and "concept" in context:
            state["said"] = torch.zeros_like(context["concept_weights"])  # (B, K) copied yet?
        return state

    def context(
        self,
        grid: Tensor,
        pooled: Tensor,
        concepts: tuple[Tensor, Tensor] | None = None,
        styles: Tensor | None = None,
    ) -> Context:
        """The per-image tensors every step reads: grid (B, N, C) and its attention keys, or
        the injected image vector (B, E); with concepts their ids, weights (B, K) and
        weighted mean embedding (B, E), plus the style vector (`styles` (B,) ids, default
        `config.style`). Computed once per image, shared by its rows. Without grad also
        "scratch", memory the attention reuses from step to step."""
        if self.config.attention == "soft":
            ctx = {"grid": grid, "keys2": self.attend.keys2(grid)}
            if not torch.is_grad_enabled():
                ctx["scratch"] = grid.new_empty(0)  # SoftAttention's step-to-step memory
        else:
            ctx = {"image": self.inject(pooled)}
        if self.config.num_concepts:
            ids, weights = concepts if concepts is not None else self.concepts(pooled)
            weights = weights.to(grid.dtype)
            ctx["concept_ids"], ctx["concept_weights"] = ids, weights
            ctx["concept"] = (self.embed(ids) * weights[..., None]).sum(1)  # (B, E)
            if self.styles is not None:
                if styles is None:
                    styles = torch.full_like(ids[:, 0], self.config.style)
                ctx["concept"] = ctx["concept"] + self.styles(styles).to(ctx["concept"].dtype)
        return ctx

    def start(
        self,
        grid: Tensor,
        pooled: Tensor,
        concepts: tuple[Tensor, Tensor] | None = None,
        styles: Tensor | None = None,
    ) -> tuple[StepFn, State]:
        """`step(tokens, state)` bound to these images' context, and the first state: what
        the searches in `captioner.decoding` take. `concepts` (ids, weights), each (B, K),
        replace the ones the decoder's tagger finds (training on text-only captions);
        `styles` (B,) the decoder's own caption style (training on several corpora)."""
        context = self.context(grid, pooled, concepts, styles)
        step: Any = functools.partial(self.step, context=context)
        # `step`'s `live` (rows skipped); not for a step replaced on a subclass or instance
        step.takes_live = getattr(self.step, "__func__", None) is CaptionDecoder.step
        return step, self.init_state(grid, pooled, context)

    def step(
        self, tokens: Tensor, state: State, context: Context, live: Tensor | None = None
    ) -> tuple[Tensor, State, Tensor | None]:
        """tokens (R,) -> logits (R, V), new state, attention weights (R, N) or None, for R
        rows grouped by image (R = B*K for B images in `context`).

        live: (R,) bool, the rows whose results the caller reads (a beam search's unfinished
        beams). Without grad the other rows are skipped: they get logits 0, alpha 0 and
        their old state. The rows read get the same results as without `live`, bit for bit
        where the matrix products allow it (`compute_rows`)."""
        if live is not None and not torch.is_grad_enabled():
            rows = compute_rows(live)
            if rows is not None:
                return self._step_rows(tokens, state, context, rows)
        x = self.embed(tokens)  # (R, E)
        h = state["h"]
        alpha = None
        if self.config.attention == "soft":
            ctx, alpha = self.attend(context["grid"], context["keys2"], h, context.get("scratch"))
            x = torch.cat([x, torch.sigmoid(self.gate(h)) * ctx], dim=-1)  # (R, E + C)
        else:
            image = context["image"]  # (B, E)
            k = tokens.size(0) // image.size(0)
            x = torch.cat([x.view(image.size(0), k, -1), image[:, None].expand(-1, k, -1)], -1)
            x = x.view(tokens.size(0), -1)  # (R, 2E)
        concept = context.get("concept")
        if concept is not None:  # (B, E) -> one row per beam / sample
            x = torch.cat([x, _rows(concept, tokens.size(0))], dim=-1)
        new, logits = self._recur(x, h, state)
        if concept is not None:  # copy: a learned, per-step bonus for concept words not yet said
            r = tokens.size(0)
            ids = _rows(context["concept_ids"], r)  # (R, K)
            said = torch.maximum(state["said"], (ids == tokens[:, None]).to(logits.dtype))
            new["said"] = said
            weights = _rows(context["concept_weights"], r) * (1.0 - said)
            logits = logits.scatter_add(1, ids, self.copy(new["h"]) * weights)
        return logits, new, alpha

    def _recur(self, x: Tensor, h: Tensor, state: State) -> tuple[State, Tensor]:
        """The part of a step every row set shares: the recurrent cell on inputs x (R, *) from
        h (and an LSTM's state["c"]), and the output logits (R, V) of its new hidden state."""
        if self.config.cell == "lstm":
            h, c = self.rnn(x, (h, state["c"]))
            new = {"h": h, "c": c}
        else:
            new = {"h": self.rnn(x, h)}
        out = self.drop(new["h"])
        if self.pre_out is not None:
            out = self.pre_out(out)
        return new, self.out(out)

    def _step_rows(
        self, tokens: Tensor, state: State, context: Context, rows: Tensor
    ) -> tuple[Tensor, State, Tensor | None]:
        """`step` for the rows `rows` (sorted, of R) only; the other rows of the results get
        logits 0, alpha 0 and their old state. `step`'s operations, row by row."""
        total = tokens.size(0)
        part = {name: v.index_select(0, rows) for name, v in state.items()}
        x = self.embed(tokens.index_select(0, rows))  # (R', E)
        h = part["h"]
        alpha = None
        per_image = rows // (total // next(iter(context.values())).size(0))  # (R',)
        if self.config.attention == "soft":
            ctx, alpha = self.attend.some_rows(
                context["grid"], context["keys2"], h, rows, total, context.get("scratch")
            )
            x = torch.cat([x, torch.sigmoid(self.gate(h)) * ctx], dim=-1)
        else:
            x = torch.cat([x, context["image"].index_select(0, per_image)], -1)
        concept = context.get("concept")
        if concept is not None:
            x = torch.cat([x, concept.index_select(0, per_image)], dim=-1)
        new, logits = self._recur(x, h, part)
        if concept is not None:
            ids = context["concept_ids"].index_select(0, per_image)  # (R', K)
            said = torch.maximum(part["said"], (ids == tokens[rows, None]).to(logits.dtype))
            new["said"] = said
            weights = context["concept_weights"].index_select(0, per_image) * (1.0 - said)
            # the copy gate has one output: its product runs over all R rows (see MIN_ROWS)
            spread = new["h"].new_zeros(total, new["h"].size(1)).index_copy_(0, rows, new["h"])
            gate = self.copy(spread).index_select(0, rows)
            logits.scatter_add_(1, ids, gate * weights)  # logits: this step's own
        full = logits.new_zeros(total, logits.size(1)).index_copy_(0, rows, logits)
        new_state = {name: state[name].index_copy(0, rows, v) for name, v in new.items()}
        if alpha is not None:
            alpha = alpha.new_zeros(total, alpha.size(1)).index_copy_(0, rows, alpha)
        return full, new_state, alpha

    def forward(
        self,
        grid: Tensor,
        pooled: Tensor,
        captions: Tensor,
        concepts: tuple[Tensor, Tensor] | None = None,
        styles: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing. captions (B, T) start with <start>; returns logits (B, T-1, V)
        predicting captions[:, 1:], and attention weights (B, T-1, N) or None.
        Padding positions are masked by the loss (see `caption_loss`)."""
        step, state = self.start(grid, pooled, concepts, styles)
        logits, alphas = [], []
        for t in range(captions.size(1) - 1):
            step_logits, state, alpha = step(captions[:, t], state)
            logits.append(step_logits)
            if alpha is not None:
                alphas.append(alpha)
        return torch.stack(logits, 1), (torch.stack(alphas, 1) if alphas else None)


# The rows a step computes when it skips some (`compute_rows`). A matrix product of 1-3 rows
# takes other kernels than a larger one, and the one-output products (attention scores, the
# copy gate) run in blocks of 4 rows with another kernel for the rest: a row set of at least
# MIN_ROWS rows, of the full set's size modulo 4 and holding the last row, keeps every row's
# result bit for bit (MKL on x86; tests/core/test_fast_step.py checks it where it runs).
MIN_ROWS = 4


def compute_rows(live: Tensor) -> Tensor | None:
    """The sorted rows (of R = live.numel()) a step computes for `live` (R,) bool: the live
    rows plus the fewest others that keep each result bit for bit (see MIN_ROWS); None: all
    rows (all live, or too few to skip any)."""
    total = live.numel()
    if total < MIN_ROWS or bool(live.all()):
        return None
    pick = live.clone()
    if total % 4:
        pick[total - 1] = True
    count = int(pick.sum())
    want = count + (total - count) % 4
    if want < MIN_ROWS:
        want += 4
    if want >= total:
        return None
    if want > count:
        spare = (~pick).nonzero().squeeze(1)
        pick[spare[count - want :]] = True
    return pick.nonzero().squeeze(1)


def _rows(per_image: Tensor, rows: int) -> Tensor:
    """(B, ...) per-image tensor -> (R, ...) with R = B*K rows grouped by image."""
    b = per_image.size(0)
    if rows == b:
        return per_image
    return per_image.repeat_interleave(rows // b, dim=0)


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


def quantize_decoder(decoder: CaptionDecoder) -> CaptionDecoder:
    """An int8 dynamically quantised copy of `decoder` (Linear layers and recurrent cells) for
    CPU inference: ~3x faster decoding, at the price of small logit changes.

    The attention score vector stays in float (`SoftAttention` reads it as a tensor). Returns
    the float decoder unchanged when this PyTorch build has no dynamic quantisation.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # pragma: no cover - removed in some future PyTorch
        log.warning("this PyTorch has no torch.ao.quantization: decoder stays float32")
        return decoder
    model = copy.deepcopy(decoder).cpu().eval()
    score = model.attend.score if model.attend is not None else None
    if score is not None:
        model.attend.score = nn.Identity()  # keep out of quantisation; restored below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notice pointing at torchao
        types = {nn.Linear, nn.LSTMCell, nn.GRUCell, nn.RNNCell}
        model = quantize_dynamic(model, types, dtype=torch.qint8)
    if score is not None:
        model.attend.score = score
    return model
