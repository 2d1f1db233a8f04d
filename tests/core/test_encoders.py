"""Encoder registry: real offline ImageNet weights, every backbone's shapes, freezing, errors."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import skimage.data
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from captioner.efficientnet_lite import default_weights_path, load_default_state_dict
from captioner.encoders import available_encoders, build_encoder
from captioner.encoders import build_encoder_from_config as from_config
from captioner.model_config import EncoderConfig

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}
CUP_CLASSES = {"espresso", "cup", "coffee mug"}
CHANNELS = {
    "resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048,
    "mobilenet_v3_large": 960, "mobilenet_v3_small": 576,
    "efficientnet_b0": 1280, "efficientnet_b1": 1280, "efficientnet_b2": 1408,
}  # fmt: skip


@pytest.fixture(scope="module")
def lite():
    return build_encoder()  # efficientnet_lite0, shipped ImageNet weights


@pytest.fixture(scope="module")
def photos(lite):
    imgs = [Image.fromarray(skimage.data.coffee()), Image.fromarray(skimage.data.chelsea())]
    return torch.stack([lite.transform(im) for im in imgs])  # (2, 3, 224, 224)


def _top1(enc, x):
    with torch.no_grad():
        _, pooled = enc(x)
        return [enc.categories[i] for i in enc.classifier(pooled).argmax(-1).tolist()]


def test_lite_matches_reference_implementation(lite, photos):
    ref_mod = pytest.importorskip("efficientnet_lite_pytorch")
    path = str(default_weights_path())
    ref = ref_mod.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    with torch.no_grad():
        grid, pooled = lite(photos)
        logits = lite.classifier(pooled)
        ref_feats = ref.extract_features(photos)  # (2, 1280, 7, 7)
        ref_logits = ref(photos)
    assert grid.shape == (2, 49, 1280) and pooled.shape == (2, 1280)
    assert (logits - ref_logits).abs().max() < 1e-4
    assert (grid - ref_feats.flatten(2).transpose(1, 2)).abs().max() < 1e-4
    # TF "SAME" padding on odd, non-square sizes (asymmetric for stride 2).
    dyn = ref_mod.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path,
                                               image_size=None).eval()  # fmt: skip
    x = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        grid, _ = lite(x)
        want = dyn.extract_features(x)
    assert grid.shape == (1, 4 * 5, 1280)
    assert (grid - want.flatten(2).transpose(1, 2)).abs().max() < 1e-4


def test_lite_predicts_real_photos(lite, photos):
    coffee, cat = _top1(lite, photos)
    assert coffee in CUP_CLASSES, coffee
    assert cat in CAT_CLASSES, cat
    assert len(lite.categories) == 1000 and lite.categories[967] == "espresso"


def test_channels_last_gives_same_features(lite, photos):
    fast = build_encoder(channels_last=True)
    assert fast.channels_last and fast.backbone._conv_stem.weight.is_contiguous(
        memory_format=torch.channels_last
    )
    with torch.no_grad():
        grid, pooled = fast(photos)
        want_grid, want_pooled = lite(photos)
    assert grid.shape == want_grid.shape
    assert (grid - want_grid).abs().max() < 1e-4 and (pooled - want_pooled).abs().max() < 1e-5
    fast.use_channels_last(False)
    assert fast.backbone._conv_stem.weight.is_contiguous() and not fast.channels_last


def test_lite_transform_normalisation(lite):
    assert lite.image_size == 224
    assert np.allclose(lite.mean, 127 / 255) and np.allclose(lite.std, 128 / 255)
    a = np.zeros((50, 80, 3), np.uint8)
    a[:, 40:] = 255  # left half black, right half white: no crop keeps both
    x = lite.transform(Image.fromarray(a))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x[:, :, 0], torch.tensor(-127 / 128), atol=1e-5)
    assert torch.allclose(x[:, :, -1], torch.tensor(1.0), atol=1e-5)
    gray_rgba = Image.fromarray(np.full((30, 30, 4), 200, np.uint8), "RGBA")
    assert lite.transform(gray_rgba).shape == (3, 224, 224)
    assert lite.transform(Image.fromarray(a[..., 0], "L")).shape == (3, 224, 224)


def test_lite_weights_from_local_safetensors(tmp_path, lite, photos):
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in load_default_state_dict().items()}, str(path))
    enc = build_encoder("efficientnet_lite0", weights=path)  # a Path works as well as a str
    with torch.no_grad():
        assert torch.equal(enc(photos)[1], lite(photos)[1])
    assert enc.categories == lite.categories and enc.classifier is not None
    assert enc.cache_key != lite.cache_key and "file-sha256-" in enc.cache_key
    assert enc.cache_key == build_encoder("efficientnet_lite0", weights=str(path)).cache_key


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_torchvision_encoder_shapes(name):
    enc = build_encoder(name, weights=None)
    assert enc.classifier is None and enc.categories is None
    assert enc.out_channels == CHANNELS[name]
    assert enc.image_size >= 224 and len(enc.mean) == len(enc.std) == 3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        grid, pooled = enc(x)
    assert grid.shape == (2, 4, CHANNELS[name])  # 64 / 32 = 2 -> N = 4
    assert pooled.shape == (2, CHANNELS[name])
    assert torch.allclose(pooled, grid.mean(1))
    assert not any(p.requires_grad for p in enc.parameters())


def test_available_encoders_and_unknown_name():
    names = available_encoders()
    assert names[0] == "efficientnet_lite0" and set(CHANNELS) <= set(names)
    with pytest.raises(ValueError, match="unknown encoder 'vgg99'.*resnet50"):
        build_encoder("vgg99", weights=None)


def test_set_trainable_blocks_lite():
    enc = build_encoder(trainable_blocks=2)
    assert enc.num_blocks == 18 and enc.trainable_blocks == 2
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("backbone._blocks.15.", "backbone._conv_head.", "backbone._bn1."))
        for n in trainable
    )
    assert "backbone._blocks.15._depthwise_conv.weight" in trainable
    assert "backbone._blocks.14._project_conv.weight" not in trainable
    assert "classifier.weight" not in trainable
    enc.train()
    assert enc.backbone._blocks[15]._bn1.training and enc.backbone._bn1.training
    assert not enc.backbone._blocks[14]._bn1.training and not enc.backbone._bn0.training
    frozen_stats = enc.backbone._blocks[3]._bn1.running_mean.clone()
    live_stats = enc.backbone._bn1.running_mean.clone()
    enc(torch.randn(2, 3, 64, 64))
    assert torch.equal(enc.backbone._blocks[3]._bn1.running_mean, frozen_stats)
    assert not torch.equal(enc.backbone._bn1.running_mean, live_stats)
    enc.set_trainable_blocks(0)  # while in train mode: everything freezes and goes eval
    assert enc.training and not any(p.requires_grad for p in enc.parameters())
    assert not any(m.training for m in enc.backbone.modules())
    enc.set_trainable_blocks(100)
    assert all(p.requires_grad for n, p in enc.named_parameters() if n.startswith("backbone."))
    with pytest.raises(ValueError, match="trainable_blocks"):
        enc.set_trainable_blocks(-1)


def test_set_trainable_blocks_resnet18():
    enc = from_config(EncoderConfig(name="resnet18", weights=None, trainable_blocks=1))
    assert enc.num_blocks == 9  # stem + 8 BasicBlocks
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in enc.named_parameters() if n.startswith("backbone.layer4.1.")}
    enc.train()
    assert enc.backbone.layer4[1].bn2.training
    assert not enc.backbone.layer4[0].bn2.training and not enc.backbone.bn1.training


def test_local_torchvision_file(tmp_path):
    torch.manual_seed(1)
    ref = torchvision.models.mobilenet_v3_small(weights=None).eval()
    pth = tmp_path / "mnv3.pth"
    torch.save(ref.state_dict(), pth)
    enc = build_encoder("mobilenet_v3_small", weights=str(pth))
    assert enc.categories is not None and len(enc.categories) == 1000
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        _, pooled = enc(x)
        assert torch.allclose(enc.classifier(pooled), ref(x), atol=1e-5)
    # a backbone-only file (no classifier keys) loads without a classifier
    body = {k: v for k, v in ref.state_dict().items() if not k.startswith("classifier.")}
    save_file(body, str(tmp_path / "body.safetensors"))
    enc2 = build_encoder("mobilenet_v3_small", weights=str(tmp_path / "body.safetensors"))
    assert enc2.classifier is None and enc2.categories is None
    assert enc2.cache_key != enc.cache_key


def test_bad_weights_give_clear_errors(tmp_path, monkeypatch):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_encoder("resnet18", weights=str(missing))
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        build_encoder("resnet18", weights="IMAGENET9K_V7")
    with pytest.raises(ValueError, match="efficientnet_lite0.*'default'"):
        build_encoder("efficientnet_lite0", weights="IMAGENET1K_V1")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        build_encoder("resnet18", weights=str(garbage))
    wrong = tmp_path / "wrong.safetensors"
    save_file(torchvision.models.resnet18(weights=None).state_dict(), str(wrong))
    with pytest.raises(ValueError, match="wrong.safetensors.*do not fit"):
        build_encoder("resnet50", weights=str(wrong))

    # Offline, an enum whose file is not cached fails with a message about the network.
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network)
    with pytest.raises(RuntimeError, match="needs network access.*local"):
        build_encoder("resnet18", weights="DEFAULT")


def test_cache_key_is_stable_and_specific(lite):
    assert lite.cache_key == build_encoder().cache_key
    assert "efficientnet_lite0" in lite.cache_key and "size=224" in lite.cache_key
    torch.manual_seed(0)
    a = build_encoder("mobilenet_v3_small", weights=None).cache_key
    torch.manual_seed(0)
    b = build_encoder("mobilenet_v3_small", weights=None).cache_key
    torch.manual_seed(1)
    c = build_encoder("mobilenet_v3_small", weights=None).cache_key
    assert a == b != c and a.startswith("mobilenet_v3_small|random-")
    # weights loaded later (as from a checkpoint) or fine-tuned change the key
    enc = build_encoder("mobilenet_v3_small", weights=None)
    before = enc.cache_key
    with torch.no_grad():
        enc.backbone[-1][0].weight.mul_(2)
    assert enc.cache_key != before
    tuned = build_encoder(trainable_blocks=1)
    assert tuned.cache_key != lite.cache_key and "pypi-efficientnet-lite0" in tuned.cache_key
