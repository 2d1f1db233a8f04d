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
from pathlib import Path

from captioner.atomic import FILE_MODE
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
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # --out into a new folder
            return os.open(self.path, flags, FILE_MODE)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise JournalError(f"{self.path}: is a symbolic link; remove it") from None
            raise OSError(
                e.errno, f"cannot create the lock file ({e.strerror})", str(self.path)
            ) from None

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
            os.unlink(self.path)  # still holding the lock: see `acquire`
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> JournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
