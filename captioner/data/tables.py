"""Caption tables: CSV / JSONL files and image folders with `metadata.jsonl` / `metadata.csv`.

A row names an image (column `image`, else `file_name` / `filename` / `image_path` / `path`)
and its caption(s) (column `caption`, else `captions` / `text`; a JSONL value may be a list).
Several rows may name the same image: their captions are grouped. Relative image paths are
taken from `image_root`, else the table's folder. Rows go to the split in a `split` column
when there is one (train / val / validation / dev / test / restval), else to a
deterministic hash split of the image path. `columns="image:img,captions:sentences"` maps
our names to the file's.

An image folder follows `load_dataset("imagefolder", data_dir=DIR)`: a metadata file in
DIR (file names may start with a split folder, `train/0001.png`) or one per split folder
(DIR/train/metadata.jsonl, ...); names are relative to the metadata file's folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from captioner.data.common import (
    DataError,
    OnError,
    Problems,
    build_caption_dict,
    clean_caption,
    hash_split,
    normalise_split,
)
from captioner.data.sources import finish_records
from captioner.data.textfiles import csv_rows, image_in_folder, parse_json, text_lines

IMAGE_COLUMNS = ("image", "file_name", "filename", "image_path", "path")
CAPTION_COLUMNS = ("caption", "captions", "text")


def parse_columns(columns: str | Mapping[str, str] | None) -> dict[str, str]:
    """'image:img,captions:sentences' (or a dict) -> {"image": "img", "captions": "sentences"}."""
    if columns is None:
        return {}
    if isinstance(columns, Mapping):
        return dict(columns)
    out = {}
    for part in filter(None, (p.strip() for p in columns.split(","))):
        ours, sep, theirs = part.partition(":")
        if not sep or not ours.strip() or not theirs.strip():
            raise ValueError(
                f"bad column mapping {part!r} in {columns!r}: use OURS:THEIRS, e.g. 'image:img,captions:sentences'"
            )
        out[ours.strip()] = theirs.strip()
    return out


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, object]]:
    """(line number, row) for each record of a CSV (dict rows) or JSONL (any JSON value, or
    the ValueError of a line that is not JSON) file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if fmt == "csv":
        yield from csv_rows(path)
    elif fmt == "jsonl":
        for n, line in text_lines(path):
            if line.strip():
                try:
                    yield n, parse_json(line)
                except ValueError as e:  # also deep nesting and over-long numbers
                    yield n, e
    else:
        raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")


def pick(row: dict, wanted: str | None, candidates: Sequence[str]) -> str | None:
    """The column to use: the mapped one, else the first candidate present."""
    if wanted is not None:
        return wanted if wanted in row else None
    return next((c for c in candidates if c in row), None)


def row_captions(value) -> list | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v.get("raw") if isinstance(v, dict) else v for v in value]
    return None


