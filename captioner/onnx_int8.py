"""An int8 copy of the ONNX encoder (ONNX Runtime static quantization), calibrated on images.

`load_int8_encoder(encoder, calibration)` takes the cached float export (`onnx_backend`),
runs ONNX Runtime's static quantization (QDQ, int8 weights per channel, uint8 activations
with MinMax ranges observed on the calibration images) and caches the result beside the float
model, keyed by the float model and by the calibration sample (file names and sizes), so two
machines with the same images build the same file. A quantized model whose pooled features
drift too far from the float ones on the calibration images (cosine < 0.9) is refused.
`captioner label --encoder int8` calibrates on up to 300 images spread evenly over the folders
it labels (or `--calibration DIR`). Whether int8 is worth it is measured by
`bench/int8_encoder.py` (speed and agreement with the float encoder).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from captioner.onnx_backend import OnnxBackendError, OnnxEncoder, load_onnx_encoder

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 300
MIN_COSINE = 0.9  # mean cosine similarity of pooled features, int8 vs float


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """Up to `n` items spread evenly over `items` (all of them when there are fewer)."""
    if len(items) <= n:
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def calibration_key(paths: Sequence[str | os.PathLike]) -> str:
    h = hashlib.sha256()
    for p in paths:
        try:
            size = os.path.getsize(p)
        except OSError:
            size = -1
        h.update(f"{os.path.basename(os.fspath(p))}|{size}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:12]


def _batches(encoder: Any, paths: Sequence[str], batch: int = 8) -> Iterator[np.ndarray]:
    """Normalised batches of the readable images among `paths`, as inference sees them."""
    t = encoder.transform
    for i in range(0, len(paths), batch):
        pixels = []
        for p in paths[i : i + batch]:
            try:
                pixels.append(t.pixels(p))
            except Exception:  # noqa: BLE001 - calibration goes on with the readable images
                continue
        if pixels:
            yield np.ascontiguousarray(t.normalise(torch.from_numpy(np.stack(pixels))).numpy())


def _quantize(float_path: Path, out: Path, batches: list[np.ndarray]) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.left, None)
            return None if x is None else {"images": x}

    ort.set_default_logger_severity(3)  # not one warning per folded constant
    quantize_static(
        str(float_path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def _agreement(a: OnnxEncoder, b: OnnxEncoder, batches: list[np.ndarray]) -> float:
    sims = []
    for x in batches[:4]:
        pa, pb = a(torch.from_numpy(x))[1], b(torch.from_numpy(x))[1]
        sims.append(torch.nn.functional.cosine_similarity(pa, pb, dim=-1))
    return float(torch.cat(sims).mean())


def load_int8_encoder(
    encoder: nn.Module,
    calibration: Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> OnnxEncoder:
    """The int8 ONNX Runtime copy of `encoder`, calibrated on the image files `calibration`
    (built once, cached); see the module docstring."""
    paths = [os.fspath(p) for p in spread(list(calibration), CALIBRATION_IMAGES)]
    if not paths:
        raise OnnxBackendError("the int8 encoder needs calibration images; none were found")
    float_enc = load_onnx_encoder(encoder, cache_dir=cache_dir, threads=threads)
    path = float_enc.path.with_name(f"{float_enc.path.stem}-int8-{calibration_key(paths)}.onnx")
    if path.is_file():
        try:
            return OnnxEncoder(encoder, path=path, threads=threads)
        except Exception as e:  # noqa: BLE001 - a damaged cache file: build it again
            log.warning("%s: unreadable cached int8 model (%s); quantizing again", path, e)
    log.info("quantizing encoder %s to int8 on %d image(s) (once): %s", encoder.name,
             len(paths), path)  # fmt: skip
    batches = list(_batches(float_enc, paths))
    if not batches:
        raise OnnxBackendError("the int8 encoder's calibration images could not be read")
    fresh = path.with_name(f".{path.stem}.{os.getpid()}.onnx")
    try:
        _quantize(float_enc.path, fresh, batches)
        candidate = OnnxEncoder(encoder, path=fresh, threads=threads)
        cosine = _agreement(float_enc, candidate, batches)
        if not cosine >= MIN_COSINE:
            raise OnnxBackendError(
                f"the int8 encoder disagrees with the float one (pooled cosine {cosine:.3f} < "
                f"{MIN_COSINE}); use the float encoder"
            )
        os.replace(fresh, path)
        candidate.path = path
    except OnnxBackendError:
        raise
    except Exception as e:
        raise OnnxBackendError(f"could not quantize encoder {encoder.name}: {e}") from e
    finally:
        fresh.unlink(missing_ok=True)
    return candidate
