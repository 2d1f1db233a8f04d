"""Feature cache: run a (frozen) encoder over a dataset's images once and keep the outputs.

`compute_features(ds, encoder)` returns the dataset with `image` replaced by
`grid` (Array2D (N, C), **float16** to halve the disk: the rounding, ~1e-3 relative, is far
below what a decoder notices) and `pooled` (C floats, float32). The result is written with
`Dataset.map(batched=True)` to one Arrow file named by the encoder's `cache_key` (name +
weights + transform) and the dataset's fingerprint, so a second epoch or a second run reads
(memory-maps) the file and never calls the encoder. The fingerprint of a dataset built from
image paths covers the paths, not the pixels: change images in place and pass a fresh
`cache_dir` (or delete the file).

The cache is only right for an encoder whose weights do not change: with trainable blocks,
compute features on the fly instead (a warning says so).

On CPU, a frozen encoder runs in ONNX Runtime when it is installed (`backend="auto"`, as the
labeling pipeline does): EfficientNet-Lite0 encodes several times faster than in PyTorch eager
mode, and the export is checked against PyTorch (max abs difference <= 1e-3, far below the
float16 rounding of the cache) before it is used.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from pathlib import Path

from captioner.data.common import DataError, cache_root, quiet_datasets
from captioner.progress import StepProgress

logger = logging.getLogger("captioner.data")
# progress lines apart, so training can show them without every captioner.data note
progress_log = logging.getLogger("captioner.data.features")


def feature_cache_dir() -> Path:
    return cache_root() / "features"


def cache_path(ds, encoder, cache_dir: str | Path | None = None) -> Path:
    """Where the features of `ds` under `encoder` live."""
    key = hashlib.sha1(str(encoder.cache_key).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(encoder, "name", "encoder")))[:40]
    root = Path(cache_dir).expanduser() if cache_dir else feature_cache_dir()
    return root / f"{name}-{key}-{ds._fingerprint}.arrow"


def _decode(value: dict, draft_size: int):
    """An undecoded `datasets.Image` value ({"bytes", "path"}) -> RGB PIL image."""
    from PIL import Image

    from captioner.imageio import load_image, open_image

    if value.get("bytes") is not None:
        return load_image(Image.open(io.BytesIO(value["bytes"])))
    return open_image(value["path"], draft_size=draft_size)


def _encode_batch(encoder, device, batch: dict, indices: list[int], progress=None) -> dict:
    import numpy as np
    import torch

    tensors = []
    for pos, (value, idx) in enumerate(zip(batch["image"], indices, strict=True)):
        try:
            tensors.append(encoder.transform(_decode(value, int(encoder.image_size))))
        except Exception as e:  # missing, corrupt or truncated image
            ident = batch["image_id"][pos] if "image_id" in batch else idx
            raise DataError(
                f"row {idx} (image_id {ident}): cannot read image {value.get('path') or '(bytes)'}"
                f" ({type(e).__name__}: {e})"
            ) from None
    with torch.inference_mode():
        grid, pooled = encoder(torch.stack(tensors).to(device))  # (B, N, C), (B, C)
    if progress is not None:
        progress.update(len(tensors))
    return {
        "grid": grid.to(torch.float16).cpu().numpy(),
        "pooled": pooled.float().cpu().numpy().astype(np.float32),
    }


def compute_features(
    ds,
    encoder,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    backend: str = "auto",
):
    """`ds` (a Dataset, or a DatasetDict split by split) with `image` replaced by the
    encoder's `grid` (N, C) float16 and `pooled` (C,) float32, cached on disk.
    `backend`: auto (ONNX Runtime for a frozen encoder on CPU when installed) | torch | onnx."""
    import torch
    from datasets import Array2D, Dataset, DatasetDict, Image, List, Value

    from captioner.encoders import Encoder
    from captioner.onnx_backend import encoder_for_backend

    if isinstance(ds, DatasetDict):
        out = DatasetDict(
            {
                k: compute_features(
                    v,
                    encoder,
                    batch_size=batch_size,
                    device=device,
                    cache_dir=cache_dir,
                    backend=backend,
                )
                for k, v in ds.items()
            }
        )
        if hasattr(ds, "report"):
            out.report = ds.report
        return out
    path = cache_path(ds, encoder, cache_dir)
    if path.is_file():
        logger.info("reading cached features %s", path)
        return Dataset.from_file(str(path))
    if "image" not in ds.column_names:
        raise ValueError(
            f"compute_features needs an 'image' column; the dataset has {ds.column_names}"
        )
    trainable = any(p.requires_grad for p in getattr(encoder, "parameters", lambda: [])())
    if trainable:
        logger.warning(
            "the encoder has trainable parameters: cached features keep today's weights "
            "and are keyed by cache_key only"
        )
    was_training = getattr(encoder, "training", False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    encoder.eval()
    encoder.to(device)
    try:
        side = int(encoder.image_size)
        with torch.inference_mode():
            grid, _ = encoder(torch.zeros(1, 3, side, side, device=device))  # (1, N, C)
        n, c = int(grid.shape[1]), int(grid.shape[2])
        features = ds.features.copy()
        del features["image"]
        features["grid"] = Array2D(shape=(n, c), dtype="float16")
        features["pooled"] = List(Value("float32"), length=c)
        if len(ds) == 0:  # nothing to encode or cache (map writes no file for 0 rows)
            empty = {name: [] for name in features}
            return Dataset.from_dict(empty, features=features)
        path.parent.mkdir(parents=True, exist_ok=True)
        run = encoder
        if not trainable and isinstance(encoder, Encoder):  # a frozen encoder of ours
            run, _ = encoder_for_backend(encoder, backend, device)
        name = getattr(encoder, "name", "encoder")
        # our own bar (a line every 20 batches without a terminal), not datasets' map bar
        progress = StepProgress(desc=f"encoding images ({name})", total=len(ds), unit="img",
                                every=20 * batch_size, log=progress_log)  # fmt: skip
        with quiet_datasets():
            ds.cast_column("image", Image(decode=False)).map(
                lambda batch, idx: _encode_batch(run, device, batch, idx, progress),
                batched=True,
                batch_size=batch_size,
                with_indices=True,
                remove_columns=["image"],
                features=features,
                cache_file_name=str(tmp),
                load_from_cache_file=False,
                # named by the cache file: spares datasets hashing the encoder's weights
                new_fingerprint=hashlib.sha1(path.name.encode()).hexdigest(),
            )
        progress.close()
        tmp.replace(path)
    finally:
        encoder.train(was_training)
        tmp.unlink(missing_ok=True)  # left only when encoding failed
    logger.info("cached features of %d images in %s", len(ds), path)
    return Dataset.from_file(str(path))
