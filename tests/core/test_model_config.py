"""The model-directory schema: typed config round trips, version checks, strict weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from tests_support import tiny_captioner

from captioner import Captioner
from captioner.api import BUNDLED_DIR
from captioner.checkpoint import CheckpointError
from captioner.decoders import DecoderConfig
from captioner.model_config import VERSION, CaptionerConfig, EncoderConfig
from captioner.recognition import RecognitionConfig, RecognitionHead


def read(directory: Path) -> tuple[dict, list[str] | None]:
    data = json.loads((directory / "config.json").read_text())
    labels_file = directory / "labels.json"
    return data, json.loads(labels_file.read_text()) if labels_file.is_file() else None


@pytest.mark.parametrize("name", sorted(p.parent.name for p in BUNDLED_DIR.glob("*/config.json")))
def test_bundled_model_configs_parse_and_round_trip(name):
    data, labels = read(BUNDLED_DIR / name)
    config = CaptionerConfig.from_dict(data, labels=labels)
    assert config.version == data["version"]
    # an image model has a caption decoder; a caption translator has a translator instead
    assert (config.decoder is not None) != (config.translator is not None)
    assert (config.translator is not None) == name.startswith("translate-")
    out = config.to_dict()
    for key, value in data.items():  # nothing lost (newer fields may add their defaults)
        assert out[key] == value or out[key].items() >= value.items(), key
    assert CaptionerConfig.from_dict(out, labels=labels) == config


def test_round_trip_of_every_sub_config():
    config = CaptionerConfig(
        encoder=EncoderConfig("resnet18", None, 2),
        decoder=DecoderConfig(vocab_size=30, feature_dim=8, cell="gru", attention="none"),
        recognition=RecognitionConfig(in_dim=8, labels=["cat", "dog"], multi_label=True),
        name="mine",
        max_length=12,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert "labels" not in data["recognition"] and data["sentiment"] is None
    assert CaptionerConfig.from_dict(data, labels=["cat", "dog"]) == config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": VERSION + 1}, r"newer captioner .*pip install --upgrade captioner"),
        ({"version": "1"}, "'version' must be a positive integer"),
        ({"format": "other"}, "not a captioner model"),
        ({"translator2": {}}, r"unknown sections \['translator2'\]"),
        ({"decoder": {"vocab_size": 5, "feature_dim": 4, "hiden_dim": 3}}, r"decoder: unknown keys \['hiden_dim'\]"),
        ({"decoder": {"vocab_size": 5, "feature_dim": 4, "cell": "xlstm"}}, "decoder: cell must be"),
        ({"encoder": "resnet18"}, "'encoder' must be an object"),
        ({"recognition": {"in_dim": 4}}, "needs labels.json"),
    ],
)  # fmt: skip
def test_bad_configs_are_named_errors(change, message):
    data = {**CaptionerConfig(name="x").to_dict(), **change}
    with pytest.raises(CheckpointError, match=message):
        CaptionerConfig.from_dict(data, source="m/config.json")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model directory with stored encoder weights (random resnet18) and three heads."""
    model = tiny_captioner()
    enc = model.encoder
    model.recognizer = RecognitionHead(
        RecognitionConfig(in_dim=enc.out_channels, labels=["a", "b"])
    )
    return model.save_pretrained(tmp_path_factory.mktemp("cfg") / "m")


def damaged(saved: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "m"
    out.mkdir()
    for f in saved.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(out / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(out / "model.safetensors"))
    return out


def test_a_saved_model_with_its_encoder_loads_strictly(saved):
    assert any(k.startswith("encoder.") for k in load_file(str(saved / "model.safetensors")))
    model = Captioner.from_pretrained(saved, device="cpu", backend="torch")
    assert model.decoder is not None and model.recognizer.config.labels == ["a", "b"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("decoder.out.bias"), r"missing.*decoder\.out\.bias"),
        (lambda t: t.update({"encoder.extra.weight": t["decoder.out.bias"].clone()}), r"unexpected: encoder\.extra\.weight"),
        (lambda t: t.update({"recognition.net.0.bias": t["decoder.out.bias"].clone()}), r"recognition\.net\.0\.bias"),
        (lambda t: t.update({"translator.w": t["decoder.out.bias"].clone()}), r"weights for \['translator'\]"),
    ],
)  # fmt: skip
def test_weights_that_do_not_fit_name_the_keys(saved, tmp_path, edit, message):
    bad = damaged(saved, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        Captioner.from_pretrained(bad, device="cpu", backend="torch")


def test_an_old_directory_with_the_encoders_imagenet_classifier_still_loads(saved, tmp_path):
    """Older saves kept the encoder's ImageNet classifier beside its body: it is ignored."""
    old = damaged(saved, tmp_path, lambda t: t.update({"encoder.classifier.weight": t["decoder.out.bias"].clone()}))  # fmt: skip
    assert Captioner.from_pretrained(old, device="cpu", backend="torch").decoder is not None


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("decoder", {"hiden_dim": 3}, r"config\.json \(decoder\): unknown keys \['hiden_dim'\]"),
        ("decoder", {"hidden_dim": "48"}, r"config\.json \(decoder\): hidden_dim must be int"),
        ("recognition", {"dropout": 2.0}, r"config\.json \(recognition\): dropout = 2\.0 is out of range"),
        ("decoder", {"cell": "xlstm"}, r"config\.json \(decoder\): cell must be"),
    ],
)  # fmt: skip
def test_a_bad_head_section_is_refused_before_loading_naming_the_file(saved, tmp_path, section,
                                                                      change, message):  # fmt: skip
    """The pre-load check builds each head's config with the schema's own sub-configs."""
    bad = damaged(saved, tmp_path, lambda t: None)
    config = json.loads((bad / "config.json").read_text())
    config[section].update(change)
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as info:
        Captioner.from_pretrained(bad, device="cpu", backend="torch")
    assert str(bad / "config.json") in str(info.value)
