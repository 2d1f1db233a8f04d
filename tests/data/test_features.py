"""Feature cache: encoder outputs computed once with Dataset.map, stored float16 on disk,
read back on a second run without calling the encoder."""

import numpy as np
import pytest
import torch
from training_support import FeatureEncoder, make_dataset, png_bytes

from captioner.data import DataError, compute_features
from captioner.data.common import CaptionRecord, DataReport, build_caption_dict
from captioner.data.features import cache_path


def test_features_computed_once_then_read_from_cache(tmp_path):
    enc = FeatureEncoder()
    feats = compute_features(make_dataset()["train"], enc, batch_size=2, cache_dir=tmp_path)
    assert enc.calls >= 3  # 5 images in batches of 2
    assert feats.column_names == ["captions", "image_id", "grid", "pooled"]
    assert feats.features["grid"].dtype == "float16" and feats.features["grid"].shape == (16, 4)
    assert list(feats["image_id"]) == [f"id{i}" for i in range(5)]
    again_enc = FeatureEncoder()  # a fresh process would rebuild both the data and the encoder
    again = compute_features(make_dataset()["train"], again_enc, batch_size=2, cache_dir=tmp_path)
    assert again_enc.calls == 0
    assert np.array_equal(np.asarray(again[:]["grid"]), np.asarray(feats[:]["grid"]))
    files = list(tmp_path.glob("*.arrow"))
    assert len(files) == 1 and files[0].name.startswith("tiny_enc-")


def test_cached_values_match_the_encoder(tmp_path):
    ds = make_dataset()["train"]
    enc = FeatureEncoder().train()
    modes = []
    enc.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    feats = compute_features(ds, enc, cache_dir=tmp_path).with_format("torch")
    assert modes and not any(modes) and enc.training  # encoded in eval mode, mode restored
    x = torch.stack([enc.transform(ds[i]["image"]) for i in range(len(ds))])
    with torch.no_grad():
        grid, pooled = enc(x)
    torch.testing.assert_close(feats[:]["grid"].float(), grid, atol=2e-3, rtol=2e-3)  # float16
    torch.testing.assert_close(feats[:]["pooled"], pooled, atol=1e-6, rtol=1e-6)  # float32


def test_cache_key_and_data_change_the_cache(tmp_path):
    ds = make_dataset()["train"]
    compute_features(ds, FeatureEncoder(), cache_dir=tmp_path)
    other = FeatureEncoder(cache_key="tiny|other-weights|resize16")
    compute_features(ds, other, cache_dir=tmp_path)
    assert other.calls > 0
    fewer = FeatureEncoder()
    compute_features(ds.select(range(3)), fewer, cache_dir=tmp_path)
    assert fewer.calls > 0 and len(list(tmp_path.glob("*.arrow"))) == 3
    assert cache_path(ds, FeatureEncoder(), tmp_path).is_file()


def test_dataset_dict_and_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path))
    dsd = compute_features(make_dataset(), FeatureEncoder())
    assert {k: len(v) for k, v in dsd.items()} == {"train": 5, "validation": 0, "test": 1}
    assert len(list((tmp_path / "features").glob("*.arrow"))) == 2  # the empty split needs none
    assert dsd["validation"].column_names == dsd["train"].column_names


def test_unreadable_image_names_the_row(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
    records = {
        "train": [
            CaptionRecord(png_bytes((0, 0, 0)), ["ok"], "good"),
            CaptionRecord(str(tmp_path / "bad.png"), ["bad"], "broken"),
        ]
    }
    ds = build_caption_dict(records, DataReport(source="t"))["train"]
    with pytest.raises(DataError, match=r"row 1 \(image_id broken\).*bad\.png"):
        compute_features(ds, FeatureEncoder(), cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.arrow")) and not list((tmp_path / "c").glob(".*"))


def test_needs_an_image_column(tmp_path):
    feats = compute_features(make_dataset()["train"], FeatureEncoder(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="'image' column"):
        compute_features(feats, FeatureEncoder(cache_key="x"), cache_dir=tmp_path)


@pytest.mark.slow
def test_onnx_backend_features_agree_with_pytorch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from captioner.encoders import build_encoder

    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))  # the ONNX export goes here
    enc = build_encoder("resnet18", weights=None)
    ds = make_dataset(4)["train"]
    ref = compute_features(ds, enc, cache_dir=tmp_path / "torch", backend="torch")
    got = compute_features(ds, enc, cache_dir=tmp_path / "onnx", backend="auto")
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx")), "auto on CPU did not use ONNX"
    a = np.asarray(ref.with_format("numpy")["grid"], dtype=np.float32)
    b = np.asarray(got.with_format("numpy")["grid"], dtype=np.float32)
    assert a.shape == b.shape == (4, 49, 512) and np.abs(a).mean() > 1e-2
    np.testing.assert_allclose(b, a, rtol=5e-3, atol=2e-3)
    pa = np.asarray(ref.with_format("numpy")["pooled"])
    pb = np.asarray(got.with_format("numpy")["pooled"])
    np.testing.assert_allclose(pb, pa, rtol=1e-3, atol=1e-3)
