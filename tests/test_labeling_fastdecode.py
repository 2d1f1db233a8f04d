"""FastStep beam search = decoder.step beam search; the int8 decoder stays close."""

from __future__ import annotations

import pytest
import torch

from captioner.decoders import CaptionDecoder, DecoderConfig
from captioner.decoding import beam_search, greedy
from captioner.labeling.fastdecode import FastStep, quantize_decoder, search

IDS = {"bos_id": 1, "eos_id": 2, "pad_id": 0}


def decoder(attention: str, cell: str, tie: bool = False) -> CaptionDecoder:
    torch.manual_seed(0)
    dec = CaptionDecoder(
        DecoderConfig(
            vocab_size=40,
            feature_dim=24,
            embed_dim=12,
            hidden_dim=20,
            attention_dim=10,
            attention=attention,
            cell=cell,
            dropout=0.0,
            tie_weights=tie,
        )
    )
    with torch.no_grad():
        dec.out.weight.mul_(5.0)  # confident, image-dependent outputs
        dec.init_h.weight.mul_(3.0)
    return dec.eval()


def features(b: int = 6, n: int = 9, c: int = 24):
    grid = torch.randn(b, n, c, generator=torch.Generator().manual_seed(3))
    return grid, grid.mean(1)


@pytest.mark.parametrize(
    "attention,cell,tie",
    [
        ("soft", "lstm", False),
        ("soft", "gru", True),
        ("none", "lstm", False),
        ("none", "rnn", False),
    ],
)
def test_fast_step_gives_the_same_hypotheses(attention, cell, tie):
    dec = decoder(attention, cell, tie)
    grid, pooled = features()
    with torch.inference_mode():
        for k in (1, 4):
            search_fn = greedy if k == 1 else beam_search
            extra = {} if k == 1 else {"beam_size": k}
            ref = search_fn(dec.step, dec.init_state(grid, pooled), max_length=10, **IDS, **extra)
            got = search(dec, grid, pooled, beam_size=k, max_length=10, **IDS)
            assert got.tokens == ref.tokens
            assert got.scores == pytest.approx(ref.scores, abs=1e-4)
            if attention == "soft":
                for a, b in zip(got.alphas, ref.alphas):
                    assert torch.allclose(a, b, atol=1e-5)
        assert len({tuple(t) for t in ref.tokens}) > 1


def test_fast_step_logits_match_one_step():
    dec = decoder("soft", "lstm")
    grid, pooled = features()
    step = FastStep(dec, grid, pooled)
    tokens = torch.randint(3, 40, (6,), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, ref_state, ref_alpha = dec.step(tokens, dec.init_state(grid, pooled))
        got, state, alpha = step(tokens, step.initial_state)
    assert torch.allclose(got, ref, atol=1e-5) and torch.allclose(alpha, ref_alpha, atol=1e-6)
    assert torch.allclose(state["h"], ref_state["h"], atol=1e-6)
    with pytest.raises(ValueError, match="inference"):
        FastStep(dec.train(), grid, pooled)


def test_int8_decoder_stays_close():
    dec = decoder("soft", "lstm")
    q = quantize_decoder(dec)
    assert q is not dec and isinstance(dec.rnn, torch.nn.LSTMCell)  # original untouched
    grid, pooled = features()
    tokens = torch.randint(3, 40, (6,), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, _, _ = FastStep(dec, grid, pooled)(tokens, FastStep(dec, grid, pooled).initial_state)
        fs = FastStep(q, grid, pooled)
        got, _, _ = fs(tokens, fs.initial_state)
        out = search(q, grid, pooled, beam_size=3, max_length=8, **IDS)
    spread = float(ref.max() - ref.min())
    assert float((got - ref).abs().max()) < 0.05 * spread
    agree = (got.argmax(-1) == ref.argmax(-1)).float().mean()
    assert agree >= 0.8
    assert all(0 < len(t) <= 8 and all(2 < i < 40 for i in t) for t in out.tokens)
