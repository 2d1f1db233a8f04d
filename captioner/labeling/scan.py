"""Walk folders lazily and pick the files to label.

Rules (`ScanOptions`):
- a file is a candidate when its extension is an image extension (case-insensitive), or, when
  `include` globs are given, when it matches one of them (then any extension is attempted);
  `exclude` globs always win. A glob matches the path relative to the folder (`a/b.jpg`,
  POSIX separators) or the bare file name, case-insensitively.
- hidden files and folders (name starting with ".") are skipped unless `hidden=True`.
- symbolic links to files are followed; broken links, link loops and special files (named
  pipes, sockets, devices) that look like images are still yielded, so the labeler records an
  error row for them. Links to folders are followed once: a folder reached twice (a loop, or
  two links to one place) is walked once.
- the labeler's own outputs (`labels.jsonl`, `labels.csv`, `metadata.jsonl`, sidecars, lock
  and temporary files) are never candidates, whatever `include` says.

Entries are sorted by name in each folder, so runs are reproducible; memory holds the
listings of the folders on the current path only (never the whole tree).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from captioner.imageio import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

OWN_OUTPUT_SUFFIXES = (".xmp", ".jsonl", ".csv", ".tmp", ".lock", ".rejected")


@dataclass
class ScanOptions:
    recursive: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False


def _matches(rel: str, name: str, patterns: tuple[str, ...]) -> bool:
    rel_l, name_l = rel.lower(), name.lower()
    return any(
        fnmatch.fnmatchcase(rel_l, p.lower()) or fnmatch.fnmatchcase(name_l, p.lower())
        for p in patterns
    )


def is_candidate(rel: str, name: str, options: ScanOptions) -> bool:
    """Whether the file at relative path `rel` (file name `name`) should be labelled."""
    if not options.hidden and name.startswith("."):
        return False
    if name.lower().endswith(OWN_OUTPUT_SUFFIXES):
        return False
    if options.include:
        chosen = _matches(rel, name, options.include)
    else:
        chosen = os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
    return chosen and not _matches(rel, name, options.exclude)


def _entries(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name, reverse=True)  # pop() takes the first
    except OSError as e:
        log.warning("%s: cannot list folder (%s); skipped", path, e.strerror or e)
        return []


def _dir_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def iter_files(root: str | os.PathLike, options: ScanOptions | None = None) -> Iterator[str]:
    """Relative POSIX paths of the files to label under `root`, in a stable order."""
    options = options or ScanOptions()
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root}: no such folder")
    seen: set[tuple[int, int]] = set()
    root_id = _dir_id(root)
    if root_id:
        seen.add(root_id)
    # Depth-first with an explicit stack of (folder path, relative prefix, sorted entries).
    stack: list[tuple[str, list[os.DirEntry]]] = [("", _entries(root))]
    while stack:
        prefix, entries = stack[-1]
        if not entries:
            stack.pop()
            continue
        entry = entries.pop()
        name = entry.name
        rel = f"{prefix}{name}"
        try:
            is_dir = entry.is_dir()  # follows links
        except OSError:
            is_dir = False
        if is_dir:
            if not options.recursive or (not options.hidden and name.startswith(".")):
                continue
            if _matches(rel, name, options.exclude):
                continue
            ident = _dir_id(entry.path)
            if ident is None or ident in seen:
                if ident is not None:
                    log.info("%s: folder already walked (symbolic link loop?); skipped", rel)
                continue
            seen.add(ident)
            stack.append((rel + "/", _entries(entry.path)))
            continue
        if is_candidate(rel, name, options):
            yield rel  # special files too: reading them gives an error row
