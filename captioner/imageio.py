"""Robust image loading: any path, PIL image, numpy array or tensor -> an RGB PIL image.

Every failure is an `ImageLoadError` whose message names the file and the problem, so a
caller that labels thousands of files can record it and go on.
"""

from __future__ import annotations

import errno
import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from captioner.atomic import kind_of, open_for_reading
from captioner.errors import CaptionerError

# Refuse images above this many pixels instead of exhausting memory (PIL's own bomb guard
# only warns below 2x its limit). 128 MP holds any camera photo.
MAX_PIXELS = 128_000_000

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .png .gif .bmp .tif .tiff .webp .ppm .pgm .pbm .pnm .tga .ico .jfif".split()
)


class ImageLoadError(CaptionerError, ValueError):
    """An image could not be read; the message says which file and why."""


def _describe(src: Any) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P with transparency, RGBA, CMYK, I;16, I, F) to RGB.

    Transparent areas are composited over white, as a photo viewer shows them.
    """
    if img.mode == "RGB":
        return img
    if img.mode in WIDE_MODES:
        return _to_l8(img).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16/32-bit grey: no reduce()
_STRIP_PIXELS = 1 << 20  # pixels converted at once: 8 MB of float64 working memory


def _to_l8(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float grey image as 8-bit "L", converted a strip of rows
    at a time, so the working memory stays near `_STRIP_PIXELS` x 16 bytes whatever the
    image's size (a whole-image float64 copy of a 125 MP PNG peaked at 3.5 GB)."""
    lo, hi = (float(v) for v in img.getextrema())
    # 16-bit images use the full 0..65535 range; scale by the range the mode allows.
    top = 65535.0 if img.mode.startswith("I;16") or hi > 255 else 255.0
    w, h = img.size
    out = np.zeros((h, w), dtype=np.uint8)
    if hi > lo or hi > 0:
        rows = max(1, _STRIP_PIXELS // max(w, 1))
        for y in range(0, h, rows):
            strip = np.asarray(img.crop((0, y, w, min(h, y + rows))), dtype=np.float64)
            out[y : y + rows] = np.clip(strip / top * 255.0, 0, 255).astype(np.uint8)
    small = Image.fromarray(out, "L")
    small.info.update(img.info)  # EXIF orientation, ICC profile
    return small


# Memory budget of opening an image for a model (`draft_size`): one above this many pixels
# is reduced (box filter, a whole factor) until its short side is under 2 x draft_size
# before it is converted to RGB, so decoding holds the decoded image (4 bytes a pixel at
# most: 512 MB at MAX_PIXELS; a palette image also its RGB(A) form, 640 MB at most) plus
# about 16 MB; 16-bit grey is converted in strips. (A 125 MP 16-bit PNG peaked at 3.5 GB
# before.) JPEGs are not scaled by draft() while decoding: its scaled DCT gives other pixels
# than the same photo handed over decoded (PIL, numpy), and so other captions (issue 24).
REDUCE_ABOVE_PIXELS = 16_000_000


def _reduced(img: Image.Image, draft_size: int) -> Image.Image:
    """`img` reduced for a model that needs `draft_size` px (see REDUCE_ABOVE_PIXELS)."""
    w, h = img.size
    factor = min(w, h) // (2 * draft_size)
    if w * h <= REDUCE_ABOVE_PIXELS or factor < 2:
        return img
    if img.mode in WIDE_MODES:
        img = _to_l8(img)
    elif img.mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):  # P, 1, ...: no reduce()
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    small = img.reduce(factor)
    small.info.update(img.info)
    return small


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.0f}" if n >= 10_000_000 else f"{n / 1e6:.2g}"


