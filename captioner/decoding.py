"""Caption search as pure functions over a one-step function.

`step(tokens (B,), state) -> (logits (B, V), state, alpha (B, N) or None)`, where `state` is
a dict of batch-first tensors. Nothing here knows what the decoder is.

Every search returns a caption even when `<end>` never comes: it stops at `max_length`.
`<pad>` and `<start>` are never generated, nor the ids in `banned` (the Captioner bans
`<unk>`: a caption of unknown words helps no one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

StepFn = Callable[[Tensor, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor], Tensor | None]]
NEG_INF = float("-inf")


@dataclass
class Decoded:
    tokens: list[list[int]]  # per image, without <start> / <end>
    scores: list[float]  # per image: summed log-probability (beam: length-normalised)
    alphas: list[Tensor | None]  # per image: (L, N) attention per generated word, or None


def _reorder(state: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {k: v.index_select(0, index) for k, v in state.items()}


def _log_probs(logits: Tensor, banned: tuple[int, ...], temperature: float = 1.0) -> Tensor:
    logits = logits.float() / temperature
    logits[:, list(banned)] = NEG_INF
    return torch.log_softmax(logits, dim=-1)


def _finish(tokens: list[list[int]], eos_id: int) -> list[list[int]]:
    return [t[: t.index(eos_id)] if eos_id in t else t for t in tokens]


def _stack_alphas(alphas: list[Tensor], lengths: list[int]) -> list[Tensor | None]:
    if not alphas:
        return [None] * len(lengths)
    a = torch.stack(alphas, 1).cpu()  # (B, L, N)
    return [a[i, : max(n, 1)] for i, n in enumerate(lengths)]


def _word_by_word(
    step: StepFn,
    state: dict[str, Tensor],
    pick,
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    banned: tuple[int, ...],
    max_length: int,
    temperature: float = 1.0,
) -> Decoded:
    """One word per step for every sequence, chosen by `pick(log_probs) -> (tokens, their
    log-probabilities)`, until each sequence has emitted <end> or `max_length` words."""
    batch = next(iter(state.values())).size(0)
    device = next(iter(state.values())).device
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    score = torch.zeros(batch, device=device)
    out, alphas = [], []
    for _ in range(max_length):
        logits, state, alpha = step(tokens, state)
        tokens, picked = pick(_log_probs(logits, (pad_id, bos_id, *banned), temperature))
        score = score + torch.where(done, torch.zeros_like(picked), picked)
        tokens = torch.where(done, torch.full_like(tokens, eos_id), tokens)
        out.append(tokens)
        if alpha is not None:
            alphas.append(alpha)
        done = done | (tokens == eos_id)
        if bool(done.all()):
            break
    seqs = _finish(torch.stack(out, 1).tolist(), eos_id)
    return Decoded(seqs, score.tolist(), _stack_alphas(alphas, [len(s) for s in seqs]))


@torch.no_grad()
def greedy(
    step: StepFn,
    state: dict[str, Tensor],
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int = 0,
    banned: tuple[int, ...] = (),
    max_length: int = 20,
) -> Decoded:
    """Most probable word at every step."""

    def pick(logp: Tensor) -> tuple[Tensor, Tensor]:
        best, tokens = logp.max(dim=-1)
        return tokens, best

    ids = {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id, "banned": banned}
    return _word_by_word(step, state, pick, max_length=max_length, **ids)


@torch.no_grad()
def sample(
    step: StepFn,
    state: dict[str, Tensor],
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int = 0,
    banned: tuple[int, ...] = (),
    max_length: int = 20,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Decoded:
    """Ancestral sampling with temperature, top-k and nucleus (top-p) filtering."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")

    def pick(logp: Tensor) -> tuple[Tensor, Tensor]:
        if top_k > 0:
            kth = logp.topk(min(top_k, logp.size(-1)), dim=-1).values[:, -1:]
            logp = logp.masked_fill(logp < kth, NEG_INF)
        if top_p < 1.0:
            sorted_lp, order = logp.sort(dim=-1, descending=True)
            cum = sorted_lp.exp().cumsum(-1)
            drop = cum - sorted_lp.exp() >= top_p  # keep the smallest set reaching top_p
            logp = logp.scatter(-1, order, sorted_lp.masked_fill(drop, NEG_INF))
        tokens = torch.multinomial(torch.softmax(logp, dim=-1), 1, generator=generator)
        return tokens.squeeze(1), torch.log_softmax(logp, -1).gather(1, tokens).squeeze(1)

    ids = {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id, "banned": banned}
    return _word_by_word(step, state, pick, max_length=max_length, temperature=temperature, **ids)


