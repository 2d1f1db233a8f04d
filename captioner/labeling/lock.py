"""One labeling run per journal: an exclusive `flock` on `.labels.jsonl.lock` beside it.

The lock is held from before the journal is read until after it is compacted and the exports
are written, so two runs on one folder never append to, or replace, one journal at the same
time: the second says which process holds the folder and stops (exit 2), or waits for it
(`--wait`). The lock file holds the owner's pid and is removed when the run ends; one left by
a killed run is harmless (a lock dies with its process) and is reused.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from pathlib import Path

from captioner.atomic import FILE_MODE, kind_of
from captioner.labeling.safefiles import UnsafeFileError, shown
from captioner.labeling.writers import JournalError

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


class FolderBusyError(JournalError):
    """Another run holds the journal's lock."""


def lock_path(journal: str | os.PathLike) -> Path:
    journal = Path(journal)
    return journal.with_name(f".{journal.name}{LOCK_SUFFIX}")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "another process"
    return f"process {pid}" if pid.isdigit() else "another process"


class JournalLock:
    """`with JournalLock(journal, wait=False):` holds the journal for one run."""

    def __init__(self, journal: str | os.PathLike, *, wait: bool = False):
        self.journal = Path(journal)
        self.path = lock_path(journal)
        self.wait = wait
        self._fd: int | None = None

    def _open(self) -> int:
        """The lock file, opened; a pipe, device or folder at its name is refused (never
        written to, never removed)."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:  # a device is not even opened (opening one can act: a tape rewinds)
            mode = os.lstat(self.path).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISLNK(mode) and kind_of(mode) is not None:
            raise UnsafeFileError(
                f"{shown(str(self.path))}: is {kind_of(mode)}, not a lock file; refused (remove it)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # --out into a new folder
            fd = os.open(self.path, flags, FILE_MODE)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise JournalError(
                    f"{shown(str(self.path))}: is a symbolic link; remove it"
                ) from None
            if e.errno in (errno.EISDIR, errno.ENXIO):
                raise UnsafeFileError(
                    f"{shown(str(self.path))}: not a regular file ({e.strerror}); remove it"
                ) from None
            raise OSError(
                e.errno, f"cannot create the lock file ({e.strerror})", str(self.path)
            ) from None
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise UnsafeFileError(
                f"{shown(str(self.path))}: is {kind}, not a lock file; refused (remove it)"
            )
        return fd

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(self.path)
        if not self.wait:
            os.close(fd)
            raise FolderBusyError(
                f"{self.journal}: another captioner label run ({holder}) is writing to this "
                "journal; let it finish, or pass --wait to wait for it"
            )
        log.warning("%s: waiting for the run of %s to finish (--wait)", self.journal, holder)
        fcntl.flock(fd, fcntl.LOCK_EX)

    def acquire(self) -> None:
        while True:
            fd = self._open()
            self._lock(fd)
            # The previous holder removes the file when it ends: hold the lock on the file
            # that is at the name now, or two runs could each lock a different one.
            try:
                current = os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # still holding the lock (see `acquire`); only the file this run locked
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> JournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
