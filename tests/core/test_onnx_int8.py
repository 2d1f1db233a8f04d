"""The int8 ONNX encoder: quantized once per calibration sample, cached, agrees with float."""

from __future__ import annotations

import json

import pytest
import torch
from labeling_support import TinyEncoder, make_photos, tiny_model

from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions

pytest.importorskip("onnxruntime")
from captioner import onnx_int8  # noqa: E402
from captioner.onnx_backend import OnnxBackendError, load_onnx_encoder  # noqa: E402


def photos(tmp_path, n=12):
    rels = make_photos(tmp_path / "photos", n)
    return [str(tmp_path / "photos" / r) for r in rels]


def test_spread_takes_evenly_spaced_items():
    assert onnx_int8.spread(list(range(10)), 20) == list(range(10))
    assert onnx_int8.spread(list(range(100)), 4) == [0, 25, 50, 75]


def test_int8_encoder_is_cached_per_calibration_and_close_to_float(tmp_path, monkeypatch):
    paths = photos(tmp_path)
    enc = TinyEncoder().eval()
    q = onnx_int8.load_int8_encoder(enc, paths, cache_dir=tmp_path / "cache")
    assert q.path.is_file() and "-int8-" in q.path.name
    ref = load_onnx_encoder(enc, cache_dir=tmp_path / "cache")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cos = torch.nn.functional.cosine_similarity(q(x)[1], ref(x)[1], dim=-1)
    assert cos.min() > 0.9 and q(x)[0].shape == ref(x)[0].shape

    def no_quantize(*a, **kw):
        raise AssertionError("quantized again instead of using the cache")

    monkeypatch.setattr(onnx_int8, "_quantize", no_quantize)
    again = onnx_int8.load_int8_encoder(enc, paths, cache_dir=tmp_path / "cache")
    assert again.path == q.path
    with pytest.raises(OnnxBackendError, match="quantized again"):  # another sample: new model
        onnx_int8.load_int8_encoder(enc, paths[:5], cache_dir=tmp_path / "cache")


def test_int8_encoder_refuses_without_images_or_when_it_disagrees(tmp_path, monkeypatch):
    enc = TinyEncoder().eval()
    with pytest.raises(OnnxBackendError, match="calibration images"):
        onnx_int8.load_int8_encoder(enc, [], cache_dir=tmp_path)
    monkeypatch.setattr(onnx_int8, "MIN_COSINE", 1.01)
    with pytest.raises(OnnxBackendError, match="disagrees"):
        onnx_int8.load_int8_encoder(enc, photos(tmp_path), cache_dir=tmp_path / "c2")
    assert not list((tmp_path / "c2").glob("*int8*"))  # nothing half-made is kept


def test_label_with_the_int8_encoder(tmp_path):
    paths = photos(tmp_path, 6)
    opts = dict(backend="onnx", onnx_cache=str(tmp_path / "cache"),
                generation=GenerationConfig(beam_size=2))  # fmt: skip
    eng = LabelEngine(tiny_model(), EngineOptions(encoder="int8", calibration=paths, **opts))
    assert eng.backend == "onnx" and eng.settings()["encoder"].startswith("int8-")
    assert LabelEngine(tiny_model(), EngineOptions(**opts)).settings()["encoder"] == "float"
    summary = label_folders([tmp_path / "photos"], eng, LabelOptions(workers=0))
    assert summary.labelled == 6
    rows = [json.loads(x) for x in (tmp_path / "photos/labels.jsonl").read_text().splitlines()]
    assert all(r["caption"] and r["tags"] for r in rows)
    with pytest.raises(ValueError, match="int8 encoder runs in ONNX Runtime"):
        LabelEngine(tiny_model(), EngineOptions(encoder="int8", calibration=paths, backend="torch"))
