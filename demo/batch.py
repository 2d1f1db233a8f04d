"""The batch tab's work: uploaded files and zip archives -> records -> CSV / JSONL files.

Records and files are those of `captioner label` (its writers in `captioner.labeling.writers`
write them): `folder` (the zip a member came from; empty for a loose upload), `path`,
`caption`, `tags` and `sentiment` as {"label", "score"}, `error`, `model`. A file that is not
an image becomes a record with its error, never a failed batch. Zip members
are copied one at a time into the app's temporary directory under a generated name (so a
member called `../../x` cannot escape it), read, and deleted.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from captioner.api import image_record
from captioner.imageio import IMAGE_EXTENSIONS, ImageLoadError, open_image
from captioner.labeling.exports import CSV_COLUMNS, csv_row, translation_cell, write_csv
from captioner.labeling.writers import dumps_record

COLUMNS = CSV_COLUMNS  # folder, path, caption, tags, tag_scores, sentiment, sentiment_score, ...
# The page's table: no `folder` column (empty for loose files); a zip member's path names its
# zip. Captions shown in another language add `caption_LANG` (see `table_columns`).
TABLE_COLUMNS = tuple(c for c in COLUMNS if c != "folder")
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # one image inside a zip, uncompressed
MAX_ZIP_BYTES = 1024 * 1024 * 1024  # all images of one zip, uncompressed
MAX_BATCH_PIXELS = 2_000_000_000  # all images of one batch, decoded one at a time


@dataclass
class BatchItem:
    name: str  # what the user calls it: the file name, or "archive.zip/dir/member.jpg"
    image: Image.Image | None
    error: str | None = None
    folder: str = ""  # the zip archive a member came from
    path: str = ""  # the file name, or the member's path inside its zip

    def __post_init__(self) -> None:
        self.path = self.path or self.name


class PixelBudget:
    """The pixels one batch may still decode (a zip of huge images costs minutes of CPU)."""

    def __init__(self, total: int = MAX_BATCH_PIXELS):
        self.left = total

    def take(self, file: Path) -> str | None:
        """None when `file`'s pixels fit (and are taken), else the reason they do not."""
        try:
            with Image.open(file) as img:
                w, h = img.size
        except Exception:  # unreadable: open_image says why
            return None
        if w * h > self.left:
            return f"over the batch's limit of {MAX_BATCH_PIXELS / 1e9:g} gigapixels in all"
        self.left -= w * h
        return None


def _load(file: Path, name: str, transform: Any, budget: PixelBudget, **where: str) -> BatchItem:
    refused = budget.take(file)
    if refused is not None:
        return BatchItem(name, None, f"{name}: {refused}; not labelled", **where)
    try:  # the model's own pixels at once (`ImageTransform.pixels`): a batch holds small images
        img = Image.fromarray(transform.pixels(file)) if transform else open_image(file)
        return BatchItem(name, img, **where)
    except ImageLoadError as e:
        return BatchItem(name, None, str(e).replace(str(file), name), **where)


def _is_image_member(info: zipfile.ZipInfo) -> bool:
    """A zip member worth reading: an image file, not a folder, hidden file or macOS fork."""
    base = os.path.basename(info.filename)
    return (
        not info.is_dir()
        and not base.startswith(".")
        and "__MACOSX/" not in info.filename
        and Path(base).suffix.lower() in IMAGE_EXTENSIONS
    )


def _zip_members(archive: Path, name: str, work_dir: Path, transform: Any, budget: PixelBudget):
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        yield BatchItem(name, None, f"{name}: not a readable zip archive ({e})")
        return
    with zf:
        total = 0
        for info in filter(_is_image_member, zf.infolist()):
            member = f"{name}/{info.filename}"
            where = {"folder": name, "path": info.filename}
            suffix = Path(info.filename).suffix.lower()
            total += info.file_size
            if info.file_size > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
                error = f"{member}: too large to unpack ({info.file_size:,} bytes)"
                yield BatchItem(member, None, error, **where)
                continue
            fd, tmp = tempfile.mkstemp(suffix=suffix, dir=work_dir)
            try:
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    out.write(src.read(MAX_MEMBER_BYTES + 1))
                yield _load(Path(tmp), member, transform, budget, **where)
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as e:
                yield BatchItem(member, None, f"{member}: cannot unpack ({e})", **where)
            finally:
                Path(tmp).unlink(missing_ok=True)


