"""Beam search, and constrained beam search, over a one-step function.

`captioner.decoding.generate` runs it for `GenerationConfig(method="beam")` and for any
search with constraints; this module knows neither the config nor the decoder. The step
function and the row-first state are `captioner.decoding`'s: image b's rows are b*W ..
b*W+W-1 for W rows per image, and a step whose attribute `takes_live` is true is passed
`live=` (R,) bool, the rows of unfinished, live beams (it may skip the others).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from captioner.logits_processors import NEG_INF, Processor, SpecialIds, finish, log_probs

StepFn = Callable[[Tensor, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor], Tensor | None]]
MAX_CONSTRAINTS = 4  # per image: 2 ** 4 = 16 states of K beams each


def repeat_rows(state: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Each row of `state` k times in a row (image b's copies at rows b*k .. b*k+k-1)."""
    return {name: v.repeat_interleave(k, 0) for name, v in state.items()}


def beam_search(
    step: StepFn,
    state: dict[str, Tensor],
    ids: SpecialIds,
    procs: list[Processor],
    *,
    beam_size: int,
    max_length: int,
    length_penalty: float = 1.0,
    trim: bool = True,
    n_best: int = 1,
    constraints: Sequence[Sequence[int]] | None = None,
) -> tuple[list[list[int]], list[float], list[Tensor | None], list[bool]]:
    """Beam search batched over images x beams; with `constraints`, constrained beam search.

    Returns, for each image's `n_best` best hypotheses (image after image, best first), the
    fields of a `captioner.decoding.Decoded`: tokens (without <start> / <end>), scores,
    attention (L, N) per generated word or None, and whether the hypothesis ended.

    Hypotheses are ranked at the end by sum(log p) / length ** length_penalty (0 = raw sum),
    where length counts the words and the `<end>` token when one was produced. Beams that
    never produce `<end>` are kept and returned at `max_length`, their trailing dangling
    words trimmed when `trim`.

    constraints: per image, token ids its caption must contain (a token listed twice must
        appear twice). As in Anderson et al. 2017 ("Guided Open Vocabulary Image Captioning
        with Constrained Beam Search"), each subset of met constraints keeps its own K beams
        (2 ** C states for C constraints), a word moves a hypothesis to the state that it
        completes, and the answer comes from the state that meets the most constraints.
    """
    first = next(iter(state.values()))
    batch, device = first.size(0), first.device
    k = beam_size
    n_states, start = _constraint_states(constraints, batch, device)
    width = n_states * k  # rows per image: K beams for each state
    state = repeat_rows(state, width)  # (B*S*K, ...)
    scores = torch.full((batch, width), NEG_INF, device=device)
    scores[torch.arange(batch, device=device), start * k] = 0.0  # one live beam to start
    tokens = torch.full((batch * width,), ids.bos_id, dtype=torch.long, device=device)
    history = torch.empty((batch, width, 0), dtype=torch.long, device=device)
    alpha_hist: Tensor | None = None
    finished = torch.zeros((batch, width), dtype=torch.bool, device=device)
    lengths = torch.zeros((batch, width), device=device)
    offsets = torch.arange(batch, device=device)[:, None] * width
    beam_moves: Tensor | None = None  # (B, S*K, V): where each beam's next word takes it
    skips = getattr(step, "takes_live", False)
    for _ in range(max_length):
        if skips:  # finished and dead beams' rows are not computed (their logits unread)
            idle = finished | torch.isinf(scores)
            logits, state, alpha = step(tokens, state, live=~idle.view(-1))
        else:
            idle = finished
            logits, state, alpha = step(tokens, state)
        logp = log_probs(logits, ids, history.view(batch * width, history.size(2)), procs).view(
            batch, width, -1
        )
        vocab = logp.size(-1)
        # A finished beam continues only with <pad> at no cost, so it keeps its score; a dead
        # beam (score -inf) has no candidate either way. (logp is this search's own tensor.)
        logp.view(-1, vocab).index_fill_(0, idle.view(-1).nonzero().squeeze(1), NEG_INF)
        logp[:, :, ids.pad_id] = torch.where(finished, 0.0, NEG_INF)
        candidates = logp.add_(scores[:, :, None])  # (B, S*K, V): scores + logp
        if n_states > 1 and beam_moves is None:
            moves = _constraint_moves(constraints, n_states, vocab, device)
            beam_moves = moves.repeat_interleave(k, 1)
        if beam_moves is None:
            scores, flat = candidates.view(batch, -1).topk(k, dim=-1)  # (B, K)
        else:  # each state keeps the K best candidates that land in it
            best = [candidates.masked_fill(beam_moves != s, NEG_INF).view(batch, -1).topk(k, -1)
                    for s in range(n_states)]  # fmt: skip
            scores = torch.cat([b.values for b in best], 1)  # (B, S*K)
            flat = torch.cat([b.indices for b in best], 1)
        origin, word = flat // vocab, flat % vocab  # which beam, which word
        state = _reorder(state, (origin + offsets).view(-1))
        history = torch.cat([_gather_beams(history, origin), word[:, :, None]], dim=2)
        if alpha is not None:
            a = _gather_beams(alpha.view(batch, width, 1, -1), origin)  # (B, S*K, 1, N)
            old = None if alpha_hist is None else _gather_beams(alpha_hist, origin)
            alpha_hist = a if old is None else torch.cat([old, a], 2)
        was_finished = finished.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~was_finished).float()
        finished = was_finished | (word == ids.eos_id) | torch.isinf(scores)  # dead beams too
        tokens = torch.where(finished, torch.full_like(word, ids.pad_id), word).view(-1)
        if bool(finished.all()):
            break
    penalty = length_penalty
    norm = scores / lengths.clamp(min=1) ** penalty if penalty else scores
    norm = norm.masked_fill(torch.isinf(scores), NEG_INF)
    per_state = norm.view(batch, n_states, k)
    chosen = _best_state(per_state)  # (B,)
    ranks = per_state[torch.arange(batch), chosen].topk(n_best, dim=1).indices
    cols = chosen[:, None] * k + ranks  # (B, n_best), best first
    picks = [(b, int(r)) for b in range(batch) for r in cols[b]]
    rows = [[t for t in history[b, r].tolist() if t != ids.pad_id] for b, r in picks]
    seqs, ended = finish(rows, ids, trim)
    out_alphas: list[Tensor | None] = [None] * len(picks)
    if alpha_hist is not None:
        out_alphas = [alpha_hist[b, r, : max(len(seq), 1)].cpu()
                      for (b, r), seq in zip(picks, seqs)]  # fmt: skip
    norm = norm.detach()  # scores are numbers, also when a caller searches with grad on
    return seqs, [float(norm[b, r]) for b, r in picks], out_alphas, ended


