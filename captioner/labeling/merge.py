"""Merge finished shard journals into the usual outputs, exactly once.

Rule: the merge needs every image of the listing to have a row (labelled or failed) in the
main journal or a shard journal. It holds the main journal's lock and every shard journal's
lock, writes the main journal atomically in the order one process would have written it (the
sorted walk; rows of images no longer on disk after them), writes the exports from it, and
only then removes the shard files. A second merge finds no shard files and does nothing; a
merge cut short before the removal is simply done again, with the same result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from captioner.atomic import fsync_dir
from captioner.labeling.formats import ExportProblems, export
from captioner.labeling.journals import Journals
from captioner.labeling.lock import FolderBusyError, JournalLock
from captioner.labeling.safefiles import MAX_LINE, open_read, read_lines, replaced
from captioner.labeling.scan import ScanOptions, iter_files
from captioner.labeling.shards import (
    Shard,
    ShardError,
    check_shards,
    find_shards,
    read_settings,
    settings_path,
    shard_of,
)
from captioner.labeling.writers import Key, LabelStore, parse_record

log = logging.getLogger(__name__)


class ShardsIncomplete(ShardError):
    """Some shard has not labelled all of its images yet."""


@dataclass
class MergeResult:
    merged: list[str] = field(default_factory=list)  # main journals written
    outputs: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # why a journal was not merged yet
    problems: ExportProblems = field(default_factory=ExportProblems)  # sidecars not written


def merge_labels(
    folders: list[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    scan: ScanOptions | None = None,
    formats: tuple[str, ...] = ("jsonl",),
    xmp_naming: str = "ext",
    count: int | None = None,
    settings: dict[str, Any] | None = None,
    require_complete: bool = True,
) -> MergeResult:
    """Merge the shard journals of `folders` (see the module docstring). `count`: the split's
    N when known; `settings`: the shards' expected settings. An unfinished shard raises
    `ShardsIncomplete`, or with `require_complete=False` is reported in `waiting`."""
    scan = scan or ScanOptions()
    roots = list(dict.fromkeys(os.path.abspath(os.fspath(f)) for f in folders))
    journals = Journals(roots, out)
    journals.check_outputs(formats)
    own = journals.own_outputs()
    result = MergeResult()
    want = _scan_settings(scan)
    for store in journals.stores:
        with JournalLock(store.path, wait=True), ExitStack() as held:
            n = check_shards(store.path, count, settings)
            shards = find_shards(store.path)
            if not shards:
                continue  # nothing to merge (or merged already)
            _same_selection(shards, want)
            store.load()  # refuses a file that is not a labels journal; cuts a torn line
            files = [store, *(LabelStore(p, folder_override=store.folder_override) for p in shards)]
            folders_of = journals.folders_of[id(store)]
            missing = _missing(_index(files), roots, folders_of, scan, n, own)
            try:
                if missing:
                    raise ShardsIncomplete(_incomplete(store.path, missing, n))
                for path in shards:  # a shard still running merges itself when it ends
                    held.enter_context(JournalLock(path, wait=False))
            except (ShardsIncomplete, FolderBusyError) as e:
                if require_complete:
                    raise
                log.info("%s", e)
                result.waiting.append(str(e))
                continue
            _write_merged(store, files, _index(files), roots, folders_of, scan, own)
            result.outputs += export(
                journals, roots, formats, xmp_naming, stores=[store], problems=result.problems
            )
            for path in shards:
                path.unlink(missing_ok=True)
                settings_path(path).unlink(missing_ok=True)
            fsync_dir(store.path.parent)
            result.merged.append(str(store.path))
            log.info("merged %d shard journal(s) into %s", len(shards), store.path)
    return result


def _scan_settings(scan: ScanOptions) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(scan)))


def _same_selection(shards: dict[Path, Shard], want: dict[str, Any]) -> None:
    """The merge walks the listing with its own selection flags: they must be the shards'."""
    for path in shards:
        theirs = (read_settings(path) or {}).get("scan")
        if theirs is not None and theirs != want:
            raise ShardError(
                f"{path.name} was labelled with other selection flags (--include, --exclude, "
                f"--hidden, --recursive: {theirs} vs {want} here); merge with the shards' flags"
            )


def _index(files: list[LabelStore]) -> dict[Key, tuple[int, int]]:
    """key -> (file number, byte offset) of its last complete row across `files`."""
    index: dict[Key, tuple[int, int]] = {}
    for i, store in enumerate(files):
        for _, offset, line in read_lines(store.path):  # bounded; a pipe is refused
            rec = parse_record(line) if line.endswith(b"\n") else None
            if rec is not None:
                index.pop(store.key(rec), None)  # re-insert: the order is the last row's
                index[store.key(rec)] = (i, offset)
    return index


def _walk(roots: list[str], folders: list[str], scan: ScanOptions, own=None):
    for fi, root in enumerate(roots):
        if root in folders:
            for rel in iter_files(root, scan, own):
                yield fi, root, rel


def _missing(index, roots, folders, scan, n: int, own=None) -> Counter:
    """Images without a row, per shard."""
    return Counter(
        shard_of(fi, rel, n) for fi, root, rel in _walk(roots, folders, scan, own)
        if (root, rel) not in index
    )  # fmt: skip


def _incomplete(main: Path, missing: Counter, n: int) -> str:
    parts = ", ".join(f"shard {Shard(k, n)}: {c} image(s)" for k, c in sorted(missing.items()))
    return (
        f"{main}: not merged yet, unfinished shards ({parts} without a row); run those "
        "shards (the same command with --shard K/N resumes them), then merge"
    )


def _line(handles: list[BinaryIO], where: tuple[int, int]) -> bytes:
    f = handles[where[0]]
    f.seek(where[1])
    return f.readline(MAX_LINE + 1)


def _write_merged(store: LabelStore, files, index, roots, folders, scan, own=None) -> None:
    with ExitStack() as stack:
        handles = []
        for s in files:
            f = open_read(s.path)
            handles.append(stack.enter_context(f) if f is not None else None)
        with replaced(store.path, within=store.path.parent, mode="wb") as out:
            for _, root, rel in _walk(roots, folders, scan, own):
                where = index.pop((root, rel), None)
                if where is not None:
                    out.write(_line(handles, where))
            for where in index.values():  # rows of images no longer found, as before
                out.write(_line(handles, where))
