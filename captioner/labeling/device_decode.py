"""JPEG decoding on the GPU for `captioner label --device cuda`.

With a CUDA engine the decoding workers send the bytes of plain JPEGs (`plain_jpeg_bytes`:
RGB or grayscale, within the pixel limit, no EXIF rotation) instead of pixels, in pinned
memory; `decode_on_device` decodes them as one batch with nvJPEG
(`torchvision.io.decode_jpeg(..., device="cuda")`), resizes them on the GPU and puts them
with the rows the workers decoded on the CPU (other formats, rotated photos), in batch order.
When the batched call fails, each image is decoded alone; an image the GPU cannot decode
falls back to the CPU path (`load_one`), so a damaged file gets the same error row as on a
CPU. Nothing here touches CUDA unless a CUDA device is given: the decode function is a
parameter and the tests drive it on the CPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import torch
import torchvision.transforms.functional as TF
from torch import Tensor

from captioner.labeling.engine import PixelSpec
from captioner.labeling.loader import Batch, describe_error, load_one

log = logging.getLogger(__name__)

Decode = Callable[[list[Tensor], torch.device], list[Tensor]]


def nvjpeg_decode(data: list[Tensor], device: torch.device) -> list[Tensor]:
    """uint8 byte tensors (CPU) -> uint8 (3, H, W) images on `device`, one batched call."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def _resized(img: Tensor, spec: PixelSpec) -> Tensor:
    """uint8 (3, H, W) -> uint8 (S, S, 3), antialiased like the CPU path's resize."""
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"decoded to an unexpected shape {tuple(img.shape)}")
    x = TF.resize(
        img.float()[None],
        [spec.size, spec.size],
        interpolation=TF.InterpolationMode(spec.interpolation),
        antialias=True,
    )
    return x[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)


def _decode_all(data: list[Tensor], device: torch.device, decode: Decode) -> list[Tensor | None]:
    try:
        return list(decode(data, device))
    except Exception as e:  # noqa: BLE001 - one bad file fails the whole call: go one by one
        log.debug("batched JPEG decoding failed (%s); decoding one image at a time", e)
    out: list[Tensor | None] = []
    for one in data:
        try:
            out.append(decode([one], device)[0])
        except Exception:  # noqa: BLE001 - the CPU path decides, and names the problem
            out.append(None)
    return out


def decode_on_device(
    batch: Batch,
    *,
    folders: Sequence[str],
    spec: PixelSpec,
    device: torch.device,
    max_pixels: int,
    decode: Decode | None = None,
) -> Batch:
    """Decode `batch.jpegs` on `device` and merge them with the CPU rows, in place: afterwards
    `batch.pixels` (uint8 (n_ok, S, S, 3) on `device`) and `batch.ok` cover every readable
    image in batch order, and `batch.errors` every unreadable one. `decode`: the batched
    decoder (default: nvJPEG through torchvision)."""
    if not batch.jpegs:
        return batch
    rows: dict[int, Tensor] = {}
    if batch.pixels is not None:
        cpu = batch.pixels.to(device, non_blocking=True)
        rows.update(zip(batch.ok, cpu))
    positions = sorted(batch.jpegs)
    decoded = _decode_all([batch.jpegs[p] for p in positions], device, decode or nvjpeg_decode)
    for pos, img in zip(positions, decoded):
        fi, rel = batch.items[pos]
        path = os.path.join(folders[fi], rel)
        if img is not None:
            try:
                rows[pos] = _resized(img, spec)
                continue
            except (RuntimeError, ValueError) as e:  # an odd result: the CPU path decides
                log.debug("%s: GPU decoding gave %s; decoding on the CPU", path, e)
        try:
            rows[pos] = torch.tensor(load_one(path, spec, max_pixels), device=device)
        except Exception as e:  # noqa: BLE001 - every bad file becomes an error row
            batch.errors[pos] = describe_error(path, e)
    batch.ok = sorted(rows)
    batch.pixels = torch.stack([rows[p] for p in batch.ok]) if rows else None
    batch.jpegs = {}
    return batch