def iter_batch_items(
    paths: Iterable[str | os.PathLike],
    *,
    work_dir: str | os.PathLike,
    max_images: int = 200,
    transform: Any = None,
    max_pixels: int = MAX_BATCH_PIXELS,
) -> Iterator[BatchItem]:
    """Uploaded files (images or zips of images) -> one `BatchItem` each image, in order.

    Images are decoded one at a time and turned into the encoder's input pixels at once
    (`transform`: its `ImageTransform`; None keeps them whole), so memory holds one
    full-size image at most, and a photo gets the caption it gets alone; images past
    `max_pixels` decoded pixels in all get an error row. Stops after `max_images` items; the
    caller says so to the user. Iterate lazily: the items are meant to be consumed as made."""
    count, budget = 0, PixelBudget(max_pixels)
    for p in paths:
        path = Path(p)
        name = path.name
        if path.suffix.lower() == ".zip":
            items: Iterable[BatchItem] = _zip_members(path, name, Path(work_dir), transform, budget)
        else:
            items = [_load(path, name, transform, budget)]
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
    """Run `captioner.describe` over the readable items in batches -> one record each, as
    `captioner label` writes them (tags / sentiment None for a file that could not be read)."""
    records: list[dict[str, Any]] = []
    pending: list[tuple[int, BatchItem]] = []

    def flush() -> None:
        descriptions = captioner.describe([it.image for _, it in pending], **options)
        for (i, it), d in zip(pending, descriptions, strict=True):
            records[i] = image_record(
                it.path, it.folder, d.to_record(), error=it.error, model=captioner.name
            )
        pending.clear()
        if progress is not None:
            progress(len(records))

    for item in items:
        records.append(
            image_record(item.path, item.folder, None, error=item.error, model=captioner.name)
        )
        if item.image is not None:
            pending.append((len(records) - 1, item))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return records


def table_columns(lang: str | None = None) -> tuple[str, ...]:
    """The table's columns: TABLE_COLUMNS, with `caption_LANG` (the caption translated)
    before the English `caption` when captions are shown in `lang`."""
    if not lang:
        return TABLE_COLUMNS
    at = TABLE_COLUMNS.index("caption")
    return (*TABLE_COLUMNS[:at], f"caption_{lang}", *TABLE_COLUMNS[at:])


def table_rows(records: Iterable[dict[str, Any]], lang: str | None = None) -> list[list[Any]]:
    """Records as the cells of the table on the page (`table_columns(lang)`): those of
    `labels.csv` without `folder`, which is joined to the path instead ("photos.zip/a/one.png"),
    and with the caption's translation into `lang` when asked for."""
    rows = []
    for r in records:
        cells = dict(zip(COLUMNS, csv_row(r), strict=True))
        if cells["folder"]:
            cells["path"] = f"{cells['folder']}/{cells['path']}"
        if lang:
            cells[f"caption_{lang}"] = translation_cell(r, lang)
        rows.append([cells[c] for c in table_columns(lang)])
    return rows


def write_records(
    records: Sequence[dict[str, Any]], directory: str | os.PathLike, lang: str | None = None
) -> tuple[Path, Path]:
    """Write `labels.csv` (with `caption_LANG` for `lang`) and `labels.jsonl` into
    `directory` with `captioner label`'s writers; return both paths."""
    directory = Path(directory)
    csv_path, jsonl_path = directory / "labels.csv", directory / "labels.jsonl"
    write_csv(records, csv_path, languages=(lang,) if lang else ())
    jsonl_path.write_bytes(b"".join(dumps_record(r) for r in records))
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
