"""The synthetic scene world: simple shapes on light backgrounds, with exact ground truth.

A scene has 1 to 4 objects in 1 to 4 groups of identical objects ("two small red circles"),
each group in its own cell of a layout (the whole image, a row or column of two or three
cells, or a 2x2 grid), so every pair of groups is clearly left/right of or above/below each
other. Groups sharing a layout row overlap vertically (and sharing a column,
horizontally), so "left of" between them is never also "above". Captions, the parser and
`scene_score` live in `captioner.scene_grammar` (the core, where the metrics score with it);
everything here is deterministic given the `rng`.

`test_novel` scenes are built only from `HELD_OUT_PAIRS` (colour, shape) combinations, which
never occur in `train` / `validation` / `test`.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing as mp
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from captioner.scene_grammar import (
    COLORS,
    SHAPES,
    SIZES,
    Instance,
    ObjectGroup,
    Relation,
    SceneGraph,
    canonical_caption,
    parse_caption,
    scene_captions,
    scene_score,
)

__all__ = [
    "BACKGROUNDS", "COLORS", "HELD_OUT_PAIRS", "SEEN_PAIRS", "SHAPES", "SIZES", "SPLITS",
    "Instance", "ObjectGroup", "Relation", "SceneGraph", "build_scene_dataset",
    "canonical_caption", "generate_scene", "parse_caption", "render_scene", "scene_captions",
    "scene_score",
]  # fmt: skip

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

RGB = {  # distinct in hue and, where hues are near, in lightness (CNN features see both)
    "red": (225, 25, 25), "orange": (250, 140, 0), "yellow": (255, 225, 20),
    "green": (40, 185, 50), "blue": (25, 60, 215), "purple": (125, 40, 175),
    "pink": (255, 145, 215), "black": (25, 25, 25),
}  # fmt: skip
assert tuple(RGB) == COLORS
# One held-out colour per shape (7 of the 56 pairs, 12.5%); every colour and shape stays seen.
HELD_OUT_PAIRS = (("purple", "circle"), ("orange", "square"), ("blue", "triangle"),
                  ("green", "star"), ("red", "hexagon"), ("yellow", "diamond"), ("pink", "cross"))  # fmt: skip
SEEN_PAIRS = tuple((c, s) for c in COLORS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS)
BACKGROUNDS = ("plain", "gradient", "stripes", "checker", "paper")
SPLITS = ("train", "validation", "test", "test_novel")
MAX_SCENES = 200_000  # per split: about an hour to draw on one core, 3 GB of PNG
MAX_IMAGE_SIZE = 1024

RADIUS = {"small": 0.07, "large": 0.13}  # circumradius as a fraction of the image side
MAX_OBJECTS = 4  # objects in a scene, all groups together
GROUP_PROBS = (0.25, 0.35, 0.25, 0.15)  # 1, 2, 3, 4 groups
COUNT_PROBS = (0.6, 0.25, 0.15)  # 1, 2, 3 objects in a one-group scene
MARGIN, GAP, BAND = 0.02, 0.015, 0.04  # cell margin, gap between objects, band jitter


def _strip(k: int, vertical: bool) -> list[tuple]:
    """k equal cells (x0, y0, x1, y1, row, column) side by side, or stacked when vertical."""
    cells = [(i / k, 0.0, (i + 1) / k, 1.0, 0, i) for i in range(k)]
    return [(y0, x0, y1, x1, c, r) for x0, y0, x1, y1, r, c in cells] if vertical else cells


_QUADS = [(0, 0, 0.5, 0.5, 0, 0), (0.5, 0, 1, 0.5, 0, 1), (0, 0.5, 0.5, 1, 1, 0), (0.5, 0.5, 1, 1, 1, 1)]  # fmt: skip


# ----------------------------------------------------------------------------- generating


def _layout(k: int, rng: np.random.Generator) -> list[tuple]:
    """Cells in reading order: the whole image, a row or column of 2 or 3, or a 2x2 grid."""
    if k == 4:
        return _QUADS
    return _strip(k, vertical=bool(rng.random() < 0.5))


def _counts(k: int, rng: np.random.Generator) -> list[int]:
    """Objects per group: at most 3 per group and MAX_OBJECTS in all."""
    if k == 1:
        return [int(rng.choice(3, p=COUNT_PROBS)) + 1]
    counts = [1] * k
    spare = MAX_OBJECTS - k
    extra = int(
        rng.choice(spare + 1, p=np.asarray((6, 3, 1)[: spare + 1]) / sum((6, 3, 1)[: spare + 1]))
    )
    for i in rng.choice(k, size=extra):
        counts[i] += 1
    return counts


def _span(lo: float, hi: float, r: float) -> tuple[float, float]:
    return lo + MARGIN + r, hi - MARGIN - r


def _place(cell: tuple, anchor: tuple[float, float], n: int, r: float, rng) -> list[Instance]:
    """n non-overlapping instances in `cell`, the first at `anchor` (clamped into the cell);
    fewer if they do not fit."""
    (lo_x, hi_x), (lo_y, hi_y) = _span(cell[0], cell[2], r), _span(cell[1], cell[3], r)
    out = [(min(max(anchor[0], lo_x), hi_x), min(max(anchor[1], lo_y), hi_y))]
    for _ in range(n - 1):
        for attempt in range(300):  # next to an earlier one (a visible group), else anywhere
            if attempt < 200:
                q, theta = out[int(rng.integers(len(out)))], rng.uniform(0, 2 * math.pi)
                d = rng.uniform(2 * r + GAP, 2.6 * r + GAP)
                p = (q[0] + d * math.cos(theta), q[1] + d * math.sin(theta))
            else:
                p = (rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y))
            inside = lo_x <= p[0] <= hi_x and lo_y <= p[1] <= hi_y
            if inside and all(math.dist(p, q) >= 2 * r + GAP for q in out):
                out.append(p)
                break
    angles = rng.uniform(-10, 10, size=len(out))
    return [Instance(round(float(x), 4), round(float(y), 4), r, round(float(a), 1))
            for (x, y), a in zip(out, angles)]  # fmt: skip


def _extent(g: ObjectGroup, axis: int) -> tuple[float, float]:
    values = [(i.x, i.y)[axis] for i in g.instances]
    rs = [i.r for i in g.instances]
    return min(v - r for v, r in zip(values, rs)), max(v + r for v, r in zip(values, rs))


def scene_relations(objects: Sequence[ObjectGroup]) -> list[Relation]:
    """Every normalised relation ("left", "above") that holds between groups' instances."""
    rels = []
    for i, a in enumerate(objects):
        for j, b in enumerate(objects):
            for axis, pred in ((0, "left"), (1, "above")):
                if i != j and _extent(a, axis)[1] < _extent(b, axis)[0]:
                    rels.append(Relation(i, pred, j))
    return rels


