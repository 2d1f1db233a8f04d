"""Streaming image decoding in DataLoader worker processes.

`FolderBatches` walks the folders lazily (every worker walks the same sorted tree and takes
every n-th batch, so nothing but the current batch is materialised) and yields batches of
decoded, resized images plus one error message per file that could not be read. The
DataLoader keeps at most `prefetch_factor` batches per worker in flight: memory stays flat
whatever the folder size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from captioner.encoders import ImageTransform
from captioner.imageio import MAX_PIXELS, ImageLoadError, open_image, plain_jpeg_bytes
from captioner.labeling.engine import PixelSpec
from captioner.labeling.scan import OwnOutputs, ScanOptions, iter_files
from captioner.labeling.shards import Shard

Key = tuple[str, str]


def iter_todo(
    folders: Sequence[str],
    scan: ScanOptions,
    skip: frozenset[Key] | set[Key],
    select: Shard | None = None,
    own: OwnOutputs | None = None,
) -> Iterator[tuple[int, str]]:
    """(folder index, relative path) of every candidate file not in `skip` (and, with
    `select`, in that shard; never the run's own outputs `own`)."""
    for fi, folder in enumerate(folders):
        for rel in iter_files(folder, scan, own):
            if (folder, rel) not in skip and (select is None or select.owns(fi, rel)):
                yield fi, rel


@dataclass
class Batch:
    items: list[tuple[int, str]]  # (folder index, relative path) per file, in walk order
    pixels: torch.Tensor | None  # (n_ok, S, S, 3) uint8 or (n_ok, 3, S, S) float
    ok: list[int] = field(default_factory=list)  # positions in `items` of the rows of pixels
    errors: dict[int, str] = field(default_factory=dict)  # position -> error message
    # position -> the file's bytes, for JPEGs decoded on the GPU (`device_decode`)
    jpegs: dict[int, torch.Tensor] = field(default_factory=dict)

    def pin_memory(self) -> Batch:  # called by DataLoader(pin_memory=True) for CUDA
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        self.jpegs = {p: t.pin_memory() for p, t in self.jpegs.items()}
        return self


def load_one(path: str, spec: PixelSpec, max_pixels: int) -> Any:
    """Decode one file: uint8 (S, S, 3) array (`ImageTransform.pixels`) or float (3, S, S)
    tensor. Raises on failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. PIL's "Corrupt EXIF data"
        if not isinstance(spec, ImageTransform):
            return spec.transform(open_image(path, draft_size=spec.size, max_pixels=max_pixels))
        arr = spec.pixels(path, max_pixels=max_pixels)
    if arr.shape != (spec.size, spec.size, 3):
        raise ImageLoadError(f"{path}: decoded to an unexpected shape {arr.shape}")
    return arr


def describe_error(path: str, e: BaseException) -> str:
    if isinstance(e, ImageLoadError):
        return str(e)
    if isinstance(e, MemoryError):
        return f"{path}: out of memory while decoding (image too large?)"
    return f"{path}: could not decode ({type(e).__name__}: {e})"


def load_batch(
    folders: Sequence[str],
    items: list[tuple[int, str]],
    spec: PixelSpec,
    max_pixels: int = MAX_PIXELS,
    raw_jpegs: bool = False,
) -> Batch:
    """Decode `items`; with `raw_jpegs`, plain JPEGs are left as bytes (for the GPU)."""
    arrays, ok, errors, jpegs = [], [], {}, {}
    for i, (fi, rel) in enumerate(items):
        path = os.path.join(folders[fi], rel)
        data = plain_jpeg_bytes(path, max_pixels) if raw_jpegs else None
        if data is not None:
            jpegs[i] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            continue
        try:
            arrays.append(load_one(path, spec, max_pixels))
            ok.append(i)
        except Exception as e:  # every bad file becomes an error row; the run goes on
            errors[i] = describe_error(path, e)
    pixels = None
    if arrays:
        pixels = (
            torch.from_numpy(np.stack(arrays))
            if isinstance(spec, ImageTransform)
            else torch.stack(arrays)
        )
    return Batch(items=items, pixels=pixels, ok=ok, errors=errors, jpegs=jpegs)


class FolderBatches(IterableDataset):
    def __init__(
        self,
        folders: Sequence[str],
        *,
        scan: ScanOptions,
        skip: set[Key],
        spec: PixelSpec,
        batch_size: int,
        max_pixels: int = MAX_PIXELS,
        select: Shard | None = None,
        raw_jpegs: bool = False,
        own: OwnOutputs | None = None,
    ):
        self.folders, self.scan, self.skip, self.select = list(folders), scan, skip, select
        self.own = own
        self.raw_jpegs = raw_jpegs and isinstance(spec, ImageTransform)
        self.spec, self.batch_size, self.max_pixels = spec, batch_size, max_pixels

    def chunks(self) -> Iterator[list[tuple[int, str]]]:
        todo = iter_todo(self.folders, self.scan, self.skip, self.select, self.own)
        while chunk := list(itertools.islice(todo, self.batch_size)):
            yield chunk

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for i, items in enumerate(self.chunks()):
            if i % workers == worker:
                yield load_batch(
                    self.folders, items, self.spec, self.max_pixels, raw_jpegs=self.raw_jpegs
                )


def limit_heap_growth() -> None:
    """Serve allocations >= 1 MiB from mmap, returned to the OS when freed (glibc only).

    Batches received from worker processes and the float copies made of them are several
    MB each. glibc raises its mmap threshold after such blocks are freed and then serves
    them from the heap, where they fragment: the main process grew by ~2 GB over 10,000
    images. A fixed threshold keeps its memory flat (measured: 920 MB after 3,000 images
    either way instead of 920 -> 2,500 MB). Process-wide and harmless elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl, ...)
        pass


# Freed image blocks Pillow keeps for the next image (`PIL.Image.core.set_blocks_max`; 0 by
# default). Above the 1 MiB mmap threshold every decoded photo's memory was otherwise mapped
# and faulted in anew: a decoding worker took ~830 page faults and 3.6 sys-ms per 1024x768
# JPEG, ~100 and 1.0 with blocks kept (issue 25). At most this many blocks of Pillow's block
# size (16 MB) stay allocated per process.
IMAGE_BLOCKS_KEPT = 4


def reuse_image_blocks(_worker_id: int | None = None) -> None:
    """Let Pillow reuse freed image memory in this process (a DataLoader worker init)."""
    from PIL import Image

    get, put = (getattr(Image.core, f"{x}_blocks_max", None) for x in ("get", "set"))
    if get is not None and put is not None and get() < IMAGE_BLOCKS_KEPT:
        put(IMAGE_BLOCKS_KEPT)


def _collate(batch: Batch) -> Batch:
    return batch


def make_loader(dataset: FolderBatches, *, workers: int, pin_memory: bool = False) -> DataLoader:
    """Batches in walk order; `workers` processes decode ahead of the model (0: in-process)."""
    limit_heap_growth()
    reuse_image_blocks()  # this process (workers=0) ...
    kw: dict[str, Any] = {}
    if workers > 0:  # ... and each worker, however it is started
        kw = {"prefetch_factor": 2, "persistent_workers": False,
              "worker_init_fn": reuse_image_blocks}  # fmt: skip
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        **kw,
    )
