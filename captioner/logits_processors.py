"""What every caption search does to a step's scores and to the words it ends with.

A search (`captioner.decoding`, `captioner.beam_search`) turns each step's logits into
log-probabilities with `log_probs`: `<pad>`, `<start>` and the ids in `SpecialIds.banned` are
never generated, then the logits processors shape the rest from the words generated so far
(`processors`: no-repeat-n-gram blocking, no `<end>` right after a dangling word such as
"... on the", and a per-row bias). `finish` cuts a finished row at `<end>` and trims the
trailing dangling words off a row cut by `max_length`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from captioner.text import DANGLING_WORDS

if TYPE_CHECKING:
    from captioner.decoding import GenerationConfig

Processor = Callable[[Tensor, Tensor], Tensor]  # (log_probs (R, V), history (R, T)) -> (R, V)
NEG_INF = float("-inf")


@dataclass(frozen=True)
class SpecialIds:
    """The token ids a search treats specially."""

    bos_id: int
    eos_id: int
    pad_id: int = 0
    banned: tuple[int, ...] = ()  # never generated
    dangling: tuple[int, ...] = ()  # never right before <end>; trimmed off a cut caption

    @classmethod
    def from_vocab(cls, vocab: Any, *, dangling_words: Sequence[str] = DANGLING_WORDS):
        """For a `captioner.text.Vocabulary`: `<unk>` banned, `dangling_words` (English by
        default; pass () for a language without a list) as dangling ids."""
        stoi = vocab.stoi
        dangling = tuple(sorted(stoi[w] for w in dangling_words if w in stoi))
        return cls(vocab.bos_id, vocab.eos_id, vocab.pad_id, (vocab.unk_id,), dangling)


def no_repeat_ngram(n: int) -> Processor:
    """Bans every word that would complete an n-gram already in the row's history."""

    def process(logp: Tensor, history: Tensor) -> Tensor:
        length = history.size(1)
        if length < n:  # no complete n-gram yet
            return logp
        windows = history.unfold(1, n, 1)  # (R, W, n): every n-gram so far
        prefix = history[:, length - n + 1 :]  # (R, n-1): the words the next one follows
        match = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)  # (R, W)
        rows, at = match.nonzero(as_tuple=True)  # the few (row, window) pairs that match
        words = windows[rows, at, -1]
        return logp.index_put((rows, words), logp.new_tensor(NEG_INF))

    return process


def no_end_after(eos_id: int, words: Sequence[int]) -> Processor:
    """Bans `<end>` right after any of `words`."""
    ids = torch.tensor(sorted(words), dtype=torch.long)

    def process(logp: Tensor, history: Tensor) -> Tensor:
        if history.size(1) == 0:
            return logp
        last = torch.isin(history[:, -1], ids.to(history.device))  # (R,)
        logp = logp.clone()
        logp[:, eos_id] = logp[:, eos_id].masked_fill(last, NEG_INF)
        return logp

    return process


def add_bias(bias: Tensor) -> Processor:
    """Adds `bias` (rows, V) to the log-probabilities; a search over rows x beams repeats each
    row for its beams."""

    def process(logp: Tensor, history: Tensor) -> Tensor:
        return logp + bias.to(logp.device).repeat_interleave(logp.size(0) // bias.size(0), 0)

    return process


def processors(special_ids: SpecialIds, config: GenerationConfig) -> list[Processor]:
    out: list[Processor] = []
    if config.no_repeat_ngram_size > 0:
        out.append(no_repeat_ngram(config.no_repeat_ngram_size))
    if config.avoid_dangling and special_ids.dangling:
        out.append(no_end_after(special_ids.eos_id, special_ids.dangling))
    return out


def log_probs(logits: Tensor, ids: SpecialIds, history: Tensor, procs, temperature=1.0):
    """logits (R, V) -> log-probabilities (R, V): the never-generated ids at -inf, then each
    of `procs` in turn given the words so far, history (R, T)."""
    logits = logits.float() / temperature
    logits[:, [ids.pad_id, ids.bos_id, *ids.banned]] = NEG_INF
    logp = torch.log_softmax(logits, dim=-1)
    for process in procs:
        logp = process(logp, history)
    return logp


def finish(rows: list[list[int]], ids: SpecialIds, trim: bool) -> tuple[list[list[int]], list]:
    """Cut rows at <end>; trim trailing dangling words off rows that never ended. Returns
    the rows and, per row, whether it ended."""
    seqs, ended = [], []
    dangling = set(ids.dangling) if trim else set()
    for t in rows:
        if ids.eos_id in t:
            seqs.append(t[: t.index(ids.eos_id)])
            ended.append(True)
            continue
        while t and t[-1] in dangling:
            t = t[:-1]
        seqs.append(t)
        ended.append(False)
    return seqs, ended
