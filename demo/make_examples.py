"""Regenerate the demo's bundled example images (demo/examples/): three scenes from the scene
world and three simple drawings, all made here from code, so they carry no third-party
licence (CC0, see demo/examples/README.md).

    python -m captioner.demo.make_examples [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDE, SS = 256, 3  # output side, supersampling factor (anti-aliased edges)
SCENE_SEEDS = (5, 13, 23)


def _canvas(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    """A vertical gradient from `top` to `bottom`, SS times the output size."""
    t = np.linspace(0, 1, SIDE * SS)[:, None, None]
    rows = (1 - t) * np.array(top) + t * np.array(bottom)  # (H, 1, 3)
    return Image.fromarray(np.repeat(rows, SIDE * SS, axis=1).astype(np.uint8))


def _finish(img: Image.Image, seed: int) -> Image.Image:
    img = img.resize((SIDE, SIDE), Image.LANCZOS).filter(ImageFilter.SMOOTH)
    noise = np.random.default_rng(seed).normal(0, 3, (SIDE, SIDE, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))


def _s(*xy: float) -> list[float]:
    return [v * SS for v in xy]


def house() -> Image.Image:
    img = _canvas((120, 180, 240), (200, 230, 250))
    d = ImageDraw.Draw(img)
    d.rectangle(_s(0, 190, 256, 256), fill=(70, 150, 60))
    d.ellipse(_s(190, 20, 236, 66), fill=(255, 210, 40))
    d.rectangle(_s(60, 120, 170, 200), fill=(200, 80, 60), outline=(90, 40, 30), width=2 * SS)
    d.polygon(_s(50, 122, 115, 70, 180, 122), fill=(110, 60, 50))
    d.rectangle(_s(100, 160, 128, 200), fill=(90, 55, 35))
    d.rectangle(_s(70, 135, 92, 155), fill=(230, 240, 255), outline=(60, 60, 60), width=SS)
    return _finish(img, 1)


def ball() -> Image.Image:
    img = _canvas((170, 210, 245), (230, 240, 250))
    d = ImageDraw.Draw(img)
    d.rectangle(_s(0, 150, 256, 256), fill=(80, 165, 70))
    d.ellipse(_s(70, 215, 190, 235), fill=(50, 110, 45))  # shadow
    d.ellipse(_s(80, 110, 175, 205), fill=(220, 40, 40), outline=(130, 20, 20), width=2 * SS)
    d.ellipse(_s(100, 128, 125, 150), fill=(245, 140, 140))  # highlight
    return _finish(img, 2)


def boat() -> Image.Image:
    img = _canvas((250, 190, 130), (160, 200, 235))
    d = ImageDraw.Draw(img)
    d.rectangle(_s(0, 170, 256, 256), fill=(40, 90, 160))
    for y in range(180, 256, 14):
        d.line(_s(10, y, 246, y), fill=(90, 140, 200), width=SS)
    d.polygon(_s(70, 170, 190, 170, 170, 195, 90, 195), fill=(120, 70, 40))
    d.line(_s(128, 60, 128, 170), fill=(60, 40, 30), width=2 * SS)
    d.polygon(_s(131, 65, 131, 162, 185, 162), fill=(250, 250, 245))
    d.polygon(_s(125, 80, 125, 162, 85, 162), fill=(235, 235, 230))
    return _finish(img, 3)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).parent / "examples"
    out.mkdir(parents=True, exist_ok=True)
    images = {"drawing-house.jpg": house(), "drawing-ball.jpg": ball(), "drawing-boat.jpg": boat()}
    from captioner.demo.scene import make_scene

    for seed in SCENE_SEEDS:
        images[f"scene-{seed}.jpg"] = make_scene(seed, image_size=SIDE).image
    for name, img in images.items():
        img.save(out / name, quality=88, optimize=True)
    total = sum((out / n).stat().st_size for n in images)
    print(f"wrote {len(images)} images, {total / 1024:.0f} KB, to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