def _blocked(history: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram already in `history`."""
    if n <= 0 or len(history) < n - 1:
        return set()
    prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
    return {
        history[i + n - 1]
        for i in range(len(history) - n + 1)
        if tuple(history[i : i + n - 1]) == prefix
    }


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: dict[str, Tensor],
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int = 0,
    banned: tuple[int, ...] = (),
    beam_size: int = 3,
    max_length: int = 20,
    length_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
) -> Decoded:
    """Beam search batched over images x beams.

    Hypotheses are ranked at the end by sum(log p) / length ** length_penalty (0 = raw sum),
    where length counts the words and the `<end>` token when one was produced. Beams that
    never produce `<end>` are kept and returned at `max_length`.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    first = next(iter(state.values()))
    batch, device, k = first.size(0), first.device, beam_size
    state = _reorder(state, torch.arange(batch, device=device).repeat_interleave(k))  # (B*K, ...)
    scores = torch.full((batch, k), NEG_INF, device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    tokens = torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
    history = torch.empty((batch, k, 0), dtype=torch.long, device=device)
    alpha_hist: Tensor | None = None
    finished = torch.zeros((batch, k), dtype=torch.bool, device=device)
    lengths = torch.zeros((batch, k), device=device)
    for _ in range(max_length):
        logits, state, alpha = step(tokens, state)
        logp = _log_probs(logits, (pad_id, bos_id, *banned)).view(batch, k, -1)  # (B, K, V)
        vocab = logp.size(-1)
        # A finished beam continues only with <pad> at no cost, so it keeps its score.
        logp = torch.where(finished[:, :, None], torch.full_like(logp, NEG_INF), logp)
        logp[:, :, pad_id] = torch.where(finished, 0.0, NEG_INF)
        if no_repeat_ngram_size > 0:
            hist = history.tolist()
            for b in range(batch):
                for j in range(k):
                    if not finished[b, j]:
                        for tok in _blocked(hist[b][j], no_repeat_ngram_size):
                            logp[b, j, tok] = NEG_INF
        cand = (scores[:, :, None] + logp).view(batch, -1)  # (B, K*V)
        scores, flat = cand.topk(k, dim=-1)  # (B, K)
        origin, word = flat // vocab, flat % vocab  # which beam, which word
        index = (origin + torch.arange(batch, device=device)[:, None] * k).view(-1)
        state = _reorder(state, index)
        history = torch.cat(
            [
                history.gather(1, origin[:, :, None].expand(-1, -1, history.size(2))),
                word[:, :, None],
            ],
            dim=2,
        )
        if alpha is not None:
            a = alpha.view(batch, k, 1, -1).gather(
                1, origin[:, :, None, None].expand(-1, -1, 1, alpha.size(-1))
            )
            alpha_hist = (
                a
                if alpha_hist is None
                else torch.cat(
                    [alpha_hist.gather(1, origin[:, :, None, None].expand_as(alpha_hist)), a], 2
                )
            )
        was_finished = finished.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~was_finished).float()
        finished = was_finished | (word == eos_id)
        tokens = torch.where(finished, torch.full_like(word, pad_id), word).view(-1)
        if bool(finished.all()):
            break
    norm = scores / lengths.clamp(min=1) ** length_penalty if length_penalty else scores
    norm = norm.masked_fill(torch.isinf(scores), NEG_INF)
    best = norm.argmax(dim=1)  # (B,)
    seqs = [[t for t in history[b, best[b]].tolist() if t != pad_id] for b in range(batch)]
    seqs = _finish(seqs, eos_id)
    out_alphas: list[Tensor | None] = [None] * batch
    if alpha_hist is not None:
        out_alphas = [alpha_hist[b, best[b], : max(len(seqs[b]), 1)].cpu() for b in range(batch)]
    return Decoded(seqs, norm.gather(1, best[:, None]).squeeze(1).tolist(), out_alphas)
