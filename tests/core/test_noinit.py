"""Modules built without random initialisation (meta device, `torch.nn.init` skipped) and
loaded by assignment give the same model as building on the CPU and copying the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from captioner import efficientnet_lite as lite
from captioner.noinit import assign_state, empty_modules


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 8, padding_idx=0)
        self.rnn = nn.LSTM(8, 12, batch_first=True, bidirectional=True)
        self.norm = nn.BatchNorm1d(24)
        self.out = nn.Linear(8, 40)
        self.out.weight = self.embed.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embed(ids))  # (B, T, 24)
        return self.norm(h.mean(1)), self.out(self.embed(ids))


@pytest.mark.slow
def test_empty_modules_allocate_nothing_and_import_no_dynamo():
    import subprocess
    import sys

    with empty_modules():
        model = Tied()
    assert all(p.is_meta for p in model.parameters())
    # torch.nn.init on "meta" would import torch._dynamo (seconds): it is skipped
    code = (
        "import sys, torch; from captioner.noinit import empty_modules\n"
        "with empty_modules(): torch.nn.Embedding(9, 4); torch.nn.LSTM(4, 4)\n"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert model.out.weight is model.embed.weight


def test_assign_state_matches_a_copied_load_and_keeps_ties_and_dtypes():
    torch.manual_seed(0)
    reference = Tied().eval()
    stored = {k: v.detach().clone().half() if v.is_floating_point() else v.clone()
              for k, v in reference.state_dict().items()}  # fmt: skip
    reference.load_state_dict(stored)  # the float16 values, copied into float32
    with empty_modules():
        model = Tied()
    assign_state(model, stored)
    model.eval()
    assert model.out.weight is model.embed.weight
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.norm.num_batches_tracked.dtype == torch.long
    assert all(p.requires_grad for p in model.parameters())
    ids = torch.randint(0, 40, (3, 5))
    for a, b in zip(model(ids), reference(ids), strict=True):
        assert torch.equal(a, b)
    model.train()  # trainable after loading; the tied table stays one tensor
    before = model.embed.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sum(t.sum() for t in model(ids)).backward()
    optimizer.step()
    assert not torch.equal(model.out.weight, before)
    assert model.out.weight is model.embed.weight


def test_assign_state_refuses_missing_and_misshapen_tensors():
    torch.manual_seed(0)
    state = Tied().state_dict()
    with empty_modules():
        model = Tied()
    with pytest.raises(RuntimeError, match="Missing key"):
        assign_state(model, {k: v for k, v in state.items() if not k.startswith("rnn.")})
    with empty_modules():
        model = Tied()
    bad = {**state, "out.bias": torch.zeros(3)}
    with pytest.raises(RuntimeError, match="size mismatch"):
        assign_state(model, bad)


def test_a_buffer_the_state_does_not_hold_is_an_error():
    class WithTable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("table", torch.arange(4.0), persistent=False)

    with empty_modules():
        model = WithTable()
    state = {f"lin.{k}": v for k, v in nn.Linear(2, 2).state_dict().items()}
    with pytest.raises(RuntimeError, match=r"meta device\): table"):
        assign_state(model, state)


def test_bundled_models_load_without_random_init_and_give_the_same_outputs():
    """The bundled sentiment model, translator and encoder: loaded the fast way, they give
    what the same weights copied into a randomly initialised module give."""
    from captioner import checkpoint as ckpt
    from captioner.encoders import build_encoder
    from captioner.model_dir import BUNDLED_DIR, load_sentiment
    from captioner.modelcheck import load_model_dir
    from captioner.sentiment import SentimentModel, sentiment_probs

    if not (BUNDLED_DIR / "default" / "config.json").is_file():
        pytest.skip("no bundled default model")
    model, vocab = load_sentiment(BUNDLED_DIR / "default")
    assert not any(t.is_meta for t in model.state_dict().values())
    _, tensors = load_model_dir(BUNDLED_DIR / "default")
    slow = SentimentModel(model.config)
    slow.load_state_dict({k: v.float() for k, v in ckpt.subset(tensors, "sentiment").items()})
    texts = ["what a lovely day", "this was a waste of time", "a dog on the grass"]
    fast, copied = sentiment_probs(model, vocab, texts), sentiment_probs(slow.eval(), vocab, texts)
    assert torch.equal(fast, copied)

    encoder = build_encoder()  # the shipped ImageNet weights, assigned
    reference = lite.efficientnet_lite0(state_dict=lite.load_default_state_dict()).eval()
    pixels = encoder.transform(Image.fromarray(np.full((40, 50, 3), 120, np.uint8)))[None]
    with torch.inference_mode():
        assert torch.equal(encoder.backbone(pixels), reference.forward_features(pixels))


def test_the_bundled_translator_loads_without_random_init():
    from captioner.translation import TranslationModel, bundled_dir
    from captioner.translator_net import Translator

    directory = bundled_dir("de")
    if not (directory / "config.json").is_file():
        pytest.skip("no bundled EN->DE translator")
    fast = TranslationModel.load(directory)
    assert not any(t.is_meta for t in fast.model.state_dict().values())
    assert fast.model.embed.weight.dtype == torch.float32
    slow = Translator(fast.config)
    slow.load_state_dict(fast.model.state_dict())
    sentence = ["a dog runs on the grass ."]
    expected = TranslationModel(slow.eval(), fast.subwords).translate(sentence, beam_size=2)
    assert fast.translate(sentence, beam_size=2) == expected