def _band(lo: float, hi: float, rng: np.random.Generator) -> float:
    lo, hi = _span(lo, hi, max(RADIUS.values()) * 1.08)
    return float(rng.uniform(lo, hi)) if lo < hi else (lo + hi) / 2


def generate_scene(
    rng: np.random.Generator, *, pairs: Sequence[tuple[str, str]] = SEEN_PAIRS
) -> SceneGraph:
    """A random scene whose groups use only the (colour, shape) `pairs` (default: the seen
    ones; pass `HELD_OUT_PAIRS` for `test_novel`)."""
    if not pairs:
        raise ValueError("generate_scene needs at least one (colour, shape) pair")
    k = min(int(rng.choice(4, p=GROUP_PROBS)) + 1, 2 * len(pairs))
    keys: list[tuple[str, str, str]] = []  # (size, colour, shape), distinct
    while len(keys) < k:
        colour, shape = pairs[int(rng.integers(len(pairs)))]
        key = (SIZES[int(rng.integers(2))], colour, shape)
        if key not in keys:
            keys.append(key)
    cells = _layout(k, rng)
    # One band per layout row / column keeps row-mates level and column-mates aligned.
    rows = {c[4]: _band(c[1], c[3], rng) for c in cells}
    cols = {c[5]: _band(c[0], c[2], rng) for c in cells}
    objects = []
    for (size, colour, shape), cell, count in zip(keys, cells, _counts(k, rng)):
        r = round(float(RADIUS[size] * rng.uniform(0.92, 1.08)), 4)
        if k == 1:
            anchor = (rng.uniform(*_span(0, 1, r)), rng.uniform(*_span(0, 1, r)))
        else:
            anchor = (
                cols[cell[5]] + rng.uniform(-BAND, BAND),
                rows[cell[4]] + rng.uniform(-BAND, BAND),
            )
        instances = _place(cell, anchor, count, r, rng)
        objects.append(ObjectGroup(shape, colour, size, len(instances), instances))
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return SceneGraph(objects, scene_relations(objects), background)