def _reorder(state: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {k: v.index_select(0, index) for k, v in state.items()}


def _constraint_states(constraints, batch: int, device) -> tuple[int, Tensor]:
    """The number of states constrained beam search keeps (1 without constraints) and each
    image's start state. A state is a bit set of met constraints; an image with fewer than
    the most constraints starts with its missing ones met."""
    start = torch.zeros(batch, dtype=torch.long, device=device)
    if constraints is None or not any(constraints):
        return 1, start
    if len(constraints) != batch:
        raise ValueError(f"constraints: {len(constraints)} lists for {batch} images")
    n = max(len(c) for c in constraints)
    if n > MAX_CONSTRAINTS:
        raise ValueError(f"constraints: at most {MAX_CONSTRAINTS} per image, got {n}")
    for b, wanted in enumerate(constraints):
        start[b] = ((1 << n) - 1) ^ ((1 << len(wanted)) - 1)
    return 1 << n, start


def _constraint_moves(constraints, n_states: int, vocab: int, device) -> Tensor:
    """(B, S, V): the state a hypothesis in state s goes to when it emits a word: its own
    state, but for a word that meets the first unmet constraint asking for it."""
    states = torch.arange(n_states, dtype=torch.uint8, device=device)  # n_states <= 16
    moves = states[None, :, None].repeat(len(constraints), 1, vocab)
    for b, wanted in enumerate(constraints):
        for s in range(n_states):
            for j in reversed(range(len(wanted))):  # the lowest unmet j is written last
                if not s >> j & 1:
                    moves[b, s, wanted[j]] = s | 1 << j
    return moves


def _best_state(norm: Tensor) -> Tensor:
    """Per image (norm (B, S, K)): the state meeting the most constraints among those with a
    live hypothesis, the best-scoring one among equals."""
    n_states = norm.size(1)
    met = torch.tensor([bin(s).count("1") for s in range(n_states)], device=norm.device)
    best = norm.max(dim=2).values  # (B, S)
    alive = torch.isfinite(best)
    most = torch.where(alive, met[None, :], -1).max(dim=1).values  # (B,)
    return best.masked_fill(~(alive & (met[None, :] == most[:, None])), NEG_INF).argmax(dim=1)


def _gather_beams(x: Tensor, origin: Tensor) -> Tensor:
    """x (B, K, ...) -> the rows of the beams each new beam came from, (B, K, ...)."""
    index = origin.view(*origin.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)
