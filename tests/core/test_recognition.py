"""The one-to-one recognition head: ImageNet tags offline, top-k, softmax vs sigmoid, I/O."""

from __future__ import annotations

import json

import pytest
import skimage.data
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file, save_file

from captioner.encoders import build_encoder
from captioner.recognition import RecognitionConfig, RecognitionHead

LABELS = ["cat", "dog", "car", "tree", "boat", "sky"]


def test_from_imagenet_tags_coffee_as_espresso():
    enc = build_encoder()  # efficientnet_lite0 with its shipped ImageNet weights
    head = RecognitionHead.from_imagenet(enc)
    assert len(head.labels) == 1000 and not head.config.multi_label
    imgs = [Image.fromarray(skimage.data.coffee()), Image.fromarray(skimage.data.chelsea())]
    with torch.no_grad():
        _, pooled = enc(torch.stack([enc.transform(im) for im in imgs]))
    tags = head.predict(pooled, top_k=3)
    assert tags[0][0][0] == "espresso" and tags[0][0][1] > 0.5
    assert tags[1][0][0] in {"tabby", "tiger cat", "Egyptian cat"}
    # the copy is independent of the encoder's classifier
    with torch.no_grad():
        head.net[1].weight.zero_()
    assert enc.classifier.weight.abs().sum() > 0


def test_from_imagenet_mlp_classifier(tmp_path):
    ref = torchvision.models.mobilenet_v3_small(weights=None).eval()
    path = tmp_path / "mnv3.pth"
    torch.save(ref.state_dict(), path)
    enc = build_encoder("mobilenet_v3_small", weights=str(path))
    head = RecognitionHead.from_imagenet(enc)
    assert head.config.hidden_dim == 1024 and head.config.in_dim == 576
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(head(enc(x)[1]), ref(x), atol=1e-5)


def test_from_imagenet_needs_pretrained():
    with pytest.raises(ValueError, match="no pretrained ImageNet classifier"):
        RecognitionHead.from_imagenet(build_encoder("resnet18", weights=None))


def test_single_label_predict_sorted_softmax():
    head = RecognitionHead(RecognitionConfig(in_dim=8, labels=LABELS)).eval()
    pooled = torch.randn(4, 8)
    preds = head.predict(pooled, top_k=3)
    assert len(preds) == 4 and all(len(p) == 3 for p in preds)
    for p in preds:
        probs = [v for _, v in p]
        assert probs == sorted(probs, reverse=True) and all(0 <= v <= 1 for v in probs)
    full = head.predict(pooled, top_k=None)
    assert all(abs(sum(v for _, v in p) - 1) < 1e-5 for p in full)
    want = torch.softmax(head(pooled), -1)
    for i, p in enumerate(full):
        assert all(abs(want[i, LABELS.index(lab)] - v) < 1e-6 for lab, v in p)
    assert head.predict(pooled, top_k=99)[0] == full[0]  # top_k above L gives all


def test_multi_label_uses_sigmoid_and_threshold():
    head = RecognitionHead(RecognitionConfig(in_dim=8, labels=LABELS, multi_label=True)).eval()
    pooled = torch.randn(3, 8) * 3
    probs = torch.sigmoid(head(pooled))
    full = head.predict(pooled, top_k=None)
    for i, p in enumerate(full):
        assert [lab for lab, _ in p] == [LABELS[j] for j in probs[i].argsort(descending=True)]
        assert all(abs(probs[i, LABELS.index(lab)] - v) < 1e-6 for lab, v in p)
    cut = head.predict(pooled, top_k=None, threshold=0.5)
    for i, p in enumerate(cut):
        assert {lab for lab, _ in p} == {LABELS[j] for j in range(6) if probs[i, j] >= 0.5}
    assert any(len(p) < len(LABELS) for p in cut)


def test_save_load_as_safetensors_and_json(tmp_path):
    head = RecognitionHead(RecognitionConfig(in_dim=8, labels=LABELS, dropout=0.1, hidden_dim=4))
    (tmp_path / "config.json").write_text(json.dumps(head.to_config_dict()))
    save_file(head.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = RecognitionHead.from_config_dict(json.loads((tmp_path / "config.json").read_text()))
    loaded.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    assert loaded.config == head.config
    x = torch.randn(2, 8)
    assert torch.equal(loaded.eval()(x), head.eval()(x))
    with pytest.raises(ValueError, match="unknown RecognitionConfig keys.*colour"):
        RecognitionHead.from_config_dict({"in_dim": 8, "labels": LABELS, "colour": "red"})


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match="duplicates.*cat"):
        RecognitionConfig(in_dim=8, labels=["cat", "cat"])
    with pytest.raises(ValueError, match="non-empty"):
        RecognitionConfig(in_dim=8, labels=[])
    with pytest.raises(ValueError, match="in_dim"):
        RecognitionConfig(in_dim=0, labels=LABELS)
    head = RecognitionHead(RecognitionConfig(in_dim=8, labels=LABELS))
    with pytest.raises(ValueError, match=r"\(B, 8\).*\(2, 5\)"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match="top_k"):
        head.predict(torch.randn(2, 8), top_k=0)
