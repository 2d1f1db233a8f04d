"""Crash-safe label files: the JSONL journal (exports made from it: `exports.py`).

The JSONL file is the single source of truth: one record per image, appended a batch at a
time with flush + fsync, so an interruption of any kind (Ctrl-C, SIGTERM, SIGKILL, power
loss) loses at most the batch in flight. On resume a torn last line is cut off, unreadable
lines and malformed records (reported with their line numbers; their images are labelled
again) are skipped and moved to `<journal>.rejected` at the next compaction, and a later
record for the same image wins. A record's `path` is trusted only when it is a plain
relative path (no `..`, not absolute). The exports are regenerated from the journal at the
end, each written to a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioner.atomic import fsync_dir
from captioner.labeling.safefiles import (
    JournalError,
    UnsafeFileError,
    open_append,
    output_path,
    read_lines,
    replaced,
)

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
    symbolic link at `path` is followed only into `within` (default: the file's folder), and
    anything but a regular file at `path` is refused (`safefiles.replaced`); `mode_of`: the
    file whose permissions it takes (an export: its journal)."""
    return replaced(path, within=within or Path(path).parent, newline=newline, mode_of=mode_of)


@dataclass
class LoadStats:
    records: int = 0  # readable records
    bad_lines: int = 0  # unreadable lines skipped
    junk_lines: int = 0  # lines of NUL bytes or blanks (power loss), dropped at compaction
    torn_bytes: int = 0  # bytes of an unfinished last line cut off
    duplicates: int = 0  # records superseded by a later one for the same image
    malformed: int = 0  # records of ours with a field of the wrong type: relabelled
    models: set[str] = field(default_factory=set)  # model names found in the records


__all__ = ["JournalError", "Key", "LabelStore", "LoadStats", "UnsafeFileError", "parse_record"]

REPORTED = 20  # malformed records named one by one in the log; the rest are counted