# ----------------------------------------------------------------------------- rendering


def _light(rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.uniform(205, 245) + rng.uniform(-8, 8, size=3), 0, 250)


def _background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A light, low-saturation (size, size, 3) float32 background of the given kind."""
    base = _light(rng).astype(np.float32)
    xx = np.arange(size, dtype=np.float32)[None, :] / size  # (1, S)
    yy = xx.reshape(size, 1)  # (S, 1)
    theta = rng.uniform(0, math.pi)
    t = xx * math.cos(theta) + yy * math.sin(theta)  # (S, S) coordinate along a direction
    if kind == "plain":
        return np.broadcast_to(base, (size, size, 3))
    if kind == "gradient":
        lo, hi = min(0, math.cos(theta)), max(0, math.cos(theta)) + math.sin(theta)
        return base + ((t - lo) / (hi - lo))[..., None] * (_light(rng) - base).astype(np.float32)
    if kind == "stripes":
        shade = (np.sin(2 * math.pi * t / rng.uniform(0.06, 0.2)) > 0) * rng.uniform(6, 14)
    elif kind == "checker":
        p = rng.uniform(0.08, 0.2)
        shade = ((np.floor(xx / p) + np.floor(yy / p)) % 2) * rng.uniform(6, 12)
    elif kind == "paper":
        coarse = Image.fromarray(rng.uniform(0, 255, (5, 5)).astype(np.uint8))
        shade = np.asarray(coarse.resize((size, size), Image.BICUBIC), np.float32) * (14 / 255)
    else:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    return base - shade.astype(np.float32)[..., None]


def _outline(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices of `shape` with circumradius about r, rotated by `angle` degrees."""
    if shape == "square":
        pts = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    elif shape == "triangle":
        pts = [(1.1 * math.cos(a), 1.1 * math.sin(a) + 0.15) for a in np.radians([-90, 30, 150])]
    elif shape == "star":
        pts = [((1.05 if k % 2 == 0 else 0.45) * math.cos(a), (1.05 if k % 2 == 0 else 0.45) * math.sin(a))
               for k, a in enumerate(np.radians(np.arange(-90, 270, 36)))]  # fmt: skip
    elif shape == "hexagon":
        pts = [(0.95 * math.cos(a), 0.95 * math.sin(a)) for a in np.radians(np.arange(0, 360, 60))]
    elif shape == "diamond":
        pts = [(0, -1.05), (0.7, 0), (0, 1.05), (-0.7, 0)]
    elif shape == "cross":
        a, b = 0.3, 0.95
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]  # fmt: skip
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def render_scene(
    scene: SceneGraph, image_size: int = 224, rng: np.random.Generator | None = None
) -> Image.Image:
    """Draw `scene` as an RGB image of side `image_size`. Each object is drawn supersampled on
    a patch of the image and box-filtered back (antialiasing); `rng` varies the background
    texture, colour shades and luminance noise."""
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    kind = scene.background or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    image = Image.fromarray(np.clip(_background(kind, image_size, rng), 0, 255).astype(np.uint8))
    ss = max(2, min(4, math.ceil(600 / image_size)))  # supersampling factor
    width = max(1, round(image_size * ss / 180))  # outline width on the supersampled patch
    for g in scene.objects:
        if g.color not in RGB:
            raise ValueError(f"unknown colour {g.color!r}; expected one of {COLORS}")
        fill = np.clip(np.asarray(RGB[g.color]) + rng.integers(-10, 11, size=3), 0, 255)
        edge = tuple(int(v) for v in fill * 0.6)
        fill = tuple(int(v) for v in fill)
        for inst in g.instances:
            cx, cy, r = inst.x * image_size, inst.y * image_size, inst.r * image_size
            box = (max(0, math.floor(cx - 1.2 * r)), max(0, math.floor(cy - 1.2 * r)),
                   min(image_size, math.ceil(cx + 1.2 * r)), min(image_size, math.ceil(cy + 1.2 * r)))  # fmt: skip
            patch = image.crop(box)
            patch = patch.resize((patch.width * ss, patch.height * ss), Image.NEAREST)
            draw = ImageDraw.Draw(patch)
            px, py, pr = (cx - box[0]) * ss, (cy - box[1]) * ss, r * ss
            if g.shape == "circle":
                oval = (px - 0.88 * pr, py - 0.88 * pr, px + 0.88 * pr, py + 0.88 * pr)
                draw.ellipse(oval, fill=fill, outline=edge, width=width)
            else:
                points = _outline(g.shape, px, py, pr, inst.angle)
                draw.polygon(points, fill=fill, outline=edge, width=width)
            image.paste(patch.resize((box[2] - box[0], box[3] - box[1]), Image.BOX), box[:2])
    pixels = np.asarray(image, np.float32)  # (S, S, 3)
    noise = rng.standard_normal((image_size, image_size, 1), dtype=np.float32)
    pixels = pixels + noise * rng.uniform(0, 4)  # luminance noise: hue stays put
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------- datasets


