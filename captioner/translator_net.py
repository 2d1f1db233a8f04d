"""The many-to-many translator: a bidirectional RNN reads a sentence, an attentive RNN writes
its translation one subword at a time.

- Encoder: embedding -> packed bidirectional GRU / LSTM / plain RNN -> `memory` (B, S, 2H),
  one vector per source subword; the mean over real positions initialises the decoder.
- Decoder: GRU / LSTM cell with additive (Bahdanau: the previous state asks) or
  multiplicative (Luong "general": the new state asks, with input feeding) attention over
  `memory`, masked at padding; a combined vector tanh(W [h; context]) of the embedding's
  width feeds the output layer, which reuses the target embedding (`tie_embeddings`).
  With `share_embeddings` (one joint subword vocabulary) source and target share one table.

Like `captioner.decoders.CaptionDecoder`, the decoder only takes one step:
`start(src, lengths)` returns `step(tokens, state)` bound to the per-sentence *context*
(memory, attention keys, source mask: computed once, never copied per beam) and the first
per-row *state* (h, c for an LSTM, the input-feeding vector for Luong), so
`captioner.decoding.generate` searches translations like captions.

Subword ids are fixed by `captioner.subwords`: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>. Loading, saving
and using a trained translator: `captioner.translation`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from captioner.decoding import SpecialIds

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
ENCODER_CELLS = ("gru", "lstm", "rnn")
DECODER_CELLS = ("gru", "lstm")
ATTENTIONS = ("bahdanau", "luong")
State = dict[str, Tensor]
Context = dict[str, Tensor]


@dataclass
class TranslatorConfig:
    """A translator's shape and languages (the `translator` section of `config.json`)."""

    vocab_size: int
    src_lang: str = "en"
    tgt_lang: str = "de"
    embed_dim: int = 256
    hidden_dim: int = 256  # decoder state; each encoder direction has this size too
    attention_dim: int = 256  # Bahdanau's scoring layer
    encoder_cell: str = "gru"
    decoder_cell: str = "gru"
    attention: str = "bahdanau"
    encoder_layers: int = 1
    dropout: float = 0.3
    tie_embeddings: bool = True  # the output layer is the target embedding (transposed)
    share_embeddings: bool = True  # one table for source and target (joint subwords)
    max_source_length: int = 100  # subwords read per source sentence (longer ones are cut)

    def __post_init__(self) -> None:
        choices = {"encoder_cell": ENCODER_CELLS, "decoder_cell": DECODER_CELLS,
                   "attention": ATTENTIONS}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("vocab_size", "embed_dim", "hidden_dim", "attention_dim", "encoder_layers",
                     "max_source_length"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.vocab_size <= EOS_ID:
            raise ValueError(f"vocab_size must exceed the 4 special ids, got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("src_lang", "tgt_lang"):
            code = getattr(self, name)
            if not (isinstance(code, str) and code.isalpha() and 2 <= len(code) <= 3):
                raise ValueError(f"{name} must be a language code like 'en', got {code!r}")


SPECIAL_IDS = SpecialIds(bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, banned=(UNK_ID,))


class Translator(nn.Module):
    """Encoder + attentive decoder; see the module docstring."""

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD_ID)  # target
        self.src_embed = (
            None if c.share_embeddings else nn.Embedding(c.vocab_size, c.embed_dim, PAD_ID)
        )
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[c.encoder_cell]
        self.encoder = rnn(c.embed_dim, c.hidden_dim, num_layers=c.encoder_layers,
                           batch_first=True, bidirectional=True,
                           dropout=c.dropout if c.encoder_layers > 1 else 0.0)  # fmt: skip
        memory_dim = 2 * c.hidden_dim
        self.bridge = nn.Linear(memory_dim, c.hidden_dim)
        self.bridge_c = nn.Linear(memory_dim, c.hidden_dim) if c.decoder_cell == "lstm" else None
        if c.attention == "bahdanau":
            self.key = nn.Linear(memory_dim, c.attention_dim)
            self.query = nn.Linear(c.hidden_dim, c.attention_dim, bias=False)
            self.score = nn.Linear(c.attention_dim, 1, bias=False)
            feed_dim = memory_dim  # the context of the previous state's attention
        else:
            self.key = nn.Linear(memory_dim, c.hidden_dim, bias=False)
            self.query = self.score = None
            feed_dim = c.embed_dim  # input feeding: the previous combined vector
        cell = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[c.decoder_cell]
        self.cell = cell(c.embed_dim + feed_dim, c.hidden_dim)
        self.combine = nn.Linear(c.hidden_dim + memory_dim, c.embed_dim)
        self.out = None if c.tie_embeddings else nn.Linear(c.embed_dim, c.vocab_size)
        self.out_bias = nn.Parameter(torch.zeros(c.vocab_size)) if c.tie_embeddings else None
        self.drop = nn.Dropout(c.dropout)

    # ------------------------------------------------------------------ encoder
    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Context, State]:
        """src (B, S) padded with 0, lengths (B,) -> per-sentence context, first state."""
        c = self.config
        x = self.drop((self.src_embed or self.embed)(src))  # (B, S, E)
        lengths = lengths.clamp(min=1, max=src.size(1))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        mask = torch.arange(src.size(1), device=src.device)[None] < lengths.to(src.device)[:, None]
        mean = memory.sum(1) / lengths.to(memory)[:, None]  # (B, 2H): padding rows are zero
        state: State = {"h": torch.tanh(self.bridge(mean))}
        if self.bridge_c is not None:
            state["c"] = torch.tanh(self.bridge_c(mean))
        if c.attention == "luong":
            state["feed"] = memory.new_zeros(src.size(0), c.embed_dim)
        context = {"memory": memory, "keys": self.key(memory), "mask": mask}
        return context, state

    def start(self, src: Tensor, lengths: Tensor):
        """`step(tokens, state)` bound to these sentences' context, and the first state:
        what `captioner.decoding.generate` takes."""
        context, state = self.encode(src, lengths)
        return functools.partial(self.step, context=context), state

    # ------------------------------------------------------------------ decoder
    def attend(self, h: Tensor, context: Context) -> tuple[Tensor, Tensor]:
        """h (B*K, H), K rows per sentence -> context vectors (B*K, 2H), weights (B*K, S)."""
        keys, memory, mask = context["keys"], context["memory"], context["mask"]
        b = keys.size(0)
        k = h.size(0) // b
        if self.config.attention == "bahdanau":
            z = torch.tanh(keys[:, None] + self.query(h).view(b, k, 1, -1))  # (B, K, S, A)
            scores = self.score(z).squeeze(-1)  # (B, K, S)
        else:
            scores = torch.matmul(h.view(b, k, -1), keys.transpose(1, 2))  # (B, K, S)
        scores = scores.float().masked_fill(~mask[:, None], float("-inf"))
        alpha = torch.softmax(scores, dim=-1).to(memory.dtype)
        ctx = torch.bmm(alpha, memory)  # (B, K, 2H)
        return ctx.view(b * k, -1), alpha.view(b * k, -1)

    def step(self, tokens: Tensor, state: State, context: Context):
        """tokens (R,) -> logits (R, V), new state, attention (R, S); R rows grouped by
        sentence (R = B*K for the B sentences in `context`)."""
        combined, new, alpha = self.advance(tokens, state, context)
        return self.logits(combined), new, alpha

    def logits(self, combined: Tensor) -> Tensor:
        """Combined vectors (..., E) -> subword logits (..., V)."""
        out = self.drop(combined)
        if self.out is not None:
            return self.out(out)
        return F.linear(out, self.embed.weight, self.out_bias)

    def advance(self, tokens: Tensor, state: State, context: Context):
        """One decoder step without the output layer: combined vector (R, E), new state,
        attention (R, S)."""
        x = self.drop(self.embed(tokens))  # (R, E)
        bahdanau = self.config.attention == "bahdanau"
        if bahdanau:
            ctx, alpha = self.attend(state["h"], context)
            x = torch.cat([x, ctx], -1)
        else:
            x = torch.cat([x, state["feed"]], -1)
        if "c" in state:
            h, cell_c = self.cell(x, (state["h"], state["c"]))
            new: State = {"h": h, "c": cell_c}
        else:
            h = self.cell(x, state["h"])
            new = {"h": h}
        if not bahdanau:
            ctx, alpha = self.attend(h, context)
        combined = torch.tanh(self.combine(torch.cat([h, ctx], -1)))  # (R, E)
        if not bahdanau:
            new["feed"] = combined
        return combined, new, alpha

    def forward(self, src: Tensor, lengths: Tensor, tgt: Tensor) -> Tensor:
        """Teacher forcing: tgt (B, T) starts with <s>; logits (B, T-1, V) predict tgt[:, 1:]."""
        context, state = self.encode(src, lengths)
        combined = []
        for t in range(tgt.size(1) - 1):
            out, state, _ = self.advance(tgt[:, t], state, context)
            combined.append(out)
        return self.logits(torch.stack(combined, 1))  # one output product for all steps


def translation_loss(logits: Tensor, tgt: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (B, T-1, V) against tgt[:, 1:], padding ignored."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        tgt[:, 1:].reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
    )
