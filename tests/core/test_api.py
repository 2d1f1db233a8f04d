import json

import numpy as np
import pytest
import torch
from PIL import Image
from tests_support import tiny_captioner as _tiny

from captioner import Captioner
from captioner.checkpoint import CheckpointError


def tiny_captioner(attention="soft", with_sentiment=True):
    return _tiny(attention=attention, sentiment=with_sentiment)


@pytest.fixture(scope="module")
def model():
    return tiny_captioner()


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (50 + 10 * i, 70, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_inputs_of_every_kind_give_one_caption_each(model, images):
    pil = Image.open(images[0])
    arr = np.asarray(pil)
    ten = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
    by_path = model.caption([str(p) for p in images], beam_size=2)
    assert len(by_path) == 3 and all(isinstance(c, str) for c in by_path)
    assert model.caption(images[0]) == model.caption(pil) == model.caption(arr) == [by_path[0]]
    assert model.caption(ten) == [by_path[0]]  # same pixels as a tensor
    assert len(model.caption(np.stack([arr, arr]))) == 2  # (B, H, W, C) batch


def test_batching_does_not_change_results(model, images):
    one_by_one = [model.caption(p)[0] for p in images]
    assert model.caption(images, batch_size=2) == one_by_one


def test_describe_gives_caption_sentiment_and_attention(model, images):
    d = model.describe(images[:2], attention=True)
    assert len(d) == 2
    for item in d:
        assert isinstance(item.caption, str)
        label, p = item.sentiment
        assert label in ("negative", "positive") and 0.5 <= p <= 1.0
        assert item.tags is None  # this model has no recognition head
        words = item.caption.split()
        if words:
            assert [w for w, _ in item.attention] == words
        for _, amap in item.attention:
            assert amap.shape == (7, 7)  # 224 px through resnet18 -> 7x7 grid
            assert abs(float(amap.sum()) - 1.0) < 1e-4
        assert json.dumps(item.to_record())


def test_decoding_methods(model, images):
    greedy = model.caption(images, method="greedy")
    assert model.caption(images, method="beam", beam_size=1) == greedy
    a = model.caption(images, method="sample", seed=3, temperature=0.7)
    assert a == model.caption(images, method="sample", seed=3, temperature=0.7)
    with pytest.raises(ValueError, match="method"):
        model.caption(images, method="telepathy")


def test_save_and_load_round_trip(model, images, tmp_path):
    out = model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",  # the model card
        "config.json",
        "model.safetensors",
        "sentiment_vocab.json",
        "vocab.json",
    ]
    again = Captioner.from_pretrained(out, device="cpu")
    assert again.caption(images) == model.caption(images)
    (label_a, p_a), (label_b, p_b) = again.sentiment(["good circle"]) + model.sentiment(
        ["good circle"]
    )
    assert label_a == label_b and p_a == pytest.approx(p_b, abs=1e-6)


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda d: (d / "config.json").unlink(), "config.json: missing"),
        (lambda d: (d / "config.json").write_text("{oops"), "config.json: malformed JSON"),
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors: missing"),
        (
            lambda d: (d / "model.safetensors").write_bytes(b"not a tensor file"),
            "model.safetensors: malformed",
        ),
        (lambda d: (d / "vocab.json").unlink(), "vocab.json"),
        (lambda d: (d / "vocab.json").write_text("[1, 2"), "vocab.json"),
        (
            lambda d: (d / "config.json").write_text(json.dumps({"format": "other"})),
            "not a captioner model",
        ),
    ],
)
def test_damaged_model_directory_names_the_file(model, tmp_path, damage, match):
    out = model.save_pretrained(tmp_path / "m")
    damage(out)
    with pytest.raises(CheckpointError, match=match):
        Captioner.from_pretrained(out, device="cpu")


def test_mismatched_weights_are_a_clear_error(tmp_path):
    small = tiny_captioner(with_sentiment=False)
    out = small.save_pretrained(tmp_path / "m")
    cfg = json.loads((out / "config.json").read_text())
    cfg["decoder"]["hidden_dim"] = 64
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        Captioner.from_pretrained(out, device="cpu")


def test_unknown_model_name_and_hub_fallback(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such model"):
        Captioner.from_pretrained(tmp_path / "missing" / "deeper" / "x")
    # a hub id goes through huggingface_hub; offline here, so use a local snapshot
    saved = tiny_captioner(with_sentiment=False).save_pretrained(tmp_path / "snap")
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kw):
        calls.append(repo_id)
        return str(saved)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    loaded = Captioner.from_pretrained("someone/tiny-captioner", device="cpu")
    assert calls == ["someone/tiny-captioner"] and loaded.decoder is not None


def test_missing_heads_give_clear_errors(images):
    m = tiny_captioner(with_sentiment=False)
    with pytest.raises(RuntimeError, match="no tag head"):
        m.tag(images)
    with pytest.raises(RuntimeError, match="no sentiment head"):
        m.sentiment("hello")
    d = m.describe(images[:1])[0]
    assert d.sentiment is None and d.tags is None and d.caption is not None


def test_corrupt_image_is_a_clear_error(model, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    from captioner.imageio import ImageLoadError

    with pytest.raises(ImageLoadError, match="bad.jpg"):
        model.caption([bad])


@pytest.mark.slow
def test_half_precision_save_is_smaller_and_loads_as_float32(model, images, tmp_path):
    full = model.save_pretrained(tmp_path / "full")
    half = model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    size = lambda d: (d / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.55 * size(full)
    again = Captioner.from_pretrained(half, device="cpu")
    assert all(p.dtype == torch.float32 for p in again.decoder.parameters())
    assert again.caption(images) == model.caption(images)


def test_saved_model_is_readable_by_others(model, tmp_path):
    out = model.save_pretrained(tmp_path / "shared")
    assert out.stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o044 == 0o044 for f in out.iterdir())