def make_example(seed: int, split: str, index: int, image_size: int = 224) -> dict:
    """One dataset row, a pure function of (seed, split, index, image_size)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    scene = generate_scene(rng, pairs=HELD_OUT_PAIRS if split == "test_novel" else SEEN_PAIRS)
    image = render_scene(scene, image_size, rng)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return {
        "image": {"bytes": buffer.getvalue(), "path": None},
        "captions": scene_captions(scene, rng, n=5),
        "image_id": f"scene{seed}-{split}-{index:05d}",
        "scene": scene.to_json(),
    }


def scene_features() -> datasets.Features:
    import datasets  # lazily: generating and rendering scenes need no `datasets`

    return datasets.Features(
        {
            "image": datasets.Image(),
            "captions": datasets.List(datasets.Value("string")),
            "image_id": datasets.Value("string"),
            "scene": datasets.Value("string"),
        }
    )


def _make_examples(args: tuple[int, str, int, int, int]) -> list[dict]:
    seed, split, start, stop, image_size = args
    return [make_example(seed, split, i, image_size) for i in range(start, stop)]


def build_scene_dataset(
    *,
    num_train: int = 4000,
    num_eval: int = 500,
    seed: int = 0,
    image_size: int = 224,
    num_proc: int = 1,
) -> datasets.DatasetDict:
    """Splits `train` (num_train), `validation`, `test`, `test_novel` (num_eval each), columns
    `image` (PNG), `captions` (5 references, canonical first), `image_id`, `scene` (JSON).

    Every row is a pure function of (seed, split, index, image_size), so `num_proc` worker
    processes (forked where the platform allows) give the same bytes as one process.
    """
    from captioner.data.common import DataError

    if not (0 <= num_train <= MAX_SCENES and 0 <= num_eval <= MAX_SCENES):
        raise DataError(
            f"split sizes must be from 0 to {MAX_SCENES:,}, got num_train={num_train}, "
            f"num_eval={num_eval}"
        )
    if not 16 <= image_size <= MAX_IMAGE_SIZE:
        raise DataError(f"image_size must be from 16 to {MAX_IMAGE_SIZE}, got {image_size}")
    if num_proc < 1:
        raise ValueError(f"num_proc must be >= 1, got {num_proc}")
    import datasets

    start = time.perf_counter()
    sizes = {split: num_train if split == "train" else num_eval for split in SPLITS}
    chunk = 100
    jobs = [(seed, split, i, min(i + chunk, n), image_size)
            for split, n in sizes.items() for i in range(0, n, chunk)]  # fmt: skip
    if num_proc > 1 and len(jobs) > 1:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(num_proc) as pool:
            parts = pool.map(_make_examples, jobs, chunksize=1)
    else:
        parts = [_make_examples(job) for job in jobs]
    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for job, part in zip(jobs, parts):
        rows[job[1]].extend(part)
    features, splits = scene_features(), {}
    for split, split_rows in rows.items():
        columns = {name: [row[name] for row in split_rows] for name in features}
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    log.info("built scene dataset (%d + 3 x %d images, %d px) in %.1f s",
             num_train, num_eval, image_size, time.perf_counter() - start)  # fmt: skip
    return datasets.DatasetDict(splits)
