"""Exports regenerated from the JSONL journal at the end of a run, each written atomically:
a CSV (quoted by the csv module, so any file name survives) and `metadata.jsonl` in the
format `datasets.load_dataset("imagefolder", data_dir=DIR)` reads.

Both are valid UTF-8 whatever the file names: a name that is not UTF-8 is written `\\xe9`
in the CSV, and left out of `metadata.jsonl` (no UTF-8 text names that file, and one such
row made `datasets` refuse the whole folder). A `labels.csv` or `metadata.jsonl` that this
tool did not write is kept as `NAME.orig` (never replaced silently)."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from captioner.labeling.safefiles import (
    output_path,
    read_head,
    readable_text,
    removable,
    stale_temps,
    utf8_name,
)
from captioner.labeling.writers import atomic_writer

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "folder",
    "path",
    "caption",
    "tags",
    "tag_scores",
    "sentiment",
    "sentiment_score",
    "error",
    "model",
)
META_KEYS = ("file_name", "caption", "tags", "tag_scores", "sentiment", "sentiment_score")
METADATA_NAME = "metadata.jsonl"


def _join(values: Iterable[Any]) -> str:
    return "; ".join(str(v) for v in values)


def csv_row(rec: dict[str, Any]) -> list[Any]:
    tags = rec.get("tags")
    sent = rec.get("sentiment") or {}
    return [
        rec.get("folder", ""),
        rec["path"],
        rec.get("caption") or "",
        _join(t["label"] for t in tags) if tags else "",
        _join(f"{t['score']:.4f}" for t in tags) if tags else "",
        sent.get("label", ""),
        f"{sent['score']:.4f}" if "score" in sent else "",
        rec.get("error") or "",
        rec.get("model") or "",
    ]


def translation_cell(rec: dict[str, Any], lang: str) -> str:
    """The record's caption translated into `lang` (`captioner label --lang`), or ""."""
    return (rec.get("translations") or {}).get(lang) or ""


# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...), +cmd|...).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """Text a spreadsheet would run as a formula, prefixed with a quote (OWASP's advice for
    CSV injection) so it shows as the text it is."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def write_csv(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike,
    *,
    mode_of: Path | None = None,
    languages: Sequence[str] = (),
) -> int:
    """CSV (RFC 4180 quoting by the csv module: commas, quotes, newlines are safe; cells a
    spreadsheet would run as formulas are quote-prefixed). Each of `languages` adds a last
    column `caption_LANG`: the caption's translation (empty where a record has none)."""
    n, path = 0, Path(path)
    target = output_path(path, path.parent)
    if not _csv_is_ours(target):
        _keep_foreign(target)
    with atomic_writer(target, newline="", mode_of=mode_of) as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow([*CSV_COLUMNS, *(f"caption_{lang}" for lang in languages)])
        for rec in records:
            row = csv_row(rec) + [translation_cell(rec, lang) for lang in languages]
            writer.writerow([spreadsheet_safe(_text(c)) for c in row])
            n += 1
    return n


def _text(cell: Any) -> Any:
    return readable_text(cell) if isinstance(cell, str) else cell


CSV_HEAD = ",".join(CSV_COLUMNS).encode("ascii")


def _csv_is_ours(path: Path) -> bool:
    """Whether the CSV at `path` is missing, empty or one this tool wrote (our header)."""
    head = read_head(path, 4096)
    return not head or head.startswith(CSV_HEAD)


def metadata_row(rec: dict[str, Any]) -> dict[str, Any]:
    tags, sent = rec.get("tags"), rec.get("sentiment")
    return {
        "file_name": rec["path"],
        "caption": rec.get("caption"),
        "tags": [t["label"] for t in tags] if tags is not None else None,
        "tag_scores": [t["score"] for t in tags] if tags is not None else None,
        "sentiment": sent["label"] if sent else None,
        "sentiment_score": sent["score"] if sent else None,
    }


def _is_ours(path: Path) -> bool:
    """Whether `path` is missing, empty, or a metadata file this tool wrote: its first line
    is one of our rows (a blank first line is someone else's file)."""
    head = read_head(path, 1 << 16)
    if not head:
        return True
    rec = _parse_any(head.split(b"\n", 1)[0])
    return isinstance(rec, dict) and tuple(rec) == META_KEYS


def _parse_any(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None


def _keep_foreign(path: Path) -> None:
    """Move a metadata file that this tool did not write out of the way (never delete it)."""
    n, target = 0, path.with_name(path.name + ".orig")
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}.orig{n}")
    os.replace(path, target)
    log.warning("%s was not written by captioner: kept as %s", path, target.name)


def write_metadata(
    records: Iterable[dict[str, Any]],
    folders: Iterable[str],
    *,
    exists: Callable[[str, str], bool] | None = None,
    mode_of: Path | None = None,
) -> dict[str, int]:
    """`metadata.jsonl` in each folder, in the format `datasets`' imagefolder reads
    (`file_name` relative to the folder). Only images labelled without error, and still
    present, are listed. `mode_of`: the file whose permissions they take (the journal).
    Returns rows written per folder."""
    exists = exists or _exists
    folders = list(dict.fromkeys(folders))
    counts = dict.fromkeys(folders, 0)
    writers, stack, not_utf8 = {}, [], 0
    try:
        for folder in folders:
            target = output_path(Path(folder) / METADATA_NAME, folder)
            if not _is_ours(target):
                _keep_foreign(target)
            cm = atomic_writer(target, within=Path(folder), mode_of=mode_of)
            writers[folder] = cm.__enter__()
            stack.append(cm)
        for rec in records:
            folder = rec.get("folder")
            if folder in writers and rec.get("error") is None and exists(folder, rec["path"]):
                if utf8_name(rec["path"]) is None:
                    not_utf8 += 1
                    continue
                line = json.dumps(metadata_row(rec), ensure_ascii=False)
                if utf8_name(line) is None:  # a lone surrogate in a caption: JSON readers fail
                    line = line.encode("utf-8", "replace").decode("utf-8")
                writers[folder].write(line + "\n")
                counts[folder] += 1
    except BaseException as e:
        for cm in reversed(stack):
            cm.__exit__(type(e), e, e.__traceback__)
        raise
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
    if not_utf8:
        log.warning(
            "%d image(s) whose names are not valid UTF-8 were left out of %s (datasets "
            "cannot name them); rename them to list them",
            not_utf8,
            METADATA_NAME,
        )
    return counts


def _exists(folder: str, rel: str) -> bool:
    try:
        return os.path.isfile(os.path.join(folder, rel))
    except (OSError, ValueError):
        return False


def remove_stale_temp_files(files: Iterable[Path]) -> int:
    """Remove the temporary files a killed run left behind while writing `files` (the
    journals, compacted in place, and the exports at fixed names). Call it holding the
    journals' locks, so no running export's file is taken."""
    stale = []
    for path in files:
        stale += stale_temps(path.parent, path.name)
    removed = 0
    for path in stale:
        try:
            if removable(path):  # never a pipe or device put at such a name
                path.unlink()
                removed += 1
        except OSError:
            continue
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", removed)
    return removed
