"""int8 weight storage (checkpoint.quantize_int8): half of float16, close to the weights."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests_support import tiny_captioner

from captioner import checkpoint as ckpt
from captioner.api import Captioner


def test_quantize_round_trip_is_within_half_a_step_per_row():
    torch.manual_seed(0)
    w = torch.randn(300, 400) * torch.linspace(0.01, 3.0, 300)[:, None]  # rows of any scale
    stored = ckpt.quantize_int8({"m.weight": w, "m.bias": torch.randn(300)})
    assert stored["m.weight"].dtype == torch.int8 and stored["m.bias"].dtype == torch.float16
    back = ckpt.dequantize_int8(stored, source="x")
    step = w.abs().amax(dim=1, keepdim=True) / 127
    assert set(back) == {"m.weight", "m.bias"}
    err = (back["m.weight"].float() - w).abs()
    assert (err <= step / 2 + 1e-3 * w.abs() + 1e-6).all()  # + float16 rounding of the result


def test_a_model_saved_as_int8_reloads_close_and_stays_int8(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "INT8_MIN_NUMEL", 256)  # the tiny model's matrices count
    cap = tiny_captioner()
    f16 = cap.save_pretrained(tmp_path / "f16", dtype=torch.float16)
    i8 = cap.save_pretrained(tmp_path / "i8", dtype=torch.int8)

    def decoder_bytes(d):
        ts = load_file(d / "model.safetensors")
        return sum(t.numel() * t.element_size() for k, t in ts.items() if "decoder." in k)

    assert decoder_bytes(i8) < 0.7 * decoder_bytes(f16)
    again = Captioner.from_pretrained(i8, device="cpu", backend="torch")
    assert again.storage_dtype == torch.int8
    for k, v in cap.decoder.state_dict().items():
        got = again.decoder.state_dict()[k].float()
        assert (got - v).abs().max() <= v.abs().max() / 127 + 1e-3, k
    resaved = again.save_pretrained(tmp_path / "again")  # keeps int8 by default
    assert any(t.dtype == torch.int8 for t in load_file(resaved / "model.safetensors").values())


def test_a_scale_without_its_int8_weight_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "INT8_MIN_NUMEL", 256)
    out = tiny_captioner().save_pretrained(tmp_path / "m", dtype=torch.int8)
    tensors = load_file(out / "model.safetensors")
    scale = next(k for k in tensors if k.startswith(ckpt.INT8_SCALE))
    tensors[scale] = torch.ones(3)  # not one per row
    save_file(tensors, out / "model.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="row scale"):
        Captioner.from_pretrained(out, device="cpu", backend="torch")
