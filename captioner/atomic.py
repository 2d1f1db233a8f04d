"""The one way the package replaces a file: write a fresh temporary sibling, fsync, rename.
(Also the one way it opens a file that must be a regular file: `open_for_reading`.)

The temporary file is created by `tempfile.mkstemp` (`O_CREAT | O_EXCL`, an unpredictable
name, mode 0600) in the target's own folder, so a link planted at a guessable name is never
followed and the rename stays on one file system. The final file gets the mode a new file of
this user gets (0644 under the usual umask), whatever mkstemp chose, or the mode of the file
it replaces. A symbolic link at the final name is followed only when it resolves inside
`within` (when given); otherwise the write is refused with `UnsafePathError`. Errors (a full
disk, a read-only folder) name the file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from captioner.errors import CaptionerError

TMP_SUFFIX = ".tmp"


class UnsafePathError(CaptionerError, OSError):
    """A write target is a symbolic link that leads outside the folder it belongs to."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask() & 0o644  # what open(..., "w") gives, never group/world write


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` (links resolved) lies in `folder` (links resolved)."""
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def safe_target(path: str | os.PathLike, within: str | os.PathLike | None) -> Path:
    """`path`, or what a symbolic link at `path` points to when that lies inside `within`."""
    path = Path(path)
    if not path.is_symlink():
        return path
    if within is not None and is_inside(path, within):
        return Path(os.path.realpath(path))
    where = f"outside {within}" if within is not None else "elsewhere"
    raise UnsafePathError(
        f"{path}: is a symbolic link to {os.path.realpath(path)} ({where}); not written through it"
    )


def fsync_dir(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def named(e: OSError, path: Path) -> OSError:
    """`e` with `path` in its message (a bare os.write error does not say which file)."""
    if e.filename is not None or isinstance(e, UnsafePathError):
        return e
    return type(e)(e.errno, e.strerror or str(e), str(path))


SHORT_NAME = 200  # bytes of a name kept whole in its temporary file's name (NAME_MAX: 255)


def temp_prefix(name: str) -> str:
    """The prefix of `name`'s temporary files: `.NAME.`, or for a name too long to carry
    inside another (NAME_MAX), its first bytes: `.NA~.EXT.`."""
    raw = os.fsencode(name)
    if len(raw) <= SHORT_NAME:
        return f".{name}."
    ext = os.path.splitext(name)[1]
    return f".{os.fsdecode(raw[:150])}~{ext}."


@contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    *,
    within: str | os.PathLike | None = None,
    newline: str | None = None,
    mode_of: str | os.PathLike | None = None,
    check: Callable[[str | os.PathLike, str | os.PathLike | None], Path] = safe_target,
    errors: str = "surrogateescape",
) -> Iterator[IO[Any]]:
    """Yield a file (text "w" in UTF-8, or binary "wb") that replaces `path` when the block
    ends without error; on error `path` is untouched and the temporary file is removed.
    `mode_of`: a file whose permissions the new file takes (exports take the journal's).
    `check(path, within)`: the name as it may be written, or an error (default
    `safe_target`; the labeller's outputs use the stricter `safefiles.output_path`); it
    runs before the write and again just before the rename. `errors`: how text that is not
    UTF-8 is written ("surrogateescape" gives back the bytes a name was read with)."""
    target = check(path, within)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=temp_prefix(target.name), suffix=TMP_SUFFIX
        )
    except OSError as e:
        raise named(e, target) from None
    try:
        os.fchmod(fd, mode_for(target, mode_of))
        if "b" in mode:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding="utf-8", errors=errors, newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check(target, within)  # still nothing, or what may be replaced, at the name
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as e:
        raise named(e, target) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def mode_for(target: Path, mode_of: str | os.PathLike | None) -> int:
    """`mode_of`'s permissions, else those of the file replaced (one made private stays
    private), else a new file's."""
    for source in (mode_of, target):
        if source is not None:
            try:
                return stat.S_IMODE(os.stat(source).st_mode)
            except OSError:
                continue
    return FILE_MODE


def write_bytes_atomic(
    path: str | os.PathLike, data: bytes, *, within: str | os.PathLike | None = None
) -> None:
    with atomic_write(path, "wb", within=within) as f:
        f.write(data)


def stale_temp_files(folder: str | os.PathLike, name: str) -> list[Path]:
    """Temporary files `atomic_write` left for `folder/name` when its process was killed."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    prefix = f".{name}."
    return [Path(folder, e) for e in entries if e.startswith(prefix) and e.endswith(TMP_SUFFIX)]


def remove_stale(paths: list[Path]) -> int:
    removed = 0
    for p in paths:
        try:
            if p.is_symlink() or not p.is_dir():
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


SPECIAL_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}


def kind_of(mode: int) -> str | None:
    """None for a regular file, else what it is ("a named pipe", ...)."""
    if stat.S_ISREG(mode):
        return None
    return SPECIAL_KINDS.get(stat.S_IFMT(mode), "a special file")


def open_for_reading(path: str | os.PathLike) -> tuple[int, os.stat_result]:
    """(fd, its stat) of `path` opened read-only without blocking: a named pipe put at the
    name cannot hang the caller, who checks `kind_of(st.st_mode)` before reading."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
