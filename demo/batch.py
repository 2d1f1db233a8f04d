"""The batch tab's work: uploaded files and zip archives -> rows -> CSV / JSONL files.

Rows have the columns of `captioner label` (path, caption, tags, sentiment, error, model).
A file that is not an image becomes a row with its error, never a failed batch. Zip members
are copied one at a time into the app's temporary directory under a generated name (so a
member called `../../x` cannot escape it), read, and deleted.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from captioner.imageio import IMAGE_EXTENSIONS, ImageLoadError, open_image

COLUMNS = ("path", "caption", "tags", "sentiment", "error", "model")
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # one image inside a zip, uncompressed
MAX_ZIP_BYTES = 1024 * 1024 * 1024  # all images of one zip, uncompressed


@dataclass
class BatchItem:
    name: str  # what the user calls it: the file name, or "archive.zip/dir/member.jpg"
    image: Image.Image | None
    error: str | None = None


def _load(path: Path, name: str, draft_size: int | None) -> BatchItem:
    try:
        return BatchItem(name, open_image(path, draft_size=draft_size))
    except ImageLoadError as e:
        return BatchItem(name, None, str(e).replace(str(path), name))


def _is_image_member(info: zipfile.ZipInfo) -> bool:
    """A zip member worth reading: an image file, not a folder, hidden file or macOS fork."""
    base = os.path.basename(info.filename)
    return (
        not info.is_dir()
        and not base.startswith(".")
        and "__MACOSX/" not in info.filename
        and Path(base).suffix.lower() in IMAGE_EXTENSIONS
    )


def _zip_members(archive: Path, name: str, work_dir: Path, draft_size: int | None):
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        yield BatchItem(name, None, f"{name}: not a readable zip archive ({e})")
        return
    with zf:
        total = 0
        for info in filter(_is_image_member, zf.infolist()):
            member = f"{name}/{info.filename}"
            suffix = Path(info.filename).suffix.lower()
            total += info.file_size
            if info.file_size > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
                yield BatchItem(
                    member, None, f"{member}: too large to unpack ({info.file_size:,} bytes)"
                )
                continue
            fd, tmp = tempfile.mkstemp(suffix=suffix, dir=work_dir)
            try:
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    out.write(src.read(MAX_MEMBER_BYTES + 1))
                yield _load(Path(tmp), member, draft_size)
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as e:
                yield BatchItem(member, None, f"{member}: cannot unpack ({e})")
            finally:
                Path(tmp).unlink(missing_ok=True)


def iter_batch_items(
    paths: Iterable[str | os.PathLike],
    *,
    work_dir: str | os.PathLike,
    max_images: int = 200,
    draft_size: int | None = None,
) -> Iterator[BatchItem]:
    """Uploaded files (images or zips of images) -> one `BatchItem` each image, in order.

    Stops after `max_images` items; the caller says so to the user."""
    count = 0
    for p in paths:
        path = Path(p)
        name = path.name
        if path.suffix.lower() == ".zip":
            items: Iterable[BatchItem] = _zip_members(path, name, Path(work_dir), draft_size)
        else:
            items = [_load(path, name, draft_size)]
        for item in items:
            if count >= max_images:
                return
            count += 1
            yield item


def describe_items(
    captioner: Any,
    items: Iterable[BatchItem],
    *,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run `captioner.describe` over the readable items in batches -> rows (dicts of COLUMNS)."""
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, BatchItem]] = []

    def flush() -> None:
        descriptions = captioner.describe([it.image for _, it in pending], **options)
        for (i, _), d in zip(pending, descriptions, strict=True):
            rows[i].update(caption=d.caption, tags=list(d.tags), sentiment=d.sentiment)
        pending.clear()
        if progress is not None:
            progress(len(rows))

    for item in items:
        rows.append(
            dict(
                path=item.name,
                caption=None,
                tags=[],
                sentiment=None,
                error=item.error,
                model=captioner.name,
            )
        )
        if item.image is not None:
            pending.append((len(rows) - 1, item))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return rows


def row_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row with tags and sentiment as {"label", "score"} objects (as `Description.to_dict`)."""
    sentiment = row["sentiment"]
    return {
        "path": row["path"],
        "caption": row["caption"],
        "tags": [{"label": t, "score": round(float(s), 6)} for t, s in row["tags"]],
        "sentiment": None
        if sentiment is None
        else {"label": sentiment[0], "score": round(float(sentiment[1]), 6)},
        "error": row["error"],
        "model": row["model"],
    }


def row_to_cells(row: dict[str, Any]) -> list[str]:
    """A row as table / CSV cells: tags "label (0.91); other (0.05)", sentiment "positive (0.87)"."""
    from captioner.demo.render import format_sentiment, format_tags

    return [
        row["path"],
        row["caption"] or "",
        format_tags(row["tags"]),
        format_sentiment(row["sentiment"]),
        row["error"] or "",
        row["model"],
    ]


def write_rows(rows: Sequence[dict[str, Any]], directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write `labels.csv` and `labels.jsonl` into `directory`; return both paths."""
    directory = Path(directory)
    csv_path, jsonl_path = directory / "labels.csv", directory / "labels.jsonl"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(row_to_cells(r) for r in rows)
    with jsonl_path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(row_to_json(r), ensure_ascii=False) + "\n")
    return csv_path, jsonl_path


def count_batch_inputs(paths: Iterable[str | os.PathLike]) -> int:
    """How many items `iter_batch_items` would yield without a limit (zips are listed, not read)."""
    total = 0
    for p in paths:
        path = Path(p)
        if path.suffix.lower() != ".zip":
            total += 1
            continue
        try:
            with zipfile.ZipFile(path) as zf:
                total += sum(map(_is_image_member, zf.infolist()))
        except (zipfile.BadZipFile, OSError):
            total += 1  # reported as one error row
    return total
