"""COCO and Karpathy caption files.

- COCO: `captions_*.json` (`images[{id, file_name}]`, `annotations[{image_id, caption}]`).
- Karpathy: `dataset_{coco,flickr8k,flickr30k}.json` (`images[{filepath?, filename, split,
  sentences[{raw}]}]`); `restval` joins train, `val` is validation.

Bad records are named by file and JSON entry (`images[12]`, `annotations[40]`): the real
files hold everything on one line, so an entry says more than a line number.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from captioner.data.common import (
    DataError,
    OnError,
    Problems,
    build_caption_dict,
    hash_split,
    normalise_split,
)
from captioner.data.sources import caption_or_problem, finish_records, read_json
from captioner.data.textfiles import image_in_folder


def load_coco(
    annotations: str | Path,
    image_dir: str | Path,
    *,
    split: str = "hash",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
):
    """COCO captions JSON. One file holds one official split, so by default its images are
    split train/validation/test by a hash of the image id; `split="train"` (or validation /
    test) puts them all in that split instead."""
    annotations, image_dir = Path(annotations), Path(image_dir)
    if split != "hash" and normalise_split(split) is None:
        raise ValueError(f"split must be 'hash', 'train', 'validation' or 'test', not {split!r}")
    problems = Problems(f"coco:{annotations}", on_error)
    data = read_json(annotations)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise DataError(
            f"{annotations}: not a COCO captions file (needs 'images' and 'annotations' lists)"
        )
    files: dict[str, tuple[str, int]] = {}
    for i, img in enumerate(data["images"]):
        if (
            not isinstance(img, dict)
            or "id" not in img
            or not isinstance(img.get("file_name"), str)
        ):
            problems.bad(
                "malformed line", annotations, f"images[{i}]", "needs 'id' and 'file_name'"
            )
            continue
        files[str(img["id"])] = (img["file_name"], i)
    caps: dict[str, list[str]] = {}
    for j, ann in enumerate(data["annotations"]):
        where = f"annotations[{j}]"
        if not isinstance(ann, dict) or str(ann.get("image_id")) not in files:
            problems.bad(
                "malformed line", annotations, where, "needs an 'image_id' listed in 'images'"
            )
            continue
        text = caption_or_problem(ann.get("caption"), problems, annotations, where)
        if text is not None:
            caps.setdefault(str(ann["image_id"]), []).append(text)
    items = []
    for image_id, (file_name, i) in files.items():
        if image_id in caps:
            s = (
                hash_split(image_id, seed=seed, fractions=fractions)
                if split == "hash"
                else normalise_split(split)
            )
            image = image_in_folder(image_dir, file_name)
            if image is None:
                problems.bad(
                    "malformed line",
                    annotations,
                    f"images[{i}]",
                    f"file_name {file_name!r} leaves the image folder {image_dir}",
                )
                continue
            items.append((s, image, caps[image_id], image_id, annotations, f"images[{i}]"))
    if len(files) > len(items):
        problems.note(f"{len(files) - len(items)} image(s) without captions were left out")
    records = finish_records(items, problems, verify_images=verify_images, show=show_progress)
    return build_caption_dict(records, problems.finish())


def load_karpathy(
    json_path: str | Path,
    image_root: str | Path,
    *,
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
):
    """Karpathy split JSON; images at IMAGE_ROOT/filepath/filename (filepath may be absent)."""
    json_path, image_root = Path(json_path), Path(image_root)
    problems = Problems(f"karpathy:{json_path}", on_error)
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{json_path}: not a Karpathy split file (needs an 'images' list)")
    items = []
    for i, entry in enumerate(data["images"]):
        where = f"images[{i}]"
        split = normalise_split(entry.get("split", "")) if isinstance(entry, dict) else None
        if (
            split is None
            or not isinstance(entry.get("filename"), str)
            or not isinstance(entry.get("sentences"), list)
        ):
            problems.bad(
                "malformed line",
                json_path,
                where,
                "needs 'filename', 'sentences' and a train/val/test/restval 'split'",
            )
            continue
        captions = []
        for k, sent in enumerate(entry["sentences"]):
            raw = sent.get("raw") if isinstance(sent, dict) else sent
            text = caption_or_problem(raw, problems, json_path, f"{where}.sentences[{k}]")
            if text is not None:
                captions.append(text)
        if not captions:
            continue
        folder = entry.get("filepath") or ""
        name = os.path.join(folder, entry["filename"]) if isinstance(folder, str) else ""
        path = image_in_folder(image_root, name)
        if path is None:
            problems.bad("malformed line", json_path, where, f"image {name!r} leaves {image_root}")
            continue
        image_id = str(entry.get("cocoid", entry.get("imgid", entry["filename"])))
        items.append((split, path, captions, image_id, json_path, where))
    records = finish_records(items, problems, verify_images=verify_images, show=show_progress)
    return build_caption_dict(records, problems.finish())
