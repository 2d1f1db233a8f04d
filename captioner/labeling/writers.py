"""Crash-safe label files: the JSONL journal (exports made from it: `exports.py`).

The JSONL file is the single source of truth: one record per image, appended a batch at a
time with flush + fsync, so an interruption of any kind (Ctrl-C, SIGTERM, SIGKILL, power
loss) loses at most the batch in flight. On resume a torn last line is cut off, unreadable
lines are skipped (and dropped at the next compaction), and a later record for the same image
wins. The exports are regenerated from the journal at the end, each written to a temporary
file and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioner.atomic import FILE_MODE, UnsafePathError, atomic_write, fsync_dir, safe_target
from captioner.errors import CaptionerError

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (folder, path relative to it)


def dumps_record(record: dict[str, Any]) -> bytes:
    """One JSON line. Names that are not valid UTF-8 (surrogate escapes) are \\u-escaped."""
    try:
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")


def atomic_writer(
    path: Path, *, newline: str | None = None, within: Path | None = None, mode_of=None
):
    """A text file written to a temporary sibling, fsynced, then renamed over `path`; a
    symbolic link at `path` is followed only into `within` (default: the file's folder);
    `mode_of`: the file whose permissions it takes (an export: its journal)."""
    return atomic_write(path, within=within or Path(path).parent, newline=newline, mode_of=mode_of)


@dataclass
class LoadStats:
    records: int = 0  # readable records
    bad_lines: int = 0  # unreadable lines skipped
    junk_lines: int = 0  # lines of NUL bytes or blanks (power loss), dropped at compaction
    torn_bytes: int = 0  # bytes of an unfinished last line cut off
    duplicates: int = 0  # records superseded by a later one for the same image
    models: set[str] = field(default_factory=set)  # model names found in the records


class JournalError(CaptionerError, ValueError):
    """The journal file exists but is not a captioner labels file."""


class LabelStore:
    """The append-only JSONL journal of one labeling output.

    `folder_override`: when the journal belongs to one folder (it lives inside it), records
    are keyed by that folder whatever folder they name, so a moved folder resumes.
    """

    def __init__(self, path: str | os.PathLike, *, folder_override: str | None = None):
        self.path = Path(path)
        self.folder_override = folder_override
        self._fd: int | None = None

    def key(self, record: dict[str, Any]) -> Key:
        return (self.folder_override or str(record.get("folder", "")), str(record["path"]))

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Readable records in file order (unreadable lines skipped)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for line in f:
                rec = parse_record(line)
                if rec is not None:
                    if self.folder_override:
                        rec["folder"] = self.folder_override
                    yield rec

    def _follow_link(self) -> None:
        """A journal that is a symbolic link is used only when it points inside its folder
        (a planted or dangling link never makes the run write elsewhere)."""
        try:
            self.path = safe_target(self.path, self.path.parent)
        except UnsafePathError as e:
            raise JournalError(
                f"{e}; remove the link or write the labels elsewhere (--out)"
            ) from None

    def load(self) -> tuple[dict[Key, bool], LoadStats]:
        """Read the journal: key -> labelled without error. Cuts a torn last line off."""
        self._follow_link()
        stats = LoadStats()
        done: dict[Key, bool] = {}
        if not self.path.exists():
            return done, stats
        good_end, torn = 0, b""
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    stats.torn_bytes, torn = len(line), line
                    break
                good_end += len(line)
                rec = parse_record(line)
                if rec is None:
                    if line.strip(b" \t\r\n\0"):
                        stats.bad_lines += 1
                    else:
                        stats.junk_lines += int(len(line) > 1)  # NULs / blanks: power cut
                    continue
                k = self.key(rec)
                stats.records += 1
                stats.duplicates += int(k in done)
                done[k] = rec.get("error") is None
                stats.models.add(str(rec.get("model")))
        foreign_tail = torn.strip(b" \t\r\n\0") and not torn.startswith(b'{"path"')
        if not stats.records and (stats.bad_lines or foreign_tail):
            raise JournalError(
                f"{self.path} exists but is not a captioner labels file; move it away or "
                "write the labels elsewhere (--out)"
            )
        if stats.torn_bytes:
            log.warning(
                "%s: dropped an unfinished last line (%d bytes) left by an interrupted run",
                self.path,
                stats.torn_bytes,
            )
            os.truncate(self.path, good_end)
        if stats.bad_lines:
            log.warning("%s: skipped %d unreadable line(s)", self.path, stats.bad_lines)
        return done, stats

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records durably (write + fsync) before returning."""
        data = b"".join(dumps_record(r) for r in records)
        if not data:
            return
        if self._fd is None:
            self._follow_link()
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            if created:
                fsync_dir(self.path.parent)
        start = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as e:
            try:
                os.ftruncate(self._fd, start)  # no torn line: the journal stays as it was
            except OSError:
                pass
            raise OSError(
                e.errno,
                f"{e.strerror}; every label saved before this batch is intact in the journal: "
                "fix the problem (free some space) and run the same command again to resume",
                str(self.path),
            ) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _reject_unreadable(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            bad = [line for line in f if not _parse_line_ok(line)]
        if bad:
            rejected = self.path.with_name(self.path.name + ".rejected")
            with open(rejected, "ab") as out:
                out.writelines(line if line.endswith(b"\n") else line + b"\n" for line in bad)
            log.warning("%s: %d unreadable line(s) moved to %s", self.path, len(bad), rejected.name)

    def compact(self) -> int:
        """Rewrite the journal atomically with one (the last) record per image. Unreadable
        lines that are not just NUL bytes (left by a power cut) are moved to
        `<journal>.rejected`, never silently dropped. Returns the number of records kept."""
        self.close()
        last: dict[Key, int] = {}
        for i, rec in enumerate(self.iter_records()):
            last[self.key(rec)] = i
        self._reject_unreadable()
        kept = 0
        with atomic_write(self.path, "wb") as out:
            for i, rec in enumerate(self.iter_records()):
                if last[self.key(rec)] == i:
                    out.write(dumps_record(rec))
                    kept += 1
        return kept


def _parse_line_ok(line: bytes) -> bool:
    return parse_record(line) is not None or not line.strip(b" \t\r\n\0")


def parse_record(line: bytes) -> dict[str, Any] | None:
    """One journal line -> its record, or None when it is not one."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
        return None
    return rec
