"""Caption sources in their real on-disk formats -> DatasetDict(train/validation/test) with
`image` (datasets.Image), `captions` (list of str) and `image_id` (str).

- Flickr8k: `Flickr8k.token.txt` lines `NAME.jpg#K<TAB>caption`, split lists
  `Flickr_8k.{train,dev,test}Images.txt`, images in `Flicker8k_Dataset/` (the real zip's
  spelling) or any folder. Flickr30k: `results_20130124.token`, same line format; its
  splits come from Karpathy's `dataset_flickr30k.json`.
- COCO and Karpathy JSON: see `captioner.data.coco_captions`.

Image files are checked by reading their header (missing or unreadable files are bad
records); pixels are decoded only when a row is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from captioner.data.common import (
    CaptionRecord,
    DataError,
    OnError,
    Problems,
    build_caption_dict,
    clean_caption,
    image_problem,
    normalise_split,
    progress,
)
from captioner.data.textfiles import image_in_folder, load_json_text, text_lines

FLICKR_TOKEN_FILES = {"flickr8k": "Flickr8k.token.txt", "flickr30k": "results_20130124.token"}
FLICKR_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "validation": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
FLICKR_IMAGE_DIRS = (
    "Flicker8k_Dataset",
    "Flickr8k_Dataset",
    "flickr30k-images",
    "flickr30k_images",
    "Images",
    "images",
)
_TOKEN_LINE = re.compile(r"^(?P<name>[^\t#]+)#(?P<k>\d+)\t(?P<caption>.*)$")


def find_file(root: Path, name: str, *, depth: int = 2) -> Path | None:
    """`root/name`, or the first `name` up to `depth` folders below `root`."""
    for level in range(depth + 1):
        hits = sorted(root.glob("/".join(["*"] * level + [name])))
        if hits:
            return hits[0]
    return None


def check_images(paths: Sequence[Path], *, show: bool = False) -> list[tuple[str, str] | None]:
    """`image_problem` for many files, with a few threads (header reads are I/O bound)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(
            progress(
                pool.map(image_problem, paths),
                enabled=show,
                desc="checking images",
                total=len(paths),
            )
        )


def finish_records(
    items: list[tuple[str, Path, list[str], str, str, str]],
    problems: Problems,
    *,
    verify_images: bool,
    show: bool,
) -> dict[str, list[CaptionRecord]]:
    """(split, image path, captions, image_id, file, where) -> records by split, checking images."""
    checks = (
        check_images([i[1] for i in items], show=show) if verify_images else [None] * len(items)
    )
    records: dict[str, list[CaptionRecord]] = {}
    for (split, path, captions, image_id, file, where), bad in zip(items, checks, strict=True):
        if bad is not None:
            problems.bad(bad[0], file, where, bad[1])
            continue
        records.setdefault(split, []).append(CaptionRecord(str(path), captions, image_id))
    return records


def read_json(path: Path):
    return load_json_text(path)


def caption_or_problem(raw, problems: Problems, file, where) -> str | None:
    if not isinstance(raw, str):
        problems.bad("malformed line", file, where, f"caption is {type(raw).__name__}, not text")
        return None
    text = clean_caption(raw)
    if not text:
        problems.bad("empty caption", file, where, "the caption is empty")
        return None
    return text


def _read_token_file(path: Path, problems: Problems) -> tuple[dict[str, list[str]], dict[str, int]]:
    captions: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for n, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        m = _TOKEN_LINE.match(line)
        if not m:
            problems.bad(
                "malformed line",
                path,
                n,
                f"expected 'NAME.jpg#K<TAB>caption', got {line[:80]!r}",
            )
            continue
        text = caption_or_problem(m["caption"], problems, path, n)
        if text is not None:
            captions.setdefault(m["name"].strip(), []).append(text)
            first_line.setdefault(m["name"].strip(), n)
    return captions, first_line


def _flickr8k_split_lists(folder: Path, root: Path) -> dict[str, Path] | None:
    found = {
        s: folder / n if (folder / n).is_file() else find_file(root, n)
        for s, n in FLICKR_SPLIT_FILES.items()
    }
    return found if all(found.values()) else None


def load_flickr(
    root: str | Path,
    *,
    variant: str = "flickr8k",
    image_dir: str | Path | None = None,
    token_file: str | Path | None = None,
    karpathy_json: str | Path | None = None,
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
):
    """Flickr8k / Flickr30k from their original files under `root`."""
    root = Path(root)
    if variant not in FLICKR_TOKEN_FILES:
        raise ValueError(f"variant must be one of {sorted(FLICKR_TOKEN_FILES)}, not {variant!r}")
    problems = Problems(f"{variant}:{root}", on_error)
    token = Path(token_file) if token_file else find_file(root, FLICKR_TOKEN_FILES[variant])
    if token is None or not token.is_file():
        raise DataError(f"{root}: no {FLICKR_TOKEN_FILES[variant]} found (pass token_file=)")
    if image_dir is None:  # the zips nest folders differently: look two levels down
        found = (find_file(root, d) for d in FLICKR_IMAGE_DIRS)
        image_dir = next((p for p in found if p is not None and p.is_dir()), root)
    image_dir = Path(image_dir)
    captions, first_line = _read_token_file(token, problems)

    # split -> [(image name, split file, line)]
    assignment: dict[str, list[tuple[str, Path, int]]] = {}
    lists = _flickr8k_split_lists(token.parent, root) if variant == "flickr8k" else None
    kjson = Path(karpathy_json) if karpathy_json else find_file(root, f"dataset_{variant}.json")
    if lists:
        for split, lst in lists.items():
            for n, line in text_lines(lst):
                if line.strip():
                    assignment.setdefault(split, []).append((line.strip(), lst, n))
    elif kjson is not None:
        for i, entry in enumerate(read_json(kjson).get("images", [])):
            split = normalise_split(entry.get("split", "")) if isinstance(entry, dict) else None
            if split is None or not isinstance(entry.get("filename"), str):
                problems.bad(
                    "malformed line",
                    kjson,
                    f"images[{i}]",
                    "needs 'filename' and a train/val/test/restval 'split'",
                )
                continue
            assignment.setdefault(split, []).append((entry["filename"], kjson, i))
    else:
        raise DataError(
            f"{root}: no split lists ({', '.join(FLICKR_SPLIT_FILES.values())}) "
            f"and no dataset_{variant}.json (Karpathy splits; pass karpathy_json=)"
        )

    items, listed = [], set()
    for split, names in assignment.items():
        for name, file, where in names:
            listed.add(name)
            if name not in captions:
                problems.bad("empty caption", file, where, f"{name} has no caption in {token.name}")
                continue
            image = image_in_folder(image_dir, name)
            if image is None:
                problems.bad("malformed line", file, where, f"image {name!r} leaves {image_dir}")
                continue
            items.append((split, image, captions[name], name, token, first_line[name]))
    unlisted = len(set(captions) - listed)
    if unlisted:
        problems.note(
            f"{unlisted} captioned image name(s) in {token.name} are in no split and were left out"
        )
    records = finish_records(items, problems, verify_images=verify_images, show=show_progress)
    return build_caption_dict(records, problems.finish())
