"""The decoder step that skips rows (`CaptionDecoder.step(..., live=)`, issue 25): the rows a
search reads get the results of the step that computes every row, and searches that skip
finished beams find the same captions with the same scores as searches that do not."""

from __future__ import annotations

import functools

import pytest
import torch

from captioner.decoders import MIN_ROWS, CaptionDecoder, DecoderConfig, compute_rows
from captioner.decoding import GenerationConfig, SpecialIds, generate

# bit for bit where the matrix products allow it (MKL on x86, see captioner.decoders.MIN_ROWS)
BITWISE = torch.backends.mkl.is_available()
IDS = SpecialIds(bos_id=1, eos_id=2, pad_id=0, banned=(3,), dangling=(4, 5))


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a, b) if BITWISE else torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def decoder(concepts: int = 0, **kw) -> CaptionDecoder:
    torch.manual_seed(0)
    dims = dict(vocab_size=60, feature_dim=24, embed_dim=16, hidden_dim=32, attention_dim=16)
    config = DecoderConfig(**{**dims, **kw}, dropout=0.0, num_concepts=concepts, num_classes=30,
                           concept_top_k=3, concept_threshold=0.0)  # fmt: skip
    dec = CaptionDecoder(config).eval()
    if concepts:
        with torch.no_grad():
            dec.concept_classes.copy_((torch.rand(30, concepts) > 0.7).float())
            dec.concept_ids.copy_(6 + torch.arange(concepts))
            dec.copy.bias.fill_(2.0)  # copying matters in these tests
    return dec


def features(images: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    grid = torch.randn(images, 7, 24, generator=g)
    return grid, grid.mean(1) + torch.randn(images, 24, generator=g)


def full_rows(step):
    """The same step without `takes_live`: a search then computes every row."""
    return lambda tokens, state: step(tokens, state)


@pytest.mark.parametrize("total", [1, 3, 4, 5, 7, 8, 12, 15, 96])
def test_compute_rows_keeps_the_live_rows_and_the_shape_rules(total):
    g = torch.Generator().manual_seed(total)
    for _ in range(30):
        live = torch.rand(total, generator=g) < 0.4
        rows = compute_rows(live)
        least = int(live.sum()) + int(total % 4 != 0 and not live[-1])  # live + the last row
        least += (total - least) % 4
        least += 4 if least < MIN_ROWS else 0
        if rows is None:  # nothing to skip
            assert total < MIN_ROWS or least >= total
            continue
        assert rows.numel() == least
        assert torch.equal(rows, rows.sort().values) and rows.unique().numel() == rows.numel()
        assert bool(live[rows].sum() == live.sum())  # every live row is computed
        assert MIN_ROWS <= rows.numel() < total and rows.numel() % 4 == total % 4
        assert total % 4 == 0 or int(rows[-1]) == total - 1


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(concepts=5),
        dict(cell="gru"),
        dict(attention="none"),
        dict(attention="none", concepts=4, cell="rnn"),
    ],
    ids=["soft-lstm", "concepts", "gru", "show-and-tell", "plain-concepts"],
)
def test_a_step_over_some_rows_gives_those_rows_the_full_steps_results(kw):
    dec = decoder(**kw)
    grid, pooled = features(images=6)
    k = 3
    with torch.no_grad():
        step, state = dec.start(grid, pooled)
        assert step.takes_live
        state = {n: v.repeat_interleave(k, 0) + 0.1 * torch.randn_like(
            v.repeat_interleave(k, 0)) for n, v in state.items()}  # fmt: skip
        if "said" in state:
            state["said"] = (torch.rand_like(state["said"]) > 0.5).float()
        tokens = torch.randint(4, 60, (6 * k,))
        for live_rows in ([0], [0, 5, 17], [1, 2, 3, 4, 9, 10], list(range(1, 18, 2))):
            live = torch.zeros(6 * k, dtype=torch.bool)
            live[live_rows] = True
            full_logits, full_state, full_alpha = step(tokens, state)
            logits, new, alpha = step(tokens, state, live=live)
            assert same(logits[live], full_logits[live])
            for name in full_state:
                assert same(new[name][live], full_state[name][live])
                skipped = ~live & (logits.abs().sum(1) == 0)
                assert torch.equal(new[name][skipped], state[name][skipped])  # old state kept
            if full_alpha is not None:
                assert same(alpha[live], full_alpha[live])


