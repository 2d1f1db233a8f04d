"""Caption search as pure functions over a one-step function, configured by one
`GenerationConfig`: `generate(step, state, special_ids, config)` is the one entry that the
API, labeling, evaluation, SCST, the demo and the benchmarks call.

`step(tokens (R,), state) -> (logits (R, V), state, alpha (R, N) or None)`, where `state` is a
dict of row-first tensors (R rows, grouped by image: K rows per image at row b*K + j) and
any per-image context is bound into `step` (see `CaptionDecoder.start`). Nothing here knows
what the decoder is. A step whose attribute `takes_live` is true is also called with `live=`
(R,) bool, the rows whose results the search reads (beam search: unfinished beams; greedy:
rows not done), and may skip the others (`CaptionDecoder.step`).

Every search returns a caption even when `<end>` never comes: it stops at `max_length`.
`<pad>` and `<start>` are never generated, nor the ids in `SpecialIds.banned` (`<unk>` for a
vocabulary: a caption of unknown words helps no one). Logits processors then shape each
step's log-probabilities from the words generated so far: no-repeat-n-gram blocking, and no
`<end>` right after a dangling word ("... on the"); a caption cut by `max_length` loses its
trailing dangling words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captioner.text import DANGLING_WORDS

StepFn = Callable[[Tensor, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor], Tensor | None]]
Processor = Callable[[Tensor, Tensor], Tensor]  # (log_probs (R, V), history (R, T)) -> (R, V)
NEG_INF = float("-inf")
METHODS = ("beam", "greedy", "sample")
DEFAULT_MAX_LENGTH = 20
MAX_BEAM_SIZE = 256  # wider searches only cost memory and time (100000: 10 GB, no end)
MAX_LENGTH = 1000  # tokens: far above any caption or sentence


@dataclass
class GenerationConfig:
    """How to search for a caption.

    Args:
        method: "beam", "greedy" or "sample" (beam search with beam_size 1 is greedy).
        beam_size: hypotheses kept per image by beam search.
        max_length: most words per caption; None: the model's own (20 without a model).
        length_penalty: beam hypotheses rank by sum(log p) / length ** length_penalty (0: raw).
        temperature, top_k, top_p: sampling's temperature, top-k (0: off) and nucleus (1: off).
        seed: seeds sampling (None: torch's global generator).
        no_repeat_ngram_size: never repeat an n-gram of this size within a caption (0: off).
        avoid_dangling: refuse `<end>` right after a dangling word ("a", "the", "of", ...,
            `captioner.text.DANGLING_WORDS`) and trim them off a caption cut at
            max_length. Needs the ids in `SpecialIds.dangling`.
        name_objects: after the search, swap caption object words the model's ImageNet
            tagger does not see for the object it is confident about ("a man rides a
            motorcycle" -> "a man rides a bicycle"; `captioner.tagwords.name_objects`).
            Needs a model with the ImageNet-1k tagger; others ignore it.
        slot_boost: for a decoder trained with `--typed-slots` beside a caption-word detector
            (`captioner train recognizer --caption-objects`): at every step the slot of each
            kind gets slot_boost x (the detector's highest probability for a word of that
            kind) added to its log-probability, so the caption makes room for an object the
            detector sees even where the decoder would not name one (0: off). Other models
            ignore it.
        slot_min_score: for the same pair: every detector word at least this probable must
            get a slot of its kind in the caption (the most probable MAX_SLOT_CONSTRAINTS
            words, a thing named once), found by constrained beam search (0: off). Other
            models ignore it.
    """

    method: str = "beam"
    beam_size: int = 3
    max_length: int | None = None
    length_penalty: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    no_repeat_ngram_size: int = 0
    avoid_dangling: bool = True
    name_objects: bool = False
    slot_boost: float = 0.0
    slot_min_score: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "method": (self.method in METHODS, f"one of {', '.join(METHODS)}"),
            "beam_size": (1 <= self.beam_size <= MAX_BEAM_SIZE, f"in [1, {MAX_BEAM_SIZE}]"),
            "max_length": (
                self.max_length is None or 1 <= self.max_length <= MAX_LENGTH,
                f"in [1, {MAX_LENGTH}] or None",
            ),
            "temperature": (0 < self.temperature < math.inf, "> 0 and finite"),
            "top_k": (self.top_k >= 0, ">= 0"),
            "top_p": (0 < self.top_p <= 1, "in (0, 1]"),
            "no_repeat_ngram_size": (self.no_repeat_ngram_size >= 0, ">= 0"),
            "slot_boost": (self.slot_boost >= 0, ">= 0"),
            "slot_min_score": (0 <= self.slot_min_score <= 1, "in [0, 1]"),
            "length_penalty": (math.isfinite(self.length_penalty), "a finite number"),
            "seed": (self.seed is None or 0 <= self.seed < 2**64, "in [0, 2**64) or None"),
        }
        for name, (ok, want) in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")

    @property
    def search(self) -> str:
        """The search that runs: "greedy" for method "greedy" or beam search of width 1."""
        if self.method == "beam" and self.beam_size == 1:
            return "greedy"
        return self.method

    def describe(self) -> dict[str, Any]:
        """The settings that matter for the search that runs (for reports)."""
        out: dict[str, Any] = {"method": self.search, "max_length": self.max_length}
        if self.search == "beam":
            out.update(beam_size=self.beam_size, length_penalty=self.length_penalty)
        if self.search == "sample":
            out.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        if self.name_objects:
            out["name_objects"] = True
        if self.slot_boost:
            out["slot_boost"] = self.slot_boost
        if self.slot_min_score:
            out["slot_min_score"] = self.slot_min_score
        return out


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


@dataclass
class Decoded:
    tokens: list[list[int]]  # per row, without <start> / <end>
    scores: list[float]  # per row: summed log-probability (beam: length-normalised)
    alphas: list[Tensor | None]  # per row: (L, N) attention per generated word, or None
    ended: list[bool] = field(default_factory=list)  # per row: produced <end> (not cut)


def generate(
    step: StepFn,
    state: dict[str, Tensor],
    special_ids: SpecialIds,
    config: GenerationConfig | None = None,
    *,
    n_best: int = 1,
    bias: Tensor | None = None,
    constraints: Sequence[Sequence[int]] | None = None,
) -> Decoded:
    """Search captions for every row of `state` as `config` says (default: beam 3).

    n_best: beam search returns the `n_best` best hypotheses of each row (<= beam_size), row
        after row, best first (rows * n_best results); other searches take only 1.
    bias: (rows, vocabulary) added to each row's log-probabilities at every step (its beams
        share it): `GenerationConfig.slot_boost` at work.
    constraints: per row, token ids its caption must contain (constrained beam search; a
        greedy config searches with one beam per state): `GenerationConfig.slot_min_score`
        at work. A row whose constraints cannot all be met gets the caption that meets most."""
    config = config or GenerationConfig()
    constrained = constraints is not None and any(constraints)
    if constrained and config.search == "sample":
        raise ValueError("constraints need beam search or greedy, not sampling")
    if n_best != 1 and (config.search != "beam" or not 1 <= n_best <= config.beam_size):
        raise ValueError(f"n_best={n_best} needs beam search with beam_size >= n_best "
                         f"(got {config.search}, beam_size {config.beam_size})")  # fmt: skip
    procs = processors(special_ids, config)
    if bias is not None:
        procs.insert(0, add_bias(bias))
    with torch.no_grad():
        if config.search == "beam" or constrained:
            return _beam_search(step, state, special_ids, config, procs, n_best, constraints)
        return _word_by_word(step, state, special_ids, config, procs)


def repeat_rows(state: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Each row of `state` k times in a row (image b's copies at rows b*k .. b*k+k-1)."""
    return {name: v.repeat_interleave(k, 0) for name, v in state.items()}


# ------------------------------------------------------------------ logits processors
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


# ------------------------------------------------------------------ helpers
def _reorder(state: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {k: v.index_select(0, index) for k, v in state.items()}


def _log_probs(logits: Tensor, ids: SpecialIds, history: Tensor, procs, temperature=1.0):
    logits = logits.float() / temperature
    logits[:, [ids.pad_id, ids.bos_id, *ids.banned]] = NEG_INF
    logp = torch.log_softmax(logits, dim=-1)
    for process in procs:
        logp = process(logp, history)
    return logp


def _finish(rows: list[list[int]], ids: SpecialIds, trim: bool) -> tuple[list[list[int]], list]:
    """Cut rows at <end>; trim trailing dangling words off rows that never ended."""
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


def _stack_alphas(alphas: list[Tensor], lengths: list[int]) -> list[Tensor | None]:
    if not alphas:
        return [None] * len(lengths)
    a = torch.stack(alphas, 1).cpu()  # (R, L, N)
    return [a[i, : max(n, 1)] for i, n in enumerate(lengths)]


# ------------------------------------------------------------------ searches
def _picker(config: GenerationConfig, device: torch.device):
    """pick(log_probs (R, V)) -> (tokens (R,), their log-probabilities (R,))."""
    if config.search == "greedy":

        def pick_best(logp: Tensor) -> tuple[Tensor, Tensor]:
            best, tokens = logp.max(dim=-1)
            return tokens, best

        return pick_best
    gen = None if config.seed is None else torch.Generator(device=device).manual_seed(config.seed)
    top_k, top_p = config.top_k, config.top_p

    def pick_sample(logp: Tensor) -> tuple[Tensor, Tensor]:
        if top_k > 0:
            kth = logp.topk(min(top_k, logp.size(-1)), dim=-1).values[:, -1:]
            logp = logp.masked_fill(logp < kth, NEG_INF)
        if top_p < 1.0:
            sorted_lp, order = logp.sort(dim=-1, descending=True)
            cum = sorted_lp.exp().cumsum(-1)
            drop = cum - sorted_lp.exp() >= top_p  # keep the smallest set reaching top_p
            logp = logp.scatter(-1, order, sorted_lp.masked_fill(drop, NEG_INF))
        tokens = torch.multinomial(torch.softmax(logp, dim=-1), 1, generator=gen)
        return tokens.squeeze(1), torch.log_softmax(logp, -1).gather(1, tokens).squeeze(1)

    return pick_sample


def _word_by_word(
    step: StepFn,
    state: dict[str, Tensor],
    ids: SpecialIds,
    config: GenerationConfig,
    procs: list[Processor] | None = None,
) -> Decoded:
    """Greedy or sampling: one word per step for every row, until each row has emitted
    <end> or `max_length` words."""
    procs = processors(ids, config) if procs is None else procs
    first = next(iter(state.values()))
    rows, device = first.size(0), first.device
    pick = _picker(config, device)
    temperature = config.temperature if config.search == "sample" else 1.0
    tokens = torch.full((rows,), ids.bos_id, dtype=torch.long, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    score = torch.zeros(rows, device=device)
    history = torch.empty((rows, 0), dtype=torch.long, device=device)
    alphas = []
    skips = config.search == "greedy" and getattr(step, "takes_live", False)  # sampling: no
    for _ in range(config.max_length or DEFAULT_MAX_LENGTH):  # (its draws would move)
        if skips:  # rows done are not computed: their picks are dropped below
            logits, state, alpha = step(tokens, state, live=~done)
        else:
            logits, state, alpha = step(tokens, state)
        tokens, picked = pick(_log_probs(logits, ids, history, procs, temperature))
        score = score + torch.where(done, torch.zeros_like(picked), picked)
        tokens = torch.where(done, torch.full_like(tokens, ids.eos_id), tokens)
        history = torch.cat([history, tokens[:, None]], 1)
        if alpha is not None:
            alphas.append(alpha)
        done = done | (tokens == ids.eos_id)
        if bool(done.all()):
            break
    seqs, ended = _finish(history.tolist(), ids, config.avoid_dangling)
    return Decoded(seqs, score.tolist(), _stack_alphas(alphas, [len(s) for s in seqs]), ended)


def _beam_search(
    step: StepFn,
    state: dict[str, Tensor],
    ids: SpecialIds,
    config: GenerationConfig,
    procs: list[Processor] | None = None,
    n_best: int = 1,
    constraints: Sequence[Sequence[int]] | None = None,
) -> Decoded:
    """Beam search batched over images x beams; with `constraints`, constrained beam search.

    Hypotheses are ranked at the end by sum(log p) / length ** length_penalty (0 = raw sum),
    where length counts the words and the `<end>` token when one was produced. Beams that
    never produce `<end>` are kept and returned at `max_length`.

    constraints: per image, token ids its caption must contain (a token listed twice must
        appear twice). As in Anderson et al. 2017 ("Guided Open Vocabulary Image Captioning
        with Constrained Beam Search"), each subset of met constraints keeps its own K beams
        (2 ** C states for C constraints), a word moves a hypothesis to the state that it
        completes, and the answer comes from the state that meets the most constraints.
    """
    procs = processors(ids, config) if procs is None else procs
    first = next(iter(state.values()))
    batch, device = first.size(0), first.device
    k = config.beam_size if config.search == "beam" else 1  # constrained greedy: 1 per state
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
    for _ in range(config.max_length or DEFAULT_MAX_LENGTH):
        if skips:  # finished and dead beams' rows are not computed (their logits unread)
            idle = finished | torch.isinf(scores)
            logits, state, alpha = step(tokens, state, live=~idle.view(-1))
        else:
            idle = finished
            logits, state, alpha = step(tokens, state)
        logp = _log_probs(logits, ids, history.view(batch * width, history.size(2)), procs).view(
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
    penalty = config.length_penalty
    norm = scores / lengths.clamp(min=1) ** penalty if penalty else scores
    norm = norm.masked_fill(torch.isinf(scores), NEG_INF)
    per_state = norm.view(batch, n_states, k)
    chosen = _best_state(per_state)  # (B,)
    ranks = per_state[torch.arange(batch), chosen].topk(n_best, dim=1).indices
    cols = chosen[:, None] * k + ranks  # (B, n_best), best first
    picks = [(b, int(r)) for b in range(batch) for r in cols[b]]
    rows = [[t for t in history[b, r].tolist() if t != ids.pad_id] for b, r in picks]
    seqs, ended = _finish(rows, ids, config.avoid_dangling)
    out_alphas: list[Tensor | None] = [None] * len(picks)
    if alpha_hist is not None:
        out_alphas = [alpha_hist[b, r, : max(len(seq), 1)].cpu()
                      for (b, r), seq in zip(picks, seqs)]  # fmt: skip
    norm = norm.detach()  # scores are numbers, also when a caller searches with grad on
    return Decoded(seqs, [float(norm[b, r]) for b, r in picks], out_alphas, ended)


MAX_CONSTRAINTS = 4  # per image: 2 ** 4 = 16 states of K beams each
MAX_SLOT_CONSTRAINTS = 2  # GenerationConfig.slot_min_score: slots asked of one caption


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
