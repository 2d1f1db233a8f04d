"""Caption search as pure functions over a one-step function, configured by one
`GenerationConfig`: `generate(step, state, special_ids, config)` is the one entry that the
API, labeling, evaluation, SCST, the demo and the benchmarks call.

`step(tokens (R,), state) -> (logits (R, V), state, alpha (R, N) or None)`, where `state` is a
dict of row-first tensors (R rows, grouped by image: K rows per image at row b*K + j) and
any per-image context is bound into `step` (see `CaptionDecoder.start`). Nothing here knows
what the decoder is. A step whose attribute `takes_live` is true is also called with `live=`
(R,) bool, the rows whose results the search reads (beam search: unfinished beams; greedy:
rows not done), and may skip the others (`CaptionDecoder.step`).

Greedy search and sampling live here; beam search (and constrained beam search) in
`captioner.beam_search`. Every search returns a caption even when `<end>` never comes: it
stops at `max_length`. `<pad>` and `<start>` are never generated, nor the ids in
`SpecialIds.banned` (`<unk>` for a vocabulary: a caption of unknown words helps no one).
Logits processors (`captioner.logits_processors`) then shape each step's log-probabilities
from the words generated so far: no-repeat-n-gram blocking, and no `<end>` right after a
dangling word ("... on the"); a caption cut by `max_length` loses its trailing dangling words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captioner.beam_search import beam_search
from captioner.logits_processors import (
    NEG_INF,
    Processor,
    SpecialIds,
    add_bias,
    finish,
    log_probs,
    processors,
)

StepFn = Callable[[Tensor, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor], Tensor | None]]
METHODS = ("beam", "greedy", "sample")
DEFAULT_MAX_LENGTH = 20
MAX_BEAM_SIZE = 256  # wider searches only cost memory and time (100000: 10 GB, no end)
MAX_LENGTH = 1000  # tokens: far above any caption or sentence
MAX_SLOT_CONSTRAINTS = 2  # GenerationConfig.slot_min_score: slots asked of one caption


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
        if config.search == "beam" or constrained:  # constrained greedy: 1 beam per state
            found = beam_search(
                step,
                state,
                special_ids,
                procs,
                beam_size=config.beam_size if config.search == "beam" else 1,
                max_length=config.max_length or DEFAULT_MAX_LENGTH,
                length_penalty=config.length_penalty,
                trim=config.avoid_dangling,
                n_best=n_best,
                constraints=constraints,
            )
            return Decoded(*found)
        return _word_by_word(step, state, special_ids, config, procs)


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
        tokens, picked = pick(log_probs(logits, ids, history, procs, temperature))
        score = score + torch.where(done, torch.zeros_like(picked), picked)
        tokens = torch.where(done, torch.full_like(tokens, ids.eos_id), tokens)
        history = torch.cat([history, tokens[:, None]], 1)
        if alpha is not None:
            alphas.append(alpha)
        done = done | (tokens == ids.eos_id)
        if bool(done.all()):
            break
    seqs, ended = finish(history.tolist(), ids, config.avoid_dangling)
    return Decoded(seqs, score.tolist(), _stack_alphas(alphas, [len(s) for s in seqs]), ended)
