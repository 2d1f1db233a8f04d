"""Helpers for the labeling tests (no tests here): a tiny CNN encoder at 32 px, a tiny
captioner with all heads, a bad-file zoo and folders of small images."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tests_support import tiny_decoder, tiny_sentiment
from torch import nn

from captioner import Captioner
from captioner.encoders import ImageTransform
from captioner.recognition import RecognitionConfig, RecognitionHead
from captioner.text import Vocabulary

CAPTIONS = [
    "a red circle on a green field",
    "two blue squares near a yellow star",
    "a small dog & a big cat",
    "the sky is dark and awful",
    "a lovely sunny day",
]
TAGS = ["cat", "dog", "sky", "tree", "car", "fish & chips <hot>"]


class TinyEncoder(nn.Module):
    """The `Encoder` interface at 32 px: two strided convolutions, grid 8x8 (N=64)."""

    def __init__(self, size: int = 32, channels: int = 24):
        super().__init__()
        self.name, self.weights = "tiny-cnn", None
        self.out_channels, self.image_size = channels, size
        self.transform = ImageTransform(size, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        self.mean, self.std = self.transform.mean, self.transform.std
        self.classifier, self.categories = None, None
        self.net = nn.Sequential(
            nn.Conv2d(3, 12, 3, stride=2, padding=1),
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.Conv2d(12, channels, 3, stride=2, padding=1),
        )
        with torch.no_grad():
            self.net[1].running_mean.uniform_(-0.1, 0.1)
            self.net[1].running_var.uniform_(0.5, 1.5)

    @property
    def cache_key(self) -> str:
        return f"tiny-cnn|{self.image_size}|test"

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid = self.net(images).flatten(2).transpose(1, 2)  # (B, N, C)
        return grid, grid.mean(dim=1)


def tiny_model(
    *,
    caption: bool = True,
    tags: bool = True,
    sentiment: bool = True,
    attention: str = "soft",
    seed: int = 0,
) -> Captioner:
    """A captioner with random weights whose captions differ between images."""
    torch.manual_seed(seed)
    enc = TinyEncoder()
    kw: dict = {}
    if caption:
        vocab = Vocabulary.build(CAPTIONS)
        dec = tiny_decoder(vocab, enc.out_channels, attention)
        with torch.no_grad():
            dec.out.weight.mul_(6.0)
            dec.init_h.weight.mul_(4.0)
        kw.update(decoder=dec, vocab=vocab)
        if sentiment:
            kw.update(tiny_sentiment(CAPTIONS))
    if tags:
        kw["recognizer"] = RecognitionHead(RecognitionConfig(in_dim=enc.out_channels, labels=TAGS))
    return Captioner(encoder=enc, device="cpu", name="tiny-test", max_length=8, **kw)


def color_image(i: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(i)
    base = rng.integers(0, 255, 3)
    a = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def make_photos(folder: Path, n: int, *, sub_every: int = 3) -> list[str]:
    """n small JPEG/PNG images, some in a sub-folder; returns their relative paths."""
    rels = []
    for i in range(n):
        rel = f"sub/p{i:03d}.png" if sub_every and i % sub_every == 2 else f"p{i:03d}.jpg"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        color_image(i).save(path)
        rels.append(rel)
    return sorted(rels)


WEIRD_NAMES = [
    "with space.jpg",
    'quote"double.jpg',
    "it's single.jpg",
    "comma,name.jpg",
    "new\nline.jpg",
    "café 東京.jpg",
    "semi;colon.png",
]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + crc


def make_zoo(folder: Path) -> dict[str, str | None]:
    """Every awkward file kind -> the error substring expected (None: labelled fine)."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    color_image(0, (64, 48)).save(buf, "JPEG")
    jpg = buf.getvalue()
    (folder / "ok.jpg").write_bytes(jpg)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "random.jpg").write_bytes(np.random.default_rng(1).bytes(3000))
    (folder / "notes.txt").write_text("not an image")  # ignored: not an image extension
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    (folder / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )
    (folder / "fake.tiff").write_bytes(b"II*\x00" + b"\xff" * 40)  # header only: unsupported
    os.symlink("missing.jpg", folder / "broken.jpg")
    os.symlink("loop.jpg", folder / "loop.jpg")
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "up")  # folder loop
    red, blue = (255, 0, 0), (0, 0, 255)
    f1, f2 = Image.new("RGB", (32, 32), red), Image.new("RGB", (32, 32), blue)
    f1.save(folder / "anim.gif", save_all=True, append_images=[f2], duration=50, loop=0)
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    deep = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    pal = Image.new("P", (32, 32), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(0, (0, 0, 16, 32))
    pal.save(folder / "palette.png", transparency=0)
    rot = Image.new("RGB", (40, 20), red)
    rot.paste(blue, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rot.save(folder / "rotated.jpg", exif=exif.tobytes())
    for name in WEIRD_NAMES:
        color_image(len(name)).save(folder / name)
    expected: dict[str, str | None] = {
        "ok.jpg": None,
        "anim.gif": None,
        "cmyk.jpg": None,
        "deep16.png": None,
        "palette.png": None,
        "rotated.jpg": None,
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated",
        "random.jpg": "not a recognised image format",
        "bomb.png": "decompression bomb",
        "fake.tiff": "fake.tiff",
        "broken.jpg": "broken symbolic link",
        "loop.jpg": "loop.jpg",
    }
    expected.update(dict.fromkeys(WEIRD_NAMES))
    return expected


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every regular file (not following links) under `folder`."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(folder))] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out
