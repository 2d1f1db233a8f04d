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
- the labeler's own outputs (`labels.jsonl`, `labels.csv`, `metadata.jsonl` and the
  `.orig` copies of foreign ones, sidecars, lock and temporary files) are never candidates,
  whatever `include` says; nor are the files of `own` (`OwnOutputs`: the run's journal and
  exports wherever `--out` puts them, whatever their names).
- folders deeper than PATH_MAX are listed too (opened one level at a time), so the files
  in them get an error row instead of vanishing from the run.

Entries are sorted by name in each folder, so runs are reproducible; memory holds the
listings of the folders on the current path only (never the whole tree).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from captioner.imageio import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

OWN_OUTPUT_SUFFIXES = (".xmp", ".jsonl", ".csv", ".tmp", ".lock", ".rejected")
KEPT_FOREIGN = re.compile(r".*\.(jsonl|csv)\.orig\d*")  # metadata.jsonl.orig, labels.csv.orig2
try:
    PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
except (OSError, ValueError, AttributeError):
    PATH_MAX = 4096
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class OwnOutputs:
    """Files a run writes, never labelled whatever their names (`--out DIR/zz.jpg`): their
    names, and their paths with links resolved."""

    names: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()

    @classmethod
    def of(cls, paths: Iterable[str | os.PathLike]) -> OwnOutputs:
        paths = [os.fspath(p) for p in paths]
        return cls(
            frozenset(os.path.basename(p) for p in paths),
            frozenset(os.path.realpath(p) for p in paths),
        )

    def __contains__(self, path: str) -> bool:
        return os.path.basename(path) in self.names and os.path.realpath(path) in self.paths


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
    if name.lower().endswith(OWN_OUTPUT_SUFFIXES) or KEPT_FOREIGN.fullmatch(name.lower()):
        return False
    if options.include:
        chosen = _matches(rel, name, options.include)
    else:
        chosen = os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
    return chosen and not _matches(rel, name, options.exclude)


Entry = tuple[str, bool, "tuple[int, int] | None"]  # name, is a folder (links followed), id


def _open_dir(root: str, rel: str) -> int:
    """A descriptor of folder `root/rel`; a path too long for one open (PATH_MAX) is
    opened one folder at a time."""
    path = os.path.join(root, rel) if rel else root
    if len(os.fsencode(path)) < PATH_MAX - 1:
        return os.open(path, DIR_FLAGS)
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in rel.split("/"):
            if part:
                inner = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _entries(root: str, rel: str) -> list[Entry]:
    """The entries of folder `root/rel`, sorted by name, last first (pop() takes the first)."""
    where = os.path.join(root, rel) if rel else root
    try:
        fd = _open_dir(root, rel)
    except OSError as e:
        log.warning("%s: cannot list folder (%s); skipped", where, e.strerror or e)
        return []
    entries: list[Entry] = []
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()  # follows links
                    st = entry.stat() if is_dir else None
                except OSError:
                    is_dir, st = False, None
                entries.append((entry.name, is_dir, (st.st_dev, st.st_ino) if st else None))
    except OSError as e:
        log.warning("%s: cannot list folder (%s); skipped", where, e.strerror or e)
        return []
    finally:
        os.close(fd)
    return sorted(entries, key=lambda e: e[0], reverse=True)


def _dir_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def iter_files(
    root: str | os.PathLike, options: ScanOptions | None = None, own: OwnOutputs | None = None
) -> Iterator[str]:
    """Relative POSIX paths of the files to label under `root`, in a stable order; `own`:
    the run's output files, never yielded."""
    options = options or ScanOptions()
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root}: no such folder")
    seen: set[tuple[int, int]] = set()
    root_id = _dir_id(root)
    if root_id:
        seen.add(root_id)
    # Depth-first with an explicit stack of (relative prefix, sorted entries).
    stack: list[tuple[str, list[Entry]]] = [("", _entries(root, ""))]
    while stack:
        prefix, entries = stack[-1]
        if not entries:
            stack.pop()
            continue
        name, is_dir, ident = entries.pop()
        rel = f"{prefix}{name}"
        if is_dir:
            if not options.recursive or (not options.hidden and name.startswith(".")):
                continue
            if _matches(rel, name, options.exclude):
                continue
            if ident is None or ident in seen:
                if ident is not None:
                    log.info("%s: folder already walked (symbolic link loop?); skipped", rel)
                continue
            seen.add(ident)
            stack.append((rel + "/", _entries(root, rel)))
            continue
        if is_candidate(rel, name, options):
            if own is not None and name in own.names and os.path.join(root, rel) in own:
                continue
            yield rel  # special files too: reading them gives an error row
