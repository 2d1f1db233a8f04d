"""Batched inference for labeling: normalised pixels in, caption + tags + sentiment out.

`LabelEngine` wraps a `Captioner` and picks the fast paths: the ONNX Runtime encoder on CPU
(`backend="auto"|"onnx"`), channels-last PyTorch otherwise, and the one generation path
(`Captioner.describe_features`: batched search over all images x beams, optionally with an
int8 decoder). It gives the same records as `Captioner.describe(...)[i].to_record()` with the
same generation settings (tested).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captioner.cpus import plan_cores
from captioner.decoders import quantize_decoder
from captioner.decoding import GenerationConfig
from captioner.encoders import ImageTransform
from captioner.onnx_backend import encoder_for_backend, resolve_backend

ENCODERS = ("float", "int8")

log = logging.getLogger(__name__)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` PyTorch intra-op threads (None: unchanged)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class CustomTransform:
    """An encoder transform other than `ImageTransform` (any callable PIL -> float
    (3, S, S)): it runs whole in the decoding workers."""

    size: int
    transform: Any


# How a worker turns an image into model input (picklable): with an `ImageTransform`,
# workers send its uint8 `pixels` (4x less to copy between processes) and the engine
# normalises the batch with its `normalise`, as `Captioner.preprocess` does.
PixelSpec = ImageTransform | CustomTransform


def pixel_spec(encoder: Any) -> PixelSpec:
    t = encoder.transform
    return t if isinstance(t, ImageTransform) else CustomTransform(int(encoder.image_size), t)


@dataclass
class EngineOptions:
    backend: str = "auto"  # auto | torch | onnx
    # How captions are searched, whole (`cli.options.generation_config`); None: the model's own
    generation: GenerationConfig | None = None
    top_k: int = 5
    min_tag_score: float = 0.0  # leave out less probable tags (the label CLI: 0.05)
    int8_decoder: bool = False  # CPU only: dynamic int8 decoder (faster, captions may differ)
    # "float" or "int8": ONNX Runtime static int8 encoder (`captioner.onnx_int8`), calibrated
    # on `calibration` (image files; label's CLI samples the folders it labels)
    encoder: str = "float"
    calibration: Sequence[str] = ()
    onnx_cache: str | None = None  # None: ~/.cache/captioner/onnx
    threads: int | None = None  # ONNX Runtime intra-op threads (None: `plan_cores`)
    # PyTorch threads for beam search and heads; None: `plan_cores` (1 below 8 cores). Their
    # many small ops lose to thread synchronisation: on a 2-core machine, 1 thread decoded
    # 60 images/s and 2 threads 5.5 while the image decoders (or anything else) used a core.
    decoder_threads: int | None = None
    # `label_folders` on CPU with the ONNX encoder: batches labelled side by side, each lane
    # encoding (one ONNX Runtime thread unless `threads` says otherwise) and searching
    # (decoder_threads) whole batches in turn. None: one lane per usable core; 1: one batch
    # at a time, the next one encoded on every core in a second thread while this one is
    # searched (what a caller of `describe` alone wants: `captioner caption|describe`)
    lanes: int | None = None
    lang: str = "en"  # also translate captions into this language (records keep both)
    translator: str | None = None  # translator directory for `lang` (None: bundled)


class LabelEngine:
    """`describe(pixels)` for a batch of preprocessed images; see module docstring."""

    def __init__(self, captioner: Any, options: EngineOptions | None = None):
        self.options = o = options or EngineOptions()
        if o.top_k < 0:
            raise ValueError(f"top-k must be >= 0, got {o.top_k}")
        self.cap = captioner
        self.device = torch.device(captioner.device)
        self.name = captioner.name
        self.spec = pixel_spec(captioner.encoder)
        self.encoder_kind = "float"
        self.generation = captioner.generation_config(o.generation)
        self.max_length = self.generation.max_length
        plan = plan_cores(device=self.device.type)
        if o.lanes is not None and o.lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {o.lanes}")
        lanes = 1
        if self.device.type == "cpu" and resolve_backend(o.backend, self.device) == "onnx":
            lanes = o.lanes if o.lanes is not None else plan.cores
        if lanes > 1 and o.threads is None:
            o = dataclasses.replace(o, threads=1)  # each lane's encoder on one thread
        self.encoder, self.backend = self._encoder(captioner.encoder, o)
        self.lanes = lanes if self.backend == "onnx" else 1
        self.decoder_threads = o.decoder_threads or (
            plan.decoder_threads if self.device.type == "cpu" else None
        )
        self.decoder = captioner.decoder
        if o.lang != "en":  # a missing translator fails here, before any image is read
            captioner.use_translator(o.lang, o.translator)
        if self.decoder is not None and o.int8_decoder:
            if self.device.type != "cpu":
                raise ValueError("the int8 decoder runs on CPU only")
            self.decoder = quantize_decoder(self.decoder)
        log.info(
            "labeling with model %s: encoder %s (%s), decoder %s, device %s",
            self.name,
            self.backend,
            self.encoder_kind,
            "none" if self.decoder is None else ("int8" if o.int8_decoder else "float"),
            self.device,
        )

    def _encoder(self, encoder: Any, o: EngineOptions) -> tuple[Any, str]:
        if o.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {o.encoder!r}")
        if o.encoder == "float":
            return encoder_for_backend(
                encoder, o.backend, self.device, cache_dir=o.onnx_cache, threads=o.threads
            )
        if resolve_backend(o.backend, self.device) != "onnx":
            raise ValueError(
                "the int8 encoder runs in ONNX Runtime on a CPU: use --backend auto or onnx "
                "with --device cpu (and pip install 'captioner[onnx]')"
            )
        from captioner.onnx_int8 import (
            CALIBRATION_IMAGES,
            calibration_key,
            load_int8_encoder,
            spread,
        )

        self.encoder_kind = (
            f"int8-{calibration_key(spread(list(o.calibration), CALIBRATION_IMAGES))}"
        )
        torch_encoder = getattr(encoder, "torch_encoder", encoder)
        int8 = load_int8_encoder(
            torch_encoder, o.calibration, cache_dir=o.onnx_cache, threads=o.threads
        )
        return int8, "onnx"

    def settings(self) -> dict[str, Any]:
        """What decides this engine's rows (the runtime and batch size only change them
        within rounding, so they are left out)."""
        o = self.options
        return {
            "model": self.name,
            "generation": dataclasses.asdict(self.generation),
            "top_k": o.top_k,
            "min_tag_score": o.min_tag_score,
            "lang": o.lang,
            "int8_decoder": o.int8_decoder,
            "encoder": self.encoder_kind,
        }

    @property
    def available_heads(self) -> dict[str, bool]:
        from captioner.api import Heads

        return dataclasses.asdict(Heads.select(self.cap))

    def to_input(self, pixels: Tensor) -> Tensor:
        if self.backend == "onnx":
            x = self.spec.normalise(pixels) if self.uint8 else pixels.float()
            return x.contiguous()
        # uint8 crosses to the device (4x fewer bytes than float; pinned: asynchronous)
        x = pixels.to(self.device, non_blocking=True)
        return self.spec.normalise(x) if self.uint8 else x.float()  # as Captioner.preprocess

    @property
    def uint8(self) -> bool:
        """Whether the workers send uint8 pixels (an `ImageTransform`'s)."""
        return isinstance(self.spec, ImageTransform)

    @property
    def overlap(self) -> bool:  # (with lanes > 1, `pipeline._inferred` runs lanes instead)
        """Whether `encode` may run in a second thread while `heads` runs: the ONNX Runtime
        encoder has its own thread pool, so the two never contend for PyTorch's; on a GPU
        the next batch's decoding, copy and encoder are queued while the search runs."""
        return self.backend == "onnx" or self.device.type == "cuda"

    @property
    def decodes_jpeg(self) -> bool:
        """Whether JPEGs are decoded on the device (`device_decode`): CUDA with the standard
        resize-and-normalise preprocessing."""
        return self.device.type == "cuda" and self.uint8

    @torch.inference_mode()
    def encode(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """Worker output (uint8 (B, S, S, 3) or float (B, 3, S, S)) -> grid (B, N, C),
        pooled (B, C) on the model's device."""
        grid, pooled = self.encoder(self.to_input(pixels))
        return grid.to(self.device), pooled.to(self.device)

    def describe(self, pixels: Tensor) -> list[dict[str, Any]]:
        """One dict per image with `caption`, `tags`, `sentiment` (None for heads the model
        lacks)."""
        return self.heads(*self.encode(pixels))

    @torch.inference_mode()
    def heads(self, grid: Tensor, pooled: Tensor) -> list[dict[str, Any]]:
        """Caption (beam search), tags and caption sentiment from encoder features."""
        with torch_threads(self.decoder_threads):
            return self._heads(grid, pooled)

    def _heads(self, grid: Tensor, pooled: Tensor) -> list[dict[str, Any]]:
        found = self.cap.describe_features(
            grid.contiguous(), pooled, generation=self.generation, tags=self.options.top_k,
            min_tag_score=self.options.min_tag_score, decoder=self.decoder,
            lang=self.options.lang,
        )  # fmt: skip
        return [d.to_record() for d in found]
