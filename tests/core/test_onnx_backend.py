"""ONNX Runtime encoder backend: export, cache, numerical agreement, backend choice."""

from __future__ import annotations

import json

import pytest
import torch
from labeling_support import TinyEncoder, make_photos, tiny_model

from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions

ort = pytest.importorskip("onnxruntime")
from captioner import onnx_backend as ob  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


def test_exported_encoder_matches_pytorch(cache):
    enc = TinyEncoder().eval()
    onnx_enc = ob.load_onnx_encoder(enc, cache_dir=cache)
    assert onnx_enc.path.parent == cache and onnx_enc.path.is_file()
    x = torch.randn(11, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref_grid, ref_pooled = enc(x)
    grid, pooled = onnx_enc(x)  # other batch sizes than the export's, in chunks of 8
    assert grid.shape == ref_grid.shape == (11, 64, 24) and pooled.shape == (11, 24)
    assert (grid - ref_grid).abs().max() < 1e-3 and (pooled - ref_pooled).abs().max() < 1e-3
    assert ref_grid.abs().mean() > 0.05  # features are not trivially zero
    for attr in ("name", "image_size", "out_channels", "transform", "cache_key"):
        assert getattr(onnx_enc, attr) == getattr(enc, attr)
    with pytest.raises(ob.OnnxBackendError):
        onnx_enc.to("cuda")


def test_export_is_cached_and_keyed_by_weights(cache, monkeypatch):
    enc = TinyEncoder().eval()
    first = ob.load_onnx_encoder(enc, cache_dir=cache).path

    def no_export(*a, **kw):
        raise AssertionError("exported again")

    monkeypatch.setattr(ob, "export_encoder", no_export)
    assert ob.load_onnx_encoder(enc, cache_dir=cache).path == first
    with torch.no_grad():
        enc.net[0].weight.add_(0.01)  # fine-tuned weights: a different export
    assert ob.onnx_path_for(enc, cache) != first
    monkeypatch.undo()
    second = ob.load_onnx_encoder(enc, cache_dir=cache).path
    assert second != first and second.is_file()
    second.write_bytes(b"damaged")  # a corrupt cache entry is exported again
    assert ob.load_onnx_encoder(enc, cache_dir=cache).path == second
    assert second.stat().st_size > 1000


def test_export_that_disagrees_is_refused(cache, monkeypatch):
    enc = TinyEncoder().eval()
    monkeypatch.setattr(ob, "max_difference", lambda *a, **kw: 0.5)
    with pytest.raises(ob.OnnxBackendError, match="disagrees"):
        ob.load_onnx_encoder(enc, cache_dir=cache / "fresh")
    assert not list((cache / "fresh").glob("*.onnx"))


def test_backend_choice():
    assert ob.resolve_backend("auto", "cpu") == "onnx"
    assert ob.resolve_backend("auto", "cuda") == "torch"
    assert ob.resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ob.OnnxBackendError, match="CPU only"):
        ob.resolve_backend("onnx", "cuda")
    with pytest.raises(ValueError, match="backend must be"):
        ob.resolve_backend("tensorrt", "cpu")
    assert ob.default_cache_dir().name == "onnx"


def test_backends_give_the_same_labels(tmp_path, cache):
    make_photos(tmp_path, 14)
    model = tiny_model()
    for backend in ("torch", "onnx"):
        eng = LabelEngine(model, EngineOptions(backend=backend, onnx_cache=cache))
        assert eng.backend == backend
        label_folders(
            [tmp_path],
            eng,
            LabelOptions(out=tmp_path / f"{backend}.jsonl", workers=0, batch_size=5),
        )
    rows = {
        b: [json.loads(x) for x in (tmp_path / f"{b}.jsonl").read_text().splitlines()]
        for b in ("torch", "onnx")
    }
    assert [r["caption"] for r in rows["torch"]] == [r["caption"] for r in rows["onnx"]]
    assert len({r["caption"] for r in rows["torch"]}) > 1
    for a, b in zip(rows["torch"], rows["onnx"]):
        assert [t["label"] for t in a["tags"]] == [t["label"] for t in b["tags"]]
        assert all(abs(x["score"] - y["score"]) < 1e-3 for x, y in zip(a["tags"], b["tags"]))


def test_export_leaves_the_global_random_stream_alone(tmp_path):
    enc = TinyEncoder().eval()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    ob.load_onnx_encoder(enc, cache_dir=tmp_path)  # a fresh export, checked on random input
    assert torch.equal(torch.rand(3), expected)  # training seeded before it is unaffected


def test_captioner_use_backend_same_captions_and_saves_the_torch_encoder(tmp_path):
    photos = tmp_path / "photos"
    rels = make_photos(photos, 6, sub_every=0)
    paths = [photos / r for r in rels]
    model = tiny_model(tags=False)
    ref = model.caption(paths, beam_size=2)
    ref_tags = tiny_model().tag(paths)
    assert model.use_backend("onnx", cache_dir=tmp_path / "cache") == "onnx"
    assert isinstance(model.encoder, ob.OnnxEncoder)
    assert model.caption(paths, beam_size=2) == ref
    tagger = tiny_model()
    tagger.use_backend("auto", cache_dir=tmp_path / "cache")  # auto on CPU -> onnx
    got_tags = tagger.tag(paths)
    assert [[t for t, _ in row] for row in got_tags] == [[t for t, _ in row] for row in ref_tags]
    from safetensors.torch import load_file

    saved = model.save_pretrained(tmp_path / "a", include_encoder=True)  # the PyTorch weights
    plain = tiny_model(tags=False).save_pretrained(tmp_path / "b", include_encoder=True)
    a, b = load_file(saved / "model.safetensors"), load_file(plain / "model.safetensors")
    assert any(k.startswith("encoder.") for k in a) and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (saved / "config.json").read_text() == (plain / "config.json").read_text()
    assert model.use_backend("torch") == "torch" and not isinstance(model.encoder, ob.OnnxEncoder)
    with pytest.raises(ob.OnnxBackendError, match="CPU only"):
        ob.resolve_backend("onnx", "cuda")