_PIL_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pil_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's own bomb limit (89.5 MP, an error above twice that) raised to `max_pixels`
    while a header is parsed, so `max_pixels` is the one limit (checked by the caller)."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        if saved is not None and max_pixels > saved:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open_regular(path: Path) -> IO[bytes]:
    """The file opened for reading when it is a non-empty regular file (links followed);
    never blocks on a named pipe and never reads a device."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageLoadError(f"{path}: symbolic link loop") from None
        if e.errno == errno.ENOENT and path.is_symlink():
            raise ImageLoadError(f"{path}: broken symbolic link (target missing)") from None
        raise ImageLoadError(f"{path}: cannot access file ({e.strerror or e})") from None
    kind = kind_of(st.st_mode)
    if kind is not None:
        raise ImageLoadError(f"{path}: is {kind}, not an image file")
    if st.st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:  # a file swapped for a pipe since the stat cannot hang the open
        fd, st = open_for_reading(path)
    except PermissionError:
        raise ImageLoadError(f"{path}: permission denied") from None
    except OSError as e:
        raise ImageLoadError(f"{path}: cannot open file ({e.strerror or e})") from None
    if kind_of(st.st_mode) is not None:
        os.close(fd)
        raise ImageLoadError(f"{path}: is {kind_of(st.st_mode)}, not an image file")
    return os.fdopen(fd, "rb")


def open_image(
    path: str | os.PathLike, *, draft_size: int | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open an image file as RGB, applying EXIF orientation.

    `draft_size`: the model's input size; an image above REDUCE_ABOVE_PIXELS is reduced for
    it (`_reduced`), as `load_image` reduces a decoded one.
    """
    path = Path(path)
    with _open_regular(path) as f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with _pil_limit(max_pixels), Image.open(f) as img:
                    w, h = img.size
                    if w * h > max_pixels:
                        raise ImageLoadError(
                            f"{path}: image is {w}x{h} = {_megapixels(w * h)} MP, above the "
                            f"{_megapixels(max_pixels)} MP limit (possible decompression bomb)"
                        )
                    if getattr(img, "n_frames", 1) > 1:
                        img.seek(0)  # animated: first frame
                    img.load()
                    if draft_size:
                        img = _reduced(img, draft_size)
                    img = ImageOps.exif_transpose(img)
                    return to_rgb(img)
        except ImageLoadError:
            raise
        except UnidentifiedImageError:
            raise ImageLoadError(f"{path}: not a recognised image format") from None
        except PermissionError:
            raise ImageLoadError(f"{path}: permission denied") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageLoadError(
                f"{path}: refused as a possible decompression bomb ({e})"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageLoadError(f"{path}: corrupt or truncated image ({e})") from None


def load_image(
    src: Any, *, draft_size: int | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Path, PIL image, numpy array (H, W[, C], uint8 or float in 0..1) or tensor
    ((C, H, W) or (H, W, C)) -> RGB PIL image; `draft_size` as in `open_image`, for every
    kind of source alike."""
    if isinstance(src, (str, os.PathLike)):
        return open_image(src, draft_size=draft_size, max_pixels=max_pixels)
    if isinstance(src, Image.Image):
        if 0 in src.size:
            raise ImageLoadError(f"image of size {src.size[0]}x{src.size[1]} has no pixels")
        return to_rgb(ImageOps.exif_transpose(_reduced(src, draft_size) if draft_size else src))
    try:
        import torch

        if isinstance(src, torch.Tensor):
            t = src.detach().cpu()
            if t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4):
                t = t.permute(1, 2, 0)
            src = t.numpy()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(src, np.ndarray):
        a = src
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
            raise ImageLoadError(
                f"array of shape {src.shape} is not an image (H, W), (H, W, 3) or (H, W, 4)"
            )
        if a.size == 0:
            raise ImageLoadError(f"array of shape {src.shape} has no pixels")
        if a.dtype.kind not in "uifb":
            raise ImageLoadError(f"array of dtype {a.dtype} is not an image")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ImageLoadError(f"array of shape {src.shape} holds NaN or infinite values")
        if a.dtype != np.uint8:
            a = a.astype(np.float64)
            if a.size and a.max() <= 1.0:
                a = a * 255.0
            a = np.clip(a, 0, 255).astype(np.uint8)
        img = Image.fromarray(a)
        return to_rgb(_reduced(img, draft_size) if draft_size else img)
    raise ImageLoadError(f"cannot read an image from a {_describe(src)}")


MAX_JPEG_BYTES = 64 << 20  # larger files take the CPU path (and its limits)
EXIF_ORIENTATION = 0x0112


def plain_jpeg_bytes(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> bytes | None:
    """The bytes of a baseline-looking JPEG a GPU decoder can take as it is: a regular file
    starting with a JPEG marker, RGB or grayscale, within `max_pixels`, with no EXIF rotation.
    None for anything else (other formats, CMYK, rotated, unreadable, damaged headers): the
    caller decodes those with `open_image`, which gives the usual error for bad files."""
    try:
        f = _open_regular(Path(path))
    except ImageLoadError:
        return None
    with f:
        data = f.read(MAX_JPEG_BYTES + 1)
    if len(data) > MAX_JPEG_BYTES or not data.startswith(b"\xff\xd8\xff"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _pil_limit(max_pixels), Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                rotated = img.getexif().get(EXIF_ORIENTATION, 1) != 1
                if img.format != "JPEG" or img.mode not in ("RGB", "L") or rotated:
                    return None
                return data if w * h <= max_pixels else None
    except Exception:  # noqa: BLE001 - any header trouble: the CPU path reports it
        return None
