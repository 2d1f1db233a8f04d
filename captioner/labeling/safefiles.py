"""Where the labeller may write, how it reads back what it wrote, and how it prints names.

Rules (every file `captioner label` writes or appends to: the journal, `*.rejected`, the
exports, the sidecars, shard settings, their temporary files):
- it lies inside its folder (`within`: the labelled folder, or the `--out` file's folder)
  once links are resolved: a symbolic link at the name, or a linked sub-folder on the way,
  that leads elsewhere is refused;
- what is at the name is a regular file or nothing: a named pipe, a device, a socket or a
  folder is refused (`UnsafeFileError`), never opened for writing, unlinked or replaced.
Reads never block (a named pipe is refused at once) and hold at most one line of
`MAX_LINE` bytes: a longer line is refused with its line number (a sparse file of NUL
bytes, a device), never read into memory whole.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, BinaryIO

from captioner.atomic import (  # noqa: F401 (temp_prefix: the labeller's name for it too)
    FILE_MODE,
    TMP_SUFFIX,
    atomic_write,
    is_inside,
    kind_of,
    named,
    temp_prefix,
)
from captioner.errors import CaptionerError

MAX_LINE = 1 << 20  # a journal record is a few hundred bytes


class JournalError(CaptionerError, ValueError):
    """A labels file the labeller cannot use (not a labels journal, busy, refused)."""


class UnsafeFileError(JournalError):
    """An output name holds something that is not a regular file, or leads outside its
    folder; or a file read is not one the labeller can read (not regular, a huge line)."""


def _blocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)


def _not_regular(path: Path, kind: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{shown(str(path))}: is {kind}, not a regular file; refused (move it away or choose "
        "another name)"
    )


def output_path(path: str | os.PathLike, within: str | os.PathLike | None) -> Path:
    """`path` as it may be written: refuses a name whose folder (links resolved) is outside
    `within`, a symbolic link leading outside `within` (one inside is resolved), and a name
    holding anything but a regular file. Other errors (a name too long) are `OSError`."""
    path = Path(path)
    if within is not None and not is_inside(path.parent, within):
        raise UnsafeFileError(
            f"{shown(str(path))}: its folder leads outside {shown(str(within))} (a linked "
            "folder); not written there"
        )
    if path.is_symlink():
        real = os.path.realpath(path)
        if within is None or not is_inside(path, within):
            where = f"outside {shown(str(within))}" if within is not None else "elsewhere"
            raise UnsafeFileError(
                f"{shown(str(path))}: is a symbolic link to {shown(real)} ({where}); not "
                "written through it (remove the link)"
            )
        path = Path(real)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFileError(f"{shown(str(path))}: symbolic link loop; remove it") from None
        raise
    kind = kind_of(st.st_mode)
    if kind is not None:
        raise _not_regular(path, kind)
    return path


def open_append(path: str | os.PathLike, within: str | os.PathLike | None) -> tuple[int, Path]:
    """(fd, path) of `path` opened for appending (created when missing), after
    `output_path`'s checks; a pipe swapped in meanwhile is refused, never waited on."""
    target = output_path(path, within)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, FILE_MODE)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ELOOP):  # a pipe without reader / a link
            raise UnsafeFileError(
                f"{shown(str(target))}: not a regular file ({e.strerror}); refused"
            ) from None
        raise
    kind = kind_of(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise _not_regular(target, kind)
    _blocking(fd)
    return fd, target


def open_read(path: str | os.PathLike) -> BinaryIO | None:
    """`path` opened for reading (links followed), None when there is nothing at the name;
    a named pipe or device is refused at once (`UnsafeFileError`)."""
    try:  # a device is not even opened (opening one can act: a tape rewinds)
        kind = kind_of(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    if kind is not None:
        raise _not_regular(Path(path), kind)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise _not_regular(Path(path), kind)
        _blocking(fd)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_lines(path: str | os.PathLike, limit: int = MAX_LINE) -> Iterator[tuple[int, int, bytes]]:
    """(line number from 1, byte offset, line with its newline) of a regular file; the last
    line may lack its newline (a torn write). A line longer than `limit` raises
    `UnsafeFileError`."""
    f = open_read(path)
    if f is None:
        return
    with f:
        number, offset = 0, 0
        while line := f.readline(limit + 1):
            number += 1
            if len(line) > limit:
                raise UnsafeFileError(
                    f"{shown(str(path))}: line {number} (from byte {offset}) is longer than "
                    f"{limit >> 20} MiB: not a captioner labels file (damaged?); move it away "
                    "or write the labels elsewhere (--out)"
                )
            yield number, offset, line
            offset += len(line)


def read_head(path: str | os.PathLike, size: int) -> bytes | None:
    """The first `size` bytes of a regular file (None when missing); never blocks."""
    f = open_read(path)
    if f is None:
        return None
    with f:
        return f.read(size)


def stale_temps(folder: str | os.PathLike, name: str) -> list[Path]:
    """Temporary files (regular files or links only) a killed write of `folder/name` left."""
    prefix = temp_prefix(name)
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return [
        Path(folder, e)
        for e in entries
        if e.startswith(prefix) and e.endswith(TMP_SUFFIX) and removable(Path(folder, e))
    ]


def removable(path: Path) -> bool:
    """Whether a leftover temporary file may be removed: a regular file or a link, never a
    pipe, a device or a folder put at such a name."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def replaced(
    path: str | os.PathLike,
    *,
    within: str | os.PathLike | None,
    mode: str = "w",
    newline: str | None = None,
    mode_of: str | os.PathLike | None = None,
) -> AbstractContextManager[IO[Any]]:
    """`atomic.atomic_write` with the labeller's rules: `output_path`'s checks (before the
    write and again just before the rename), and a name that is not UTF-8 written with
    backslashes, so it cannot make the file unreadable as UTF-8. `mode_of`: the file whose
    permissions it takes (an export: its journal)."""
    return atomic_write(path, mode, within=within, newline=newline, mode_of=mode_of,
                        check=output_path, errors="backslashreplace")  # fmt: skip


def write_replacing(
    path: str | os.PathLike, data: bytes, *, within: str | os.PathLike | None
) -> None:
    with replaced(path, within=within, mode="wb") as f:
        f.write(data)


def shown(text: str) -> str:
    """`text` safe to print on a terminal: control characters (escape sequences), bidi
    overrides and bytes that are not UTF-8 (surrogate escapes) appear as `\\x1b`,
    `\\u202e`, `\\xe9`."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape of a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x100:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def utf8_name(name: str) -> str | None:
    """`name` when it is valid UTF-8 text (no surrogate escapes), else None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return name


def readable_text(text: str) -> str:
    """`text` with bytes that are not UTF-8 written `\\xe9` (for CSV cells)."""
    if utf8_name(text) is not None:
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no byte's escape
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
