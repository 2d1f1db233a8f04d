"""The one-to-one model: pooled CNN features -> image labels (tags).

`RecognitionHead.from_imagenet(encoder)` reuses the encoder's pretrained ImageNet-1k
classifier, so tags are real ImageNet labels with no training and no network. A head trained
on other labels is a linear layer (or a small MLP) over the same pooled vector; single-label
heads use softmax, multi-label heads sigmoid. Checkpoints: `dataclasses.asdict(head.config)`
as JSON + `head.state_dict()` as safetensors.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class RecognitionConfig:
    in_dim: int  # C of the encoder's pooled vector
    labels: list[str]
    multi_label: bool = False  # sigmoid per label (tags) instead of softmax (one class)
    dropout: float = 0.0
    hidden_dim: int | None = None  # None: linear head; else Linear-Hardswish-Dropout-Linear
    # labels are the object words of captions (`captioner.tagwords.caption_objects`): the
    # captioner fills its typed object slots from this head
    caption_objects: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.in_dim, int) or self.in_dim <= 0:
            raise ValueError(
                f"RecognitionConfig.in_dim must be a positive int, got {self.in_dim!r}"
            )
        if not self.labels or not all(isinstance(s, str) for s in self.labels):
            raise ValueError("RecognitionConfig.labels must be a non-empty list of strings")
        if len(set(self.labels)) != len(self.labels):
            dup = sorted({s for s in self.labels if self.labels.count(s) > 1})
            raise ValueError(f"RecognitionConfig.labels has duplicates: {dup[:5]}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"RecognitionConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.hidden_dim is not None and self.hidden_dim <= 0:
            raise ValueError(f"RecognitionConfig.hidden_dim must be > 0, got {self.hidden_dim}")
        self.labels = list(self.labels)


class RecognitionHead(nn.Module):
    """Pooled features (B, C) -> label logits (B, L)."""

    def __init__(self, config: RecognitionConfig) -> None:
        super().__init__()
        self.config = config
        n = len(config.labels)
        if config.hidden_dim is None:
            self.net = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.in_dim, n))
        else:
            self.net = nn.Sequential(
                nn.Linear(config.in_dim, config.hidden_dim),
                nn.Hardswish(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden_dim, n),
            )

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def forward(self, pooled: Tensor) -> Tensor:  # (B, C) -> (B, L)
        if pooled.dim() != 2 or pooled.shape[1] != self.config.in_dim:
            raise ValueError(
                f"RecognitionHead expects pooled features (B, {self.config.in_dim}), "
                f"got {tuple(pooled.shape)}"
            )
        return self.net(pooled)

    def probabilities(self, pooled: Tensor) -> Tensor:  # (B, L), softmax or sigmoid
        logits = self(pooled).float()
        return torch.sigmoid(logits) if self.config.multi_label else torch.softmax(logits, -1)

    @torch.no_grad()
    def predict(
        self, pooled: Tensor, top_k: int | None = 5, threshold: float | None = None
    ) -> list[list[tuple[str, float]]]:
        """Per image, (label, probability) pairs sorted by probability, highest first: the
        `top_k` best (None: all) whose probability is >= `threshold` (None: no cut)."""
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        probs = self.probabilities(pooled)  # (B, L)
        k = probs.shape[1] if top_k is None else min(top_k, probs.shape[1])
        values, indices = probs.topk(k, dim=-1, sorted=True)  # (B, k)
        out = []
        for vals, idxs in zip(values.tolist(), indices.tolist()):
            out.append(
                [
                    (self.config.labels[i], float(v))
                    for v, i in zip(vals, idxs)
                    if threshold is None or v >= threshold
                ]
            )
        return out

    def to_config_dict(self) -> dict[str, Any]:
        """The config as a plain JSON-ready dict (`dataclasses.asdict`)."""
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config_dict(cls, data: dict[str, Any]) -> RecognitionHead:
        """Inverse of `to_config_dict` (weights still to load with `load_state_dict`)."""
        names = {f.name for f in dataclasses.fields(RecognitionConfig)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown RecognitionConfig keys {unknown}; expected {sorted(names)}")
        try:
            return cls(RecognitionConfig(**data))
        except TypeError as e:
            raise ValueError(f"bad RecognitionConfig {data!r}: {e}") from None

    @classmethod
    def from_imagenet(cls, encoder: nn.Module) -> RecognitionHead:
        """A copy of the encoder's pretrained ImageNet-1k classifier with its 1000 names."""
        classifier = getattr(encoder, "classifier", None)
        categories = getattr(encoder, "categories", None)
        name = getattr(encoder, "name", type(encoder).__name__)
        if classifier is None or not categories:
            raise ValueError(
                f"encoder {name!r} (weights={getattr(encoder, 'weights', None)!r}) has no "
                "pretrained ImageNet classifier; build it with pretrained weights "
                "(weights='default') or train a RecognitionHead on your own labels"
            )
        linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
        if len(linears) not in (1, 2):
            raise ValueError(f"encoder {name!r}: unsupported classifier {classifier}")
        hidden = linears[0].out_features if len(linears) == 2 else None
        head = cls(
            RecognitionConfig(
                in_dim=linears[0].in_features, labels=list(categories), hidden_dim=hidden
            )
        )
        own = [m for m in head.net if isinstance(m, nn.Linear)]
        for dst, src in zip(own, linears):
            dst.load_state_dict(copy.deepcopy(src.state_dict()))
        head.to(linears[0].weight.device)
        return head.eval()