@pytest.mark.parametrize("concepts", [0, 5])
@pytest.mark.parametrize(
    "settings",
    [
        dict(beam_size=3),
        dict(beam_size=5, no_repeat_ngram_size=2),
        dict(beam_size=2, length_penalty=0.0),
        dict(method="greedy"),
        dict(beam_size=1),
    ],
)
def test_searches_skipping_finished_rows_find_the_same_captions_and_scores(concepts, settings):
    dec = decoder(concepts=concepts)
    # bias the end token so beams finish at different steps (finished rows get skipped)
    with torch.no_grad():
        dec.out.bias[2] += 2.5
    config = GenerationConfig(max_length=12, **settings)
    for images in (1, 2, 9):
        grid, pooled = features(images, seed=images)
        step, state = dec.start(grid, pooled)
        fast = generate(step, state, IDS, config)
        step, state = dec.start(grid, pooled)
        ref = generate(full_rows(step), state, IDS, config)
        assert fast.tokens == ref.tokens
        assert fast.ended == ref.ended
        if BITWISE:
            assert fast.scores == ref.scores
        else:
            assert fast.scores == pytest.approx(ref.scores, abs=1e-5)
        for a, b in zip(fast.alphas, ref.alphas):
            assert (a is None) == (b is None) and (a is None or same(a, b))


def test_sampling_computes_every_row_so_a_seed_draws_the_same_words():
    dec = decoder()
    grid, pooled = features(4)
    calls = []

    def spy(tokens, state, **kw):
        calls.append(kw)
        return dec.step(tokens, state, context, **kw)

    context = dec.context(grid, pooled)
    spy.takes_live = True
    config = GenerationConfig(method="sample", seed=3, max_length=6)
    generate(spy, dec.init_state(grid, pooled, context), IDS, config)
    assert calls and all("live" not in kw for kw in calls)


def test_with_grad_on_the_step_computes_every_row():
    dec = decoder()
    grid, pooled = features(2)
    step, state = dec.start(grid, pooled)
    tokens = torch.tensor([5, 6])
    live = torch.tensor([True, False])
    with torch.enable_grad():
        logits, _, _ = step(tokens, state, live=live)
    assert logits[1].abs().sum() > 0  # computed, not skipped
    ref = functools.partial(dec.step, context=dec.context(grid, pooled))(tokens, state)[0]
    assert torch.allclose(logits, ref)


def test_the_attention_reuses_its_scratch_memory_and_gives_the_same_results():
    dec = decoder()
    grid, pooled = features(5)
    config = GenerationConfig(beam_size=3, max_length=8)
    with torch.no_grad():
        ref_step, ref_state = dec.start(grid, pooled)
        ref_step.keywords["context"].pop("scratch")  # the plain path: a new block each step
        ref = generate(ref_step, ref_state, IDS, config)
        step, state = dec.start(grid, pooled)
        scratch = step.keywords["context"]["scratch"]
        seen, steps = set(), []

        def spy(tokens, state, **kw):
            out = step(tokens, state, **kw)
            seen.add(scratch.untyped_storage().data_ptr())
            steps.append(1)
            return out

        spy.takes_live = True
        fast = generate(spy, state, IDS, config)
    assert fast.tokens == ref.tokens and fast.scores == pytest.approx(ref.scores, abs=1e-6)
    assert len(steps) >= 5 and len(seen) <= 2  # grown once at most, then reused


def test_a_step_bound_in_inference_mode_may_run_outside_it():
    dec = decoder()
    grid, pooled = features(3)
    with torch.inference_mode():
        step, state = dec.start(grid, pooled)
    out = generate(step, state, IDS, GenerationConfig(beam_size=2, max_length=5))  # no_grad
    with torch.inference_mode():
        again = generate(*dec.start(grid, pooled), IDS, GenerationConfig(beam_size=2, max_length=5))
    assert out.tokens == again.tokens
