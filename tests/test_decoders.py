import pytest
import torch

from captioner.decoders import CaptionDecoder, DecoderConfig, caption_loss


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
    state = dec.init_state(grid, pooled)
    for t in range(4):
        step_logits, state, _ = dec.step(caps[:, t], state)
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
