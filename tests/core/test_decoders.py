import pytest
import torch

from captioner.decoders import CaptionDecoder, DecoderConfig, caption_loss, quantize_decoder
from captioner.decoding import GenerationConfig, SpecialIds, generate


def config(**kw):
    base = dict(
        vocab_size=20, feature_dim=12, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0
    )
    return DecoderConfig(**{**base, **kw})


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("attention", ["soft", "none"])
def test_teacher_forced_shapes_and_step_agreement(cell, attention):
    torch.manual_seed(0)
    dec = CaptionDecoder(config(cell=cell, attention=attention)).eval()
    grid = torch.randn(3, 6, 12)
    pooled = grid.mean(1)
    caps = torch.randint(3, 20, (3, 5))
    caps[:, 0] = 1
    logits, alphas = dec(grid, pooled, caps)
    assert logits.shape == (3, 4, 20)
    assert (alphas is None) == (attention == "none")
    if alphas is not None:
        assert alphas.shape == (3, 4, 6)
        assert torch.allclose(alphas.sum(-1), torch.ones(3, 4), atol=1e-5)
    # stepping by hand gives the same logits as the teacher-forced pass
    step, state = dec.start(grid, pooled)
    for t in range(4):
        step_logits, state, _ = step(caps[:, t], state)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
    assert ("c" in state) == (cell == "lstm")


def test_loss_ignores_padding_and_adds_attention_regulariser():
    torch.manual_seed(0)
    dec = CaptionDecoder(config()).eval()
    grid = torch.randn(2, 6, 12)
    caps = torch.tensor([[1, 5, 6, 2, 0, 0], [1, 7, 8, 9, 10, 2]])
    logits, alphas = dec(grid, grid.mean(1), caps)
    plain = caption_loss(logits, caps, None)
    # changing logits at padded positions changes nothing
    changed = logits.clone()
    changed[0, 4:] = 100.0
    assert caption_loss(changed, caps, None).item() == pytest.approx(plain.item(), abs=1e-6)
    assert caption_loss(logits, caps, alphas, alpha_c=1.0).item() > plain.item()
    assert caption_loss(logits, caps, alphas, alpha_c=0.0).item() == pytest.approx(plain.item())


def test_weight_tying_shares_the_embedding():
    dec = CaptionDecoder(config(tie_weights=True))
    assert dec.out.weight is dec.embed.weight
    untied = CaptionDecoder(config())
    assert sum(p.numel() for p in dec.parameters()) < sum(p.numel() for p in untied.parameters())


def test_training_reduces_loss_on_a_tiny_set():
    torch.manual_seed(0)
    dec = CaptionDecoder(config(cell="gru"))
    grid = torch.randn(4, 6, 12)
    caps = torch.tensor([[1, 4, 5, 2], [1, 6, 7, 2], [1, 8, 9, 2], [1, 10, 11, 2]])
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        logits, alphas = dec(grid, grid.mean(1), caps)
        loss = caption_loss(logits, caps, alphas)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(cell="transformer"), "cell"),
        (dict(attention="hard"), "attention"),
        (dict(hidden_dim=0), "hidden_dim"),
        (dict(dropout=1.5), "dropout"),
    ],
)
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        config(**bad)


def textbook_logits(dec, grid, pooled, captions):
    """Teacher forcing written the textbook way: grid and keys copied per row, tanh scores."""
    mean = grid.mean(1)
    h = torch.tanh(dec.init_h(mean))
    c = torch.tanh(dec.init_c(mean))
    keys = dec.attend.key(grid)
    out = []
    for t in range(captions.size(1) - 1):
        e = dec.attend.score(torch.tanh(keys + dec.attend.query(h)[:, None])).squeeze(-1)
        alpha = torch.softmax(e, -1)
        ctx = torch.sigmoid(dec.gate(h)) * torch.bmm(alpha[:, None], grid).squeeze(1)
        h, c = dec.rnn(torch.cat([dec.embed(captions[:, t]), ctx], -1), (h, c))
        out.append(dec.out(h))
    return torch.stack(out, 1)


def test_fast_attention_equals_the_textbook_formula_with_gradients():
    torch.manual_seed(0)
    dec = CaptionDecoder(config())
    grid = torch.randn(3, 6, 12)
    caps = torch.randint(3, 20, (3, 5))
    caps[:, 0] = 1
    got, _ = dec(grid, grid.mean(1), caps)
    want = textbook_logits(dec, grid, grid.mean(1), caps)
    assert torch.allclose(got, want, atol=1e-5)
    g_got = torch.autograd.grad(got.square().sum(), dec.attend.query.weight)[0]
    g_want = torch.autograd.grad(want.square().sum(), dec.attend.query.weight)[0]
    assert torch.allclose(g_got, g_want, atol=1e-4)


@pytest.mark.parametrize("attention", ["soft", "none"])
def test_rows_grouped_by_image_share_its_context(attention):
    """K rows per image (beams) see their image's context without copies of it."""
    torch.manual_seed(0)
    dec = CaptionDecoder(config(attention=attention)).eval()
    grid = torch.randn(3, 6, 12)
    tokens = torch.randint(3, 20, (3 * 4,))
    step, state = dec.start(grid, grid.mean(1))
    state = {k: v.repeat_interleave(4, 0) for k, v in state.items()}
    logits, _, _ = step(tokens, state)
    rep = grid.repeat_interleave(4, 0)  # the same images copied per row
    step_rep, state_rep = dec.start(rep, rep.mean(1))
    want, _, _ = step_rep(tokens, state_rep)
    assert torch.allclose(logits, want, atol=1e-5)


def test_int8_decoder_stays_close():
    torch.manual_seed(0)
    dec = CaptionDecoder(config(vocab_size=40, feature_dim=24, hidden_dim=20)).eval()
    with torch.no_grad():
        dec.out.weight.mul_(5.0)  # confident, image-dependent outputs
    q = quantize_decoder(dec)
    assert q is not dec and isinstance(dec.rnn, torch.nn.LSTMCell)  # original untouched
    grid = torch.randn(6, 9, 24, generator=torch.Generator().manual_seed(3))
    tokens = torch.randint(3, 40, (6,), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        step, state = dec.start(grid, grid.mean(1))
        ref, _, _ = step(tokens, state)
        step, state = q.start(grid, grid.mean(1))
        got, _, _ = step(tokens, state)
    spread = float(ref.max() - ref.min())
    assert float((got - ref).abs().max()) < 0.05 * spread
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.8
    ids = SpecialIds(bos_id=1, eos_id=2, pad_id=0, banned=(3,))
    with torch.inference_mode():  # the int8 copy runs in the one generation path
        out = generate(*q.start(grid, grid.mean(1)), ids, GenerationConfig(max_length=8))
    assert all(0 < len(t) <= 8 and all(3 < i < 40 for i in t) for t in out.tokens)