class LabelStore:
    """The append-only JSONL journal of one labeling output.

    `folder_override`: when the journal belongs to one folder (it lives inside it), records
    are keyed by that folder whatever folder they name, so a moved folder resumes.
    """

    def __init__(self, path: str | os.PathLike, *, folder_override: str | None = None):
        self.path = Path(path)
        self.folder_override = folder_override
        self._fd: int | None = None

    @property
    def rejected(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def key(self, record: dict[str, Any]) -> Key:
        return (self.folder_override or str(record.get("folder", "")), str(record["path"]))

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Valid records in file order (unreadable lines and malformed records skipped)."""
        for _, _, line in read_lines(self.path):
            rec = parse_record(line)
            if rec is not None:
                if self.folder_override:
                    rec["folder"] = self.folder_override
                yield rec

    def check_names(self) -> None:
        """Refuse the run before anything is written when the journal or its `.rejected`
        file is a named pipe, a device, a folder, or a link leading out of its folder (a
        planted or dangling link never makes the run write elsewhere)."""
        try:
            self.path = output_path(self.path, self.path.parent)
            output_path(self.rejected, self.path.parent)
        except UnsafeFileError as e:
            raise UnsafeFileError(f"{e}; or write the labels elsewhere (--out)") from None

    def load(self) -> tuple[dict[Key, bool], LoadStats]:
        """Read the journal: key -> labelled without error. Cuts a torn last line off;
        reports malformed records with their line numbers."""
        self.check_names()
        stats = LoadStats()
        done: dict[Key, bool] = {}
        good_end, torn = 0, b""
        for number, _, line in read_lines(self.path):
            if not line.endswith(b"\n"):
                stats.torn_bytes, torn = len(line), line
                break
            good_end += len(line)
            rec, problem = parse_line(line)
            if rec is None:
                if problem is not None:
                    stats.malformed += 1
                    if stats.malformed <= REPORTED:
                        log.warning(
                            "%s line %d: %s; record skipped (the image is labelled again)",
                            self.path, number, problem,
                        )  # fmt: skip
                elif line.strip(b" \t\r\n\0"):
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
        if not (stats.records or stats.malformed) and (stats.bad_lines or foreign_tail):
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
        if stats.malformed > REPORTED:
            log.warning(
                "%s: %d more malformed record(s) skipped", self.path, stats.malformed - REPORTED
            )
        if stats.bad_lines:
            log.warning("%s: skipped %d unreadable line(s)", self.path, stats.bad_lines)
        return done, stats

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records durably (write + fsync) before returning."""
        data = b"".join(dumps_record(r) for r in records)
        if not data:
            return
        if self._fd is None:
            created = not os.path.lexists(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd, self.path = open_append(self.path, self.path.parent)
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
        bad = [line for _, _, line in read_lines(self.path) if not _parse_line_ok(line)]
        if not bad:
            return
        fd, rejected = open_append(self.rejected, self.path.parent)
        with os.fdopen(fd, "ab") as out:
            out.writelines(line if line.endswith(b"\n") else line + b"\n" for line in bad)
        log.warning(
            "%s: %d unreadable line(s) or malformed record(s) moved to %s",
            self.path,
            len(bad),
            rejected.name,
        )

    def compact(self) -> int:
        """Rewrite the journal atomically with one (the last) record per image. Unreadable
        lines and malformed records that are not just NUL bytes (left by a power cut) are
        moved to `<journal>.rejected`, never silently dropped. Returns the records kept."""
        self.close()
        last: dict[Key, int] = {}
        for i, rec in enumerate(self.iter_records()):
            last[self.key(rec)] = i
        self._reject_unreadable()
        kept = 0
        with replaced(self.path, within=self.path.parent, mode="wb") as out:
            for i, rec in enumerate(self.iter_records()):
                if last[self.key(rec)] == i:
                    out.write(dumps_record(rec))
                    kept += 1
        return kept


def _parse_line_ok(line: bytes) -> bool:
    return parse_record(line) is not None or not line.strip(b" \t\r\n\0")


def path_problem(rel: str) -> str | None:
    """Why `rel` (a record's path) cannot name a file inside its folder, or None."""
    if not rel:
        return "empty path"
    if "\0" in rel:
        return "path holds a NUL byte"
    if rel.startswith("/"):
        return f"absolute path {rel!r}"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return f"path {rel!r} is not a plain relative path (. or .. or //)"
    return None


def _is_score(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_scored(x: Any) -> bool:
    return isinstance(x, dict) and isinstance(x.get("label"), str) and _is_score(x.get("score"))


def _optional(rec: dict[str, Any], name: str, ok: Any, what: str) -> str | None:
    value = rec.get(name)
    if value is None or ok(value):
        return None
    text = json.dumps(value, ensure_ascii=True)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{name} is {text}, not {what}"


def record_problem(rec: dict[str, Any]) -> str | None:
    """What makes `rec` (a dict with a str `path`) unusable as a record, or None."""
    problem = path_problem(rec["path"])
    checks = (
        ("folder", lambda v: isinstance(v, str), "a folder name"),
        ("caption", lambda v: isinstance(v, str), "a string"),
        (
            "tags",
            lambda v: isinstance(v, list) and all(_is_scored(t) for t in v),
            'a list of {"label": text, "score": number}',
        ),
        ("sentiment", _is_scored, 'a {"label": text, "score": number}'),
        ("error", lambda v: isinstance(v, str), "a string"),
        ("model", lambda v: isinstance(v, str), "a model name"),
        (
            "translations",
            lambda v: (
                isinstance(v, dict) and all(isinstance(t, str) or t is None for t in v.values())
            ),
            'a {"lang": text} object',
        ),
    )
    for name, ok, what in checks:
        problem = problem or _optional(rec, name, ok, what)
    return problem


def parse_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why the record is malformed), or (None, None) when the
    line is not a record at all (not JSON, not an object with a `path` string)."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
        return None, None
    problem = record_problem(rec)
    return (None, problem) if problem else (rec, None)


def parse_record(line: bytes) -> dict[str, Any] | None:
    """One journal line -> its record, or None when it is not a valid one."""
    return parse_line(line)[0]
