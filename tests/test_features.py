"""Feature cache: encoder outputs computed once with Dataset.map, stored float16 on disk,
read back on a second run without calling the encoder."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from captioner.data import DataError, compute_features
from captioner.data.common import CaptionRecord, DataReport, build_caption_dict
from captioner.data.features import cache_path


class TinyEncoder(nn.Module):
    """A stand-in with the Encoder interface; counts forward calls."""

    name, weights, out_channels, image_size = "tiny/enc", None, 4, 16

    def __init__(self, cache_key="tiny|random|resize16"):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, kernel_size=4, stride=4)
        self.cache_key, self.calls = cache_key, 0
        self.requires_grad_(False)  # frozen, as an encoder whose features are cached

    def transform(self, img):
        a = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.float32) / 255.0
        return torch.from_numpy(a).permute(2, 0, 1)  # (3, 16, 16)

    def forward(self, images):
        self.calls += 1
        grid = self.conv(images).flatten(2).transpose(1, 2)  # (B, 16, 4)
        return grid, grid.mean(1)  # (B, N, C), (B, C)


def png_bytes(color):
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), color).save(buf, format="PNG")
    return buf.getvalue()


def make_dataset(n=5):
    records = {
        "train": [
            CaptionRecord(png_bytes((40 * i, 255 - 40 * i, 90)), [f"caption {i}", "x"], f"id{i}")
            for i in range(n)
        ],
        "test": [CaptionRecord(png_bytes((1, 2, 3)), ["only one"], "t0")],
    }
    return build_caption_dict(records, DataReport(source="test"))


def test_features_computed_once_then_read_from_cache(tmp_path):
    enc = TinyEncoder()
    feats = compute_features(make_dataset()["train"], enc, batch_size=2, cache_dir=tmp_path)
    assert enc.calls >= 3  # 5 images in batches of 2
    assert feats.column_names == ["captions", "image_id", "grid", "pooled"]
    assert feats.features["grid"].dtype == "float16" and feats.features["grid"].shape == (16, 4)
    assert list(feats["image_id"]) == [f"id{i}" for i in range(5)]
    again_enc = TinyEncoder()  # a fresh process would rebuild both the data and the encoder
    again = compute_features(make_dataset()["train"], again_enc, batch_size=2, cache_dir=tmp_path)
    assert again_enc.calls == 0
    assert np.array_equal(np.asarray(again[:]["grid"]), np.asarray(feats[:]["grid"]))
    files = list(tmp_path.glob("*.arrow"))
    assert len(files) == 1 and files[0].name.startswith("tiny_enc-")


def test_cached_values_match_the_encoder(tmp_path):
    ds = make_dataset()["train"]
    enc = TinyEncoder().train()
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
    compute_features(ds, TinyEncoder(), cache_dir=tmp_path)
    other = TinyEncoder(cache_key="tiny|other-weights|resize16")
    compute_features(ds, other, cache_dir=tmp_path)
    assert other.calls > 0
    fewer = TinyEncoder()
    compute_features(ds.select(range(3)), fewer, cache_dir=tmp_path)
    assert fewer.calls > 0 and len(list(tmp_path.glob("*.arrow"))) == 3
    assert cache_path(ds, TinyEncoder(), tmp_path).is_file()


def test_dataset_dict_and_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path))
    dsd = compute_features(make_dataset(), TinyEncoder())
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
        compute_features(ds, TinyEncoder(), cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.arrow")) and not list((tmp_path / "c").glob(".*"))


def test_needs_an_image_column(tmp_path):
    feats = compute_features(make_dataset()["train"], TinyEncoder(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="'image' column"):
        compute_features(feats, TinyEncoder(cache_key="x"), cache_dir=tmp_path)


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