def collect_rows(
    path: Path,
    fmt: str,
    problems: Problems,
    groups: dict,
    *,
    columns: dict[str, str],
    image_root: Path,
    split_of_dir: str | None = None,
) -> None:
    """Read one table into `groups`: image path -> [split, captions, image_id, file, line]."""
    for n, row in read_rows(path, fmt):
        if isinstance(row, Exception):
            problems.bad("malformed line", path, n, f"invalid JSON ({row})")
            continue
        if not isinstance(row, dict):
            problems.bad("malformed line", path, n, f"expected an object, got {type(row).__name__}")
            continue
        icol = pick(row, columns.get("image"), IMAGE_COLUMNS)
        ccol = pick(row, columns.get("captions", columns.get("caption")), CAPTION_COLUMNS)
        if icol is None or ccol is None or not isinstance(row[icol], str) or not row[icol].strip():
            problems.bad(
                "malformed line",
                path,
                n,
                f"needs an image column ({'/'.join(IMAGE_COLUMNS)}) "
                f"and a caption column ({'/'.join(CAPTION_COLUMNS)}); has {sorted(row)}",
            )
            continue
        raw = row_captions(row[ccol])
        if raw is None or not all(isinstance(c, str) for c in raw):
            problems.bad(
                "malformed line", path, n, f"column {ccol!r} must be text or a list of text"
            )
            continue
        captions = [clean_caption(c) for c in raw]
        if not all(captions):
            problems.bad("empty caption", path, n, f"empty caption in column {ccol!r}")
            captions = [c for c in captions if c]
            if not captions:
                continue
        name = row[icol].strip()
        split = split_of_dir
        scol = columns.get("split", "split")
        if row.get(scol) not in (None, ""):
            split = normalise_split(row[scol])
            if split is None:
                problems.bad(
                    "malformed line",
                    path,
                    n,
                    f"unknown split {row[scol]!r} (use train/validation/test)",
                )
                continue
        elif split is None and "/" in name and normalise_split(name.split("/")[0]):
            split = normalise_split(name.split("/")[0])
        image = image_in_folder(image_root, name)
        if image is None:
            problems.bad("malformed line", path, n, f"image path {name!r} leaves {image_root}")
            continue
        idcol = columns.get("image_id", "image_id")
        image_id = str(row[idcol]) if row.get(idcol) not in (None, "") else name
        entry = groups.setdefault(str(image), [split, [], image_id, path, n])
        if entry[0] != split:
            problems.bad(
                "malformed line",
                path,
                n,
                f"{name} is in split {entry[0]!r} on line {entry[4]} but {split!r} here",
            )
            continue
        entry[1].extend(captions)


def _finish(
    groups: dict,
    problems: Problems,
    *,
    seed: int,
    fractions: Sequence[float],
    verify_images: bool,
    show_progress: bool,
):
    items = [
        (
            split or hash_split(image_id, seed=seed, fractions=fractions),
            Path(image),
            captions,
            image_id,
            file,
            line,
        )
        for image, (split, captions, image_id, file, line) in groups.items()
    ]
    records = finish_records(items, problems, verify_images=verify_images, show=show_progress)
    return build_caption_dict(records, problems.finish())


def load_table(
    path: str | Path,
    *,
    fmt: str | None = None,
    columns: str | Mapping[str, str] | None = None,
    image_root: str | Path | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
):
    """A CSV or JSONL caption table (format from the suffix unless `fmt` is given)."""
    path = Path(path)
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    problems = Problems(f"{fmt}:{path}", on_error)
    groups: dict = {}
    collect_rows(
        path,
        fmt,
        problems,
        groups,
        columns=parse_columns(columns),
        image_root=Path(image_root) if image_root else path.parent,
    )
    return _finish(
        groups,
        problems,
        seed=seed,
        fractions=fractions,
        verify_images=verify_images,
        show_progress=show_progress,
    )


def load_imagefolder(
    root: str | Path,
    *,
    columns: str | Mapping[str, str] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
):
    """An image folder with metadata files, laid out as `datasets`' imagefolder reads it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    metas = sorted(
        p
        for p in [*root.glob("metadata.*"), *root.glob("*/metadata.*")]
        if p.suffix in (".jsonl", ".csv")
    )
    if not metas:
        raise DataError(
            f"{root}: no metadata.jsonl or metadata.csv (in the folder or its split folders)"
        )
    problems = Problems(f"imagefolder:{root}", on_error)
    groups: dict = {}
    for meta in metas:
        split = None
        if meta.parent != root:
            split = normalise_split(meta.parent.name)
            if split is None:
                problems.note(
                    f"{meta}: folder {meta.parent.name!r} is not a split name; its rows are hash-split"
                )
        collect_rows(
            meta,
            meta.suffix[1:],
            problems,
            groups,
            columns=parse_columns(columns),
            image_root=meta.parent,
            split_of_dir=split,
        )
    return _finish(
        groups,
        problems,
        seed=seed,
        fractions=fractions,
        verify_images=verify_images,
        show_progress=show_progress,
    )
