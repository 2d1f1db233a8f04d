"""Reading the text files of caption sources without surprises.

- `text_lines`: UTF-8 lines with a BOM dropped; a line that is not UTF-8 is a `DataError`
  naming the file, the line and the byte.
- `load_json_text`: one JSON document; nesting too deep, numbers too long and bad bytes are
  `DataError`s naming the file and line, never a traceback.
- `csv_rows`: CSV records with their first line number; an unterminated quote (a field that
  runs over several lines, or text after a closing quote) and an over-long field stop the
  load naming the file and line.
- `image_in_folder`: an image named by a record, refused when the name leaves the folder
  (an absolute path, or `..` climbing out).
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from captioner.data.common import DataError

# A caption is one sentence: a quoted CSV field over this many lines is an unterminated quote
# that swallowed the rows after it.
MAX_FIELD_LINES = 4


def _not_utf8(path: Path, line: int, raw: bytes, e: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
        "save the file as UTF-8"
    )


def text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number, line with its ending) of a UTF-8 text file; a leading BOM is dropped."""
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a generator keeps it open
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, n, raw, e) from None


def parse_json(text: str | bytes) -> Any:
    """`json.loads` whose every failure is a ValueError (RecursionError for deep nesting)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def load_json_text(path: str | os.PathLike) -> Any:
    """One JSON document from a UTF-8 file (BOM allowed)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _not_utf8(path, line, data[data.rfind(b"\n", 0, e.start) + 1 :], e) from None
    try:
        return parse_json(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}:{e.lineno}: malformed line: invalid JSON ({e.msg}, column {e.colno})"
        ) from None
    except ValueError as e:  # nesting, or an integer over Python's digit limit
        raise DataError(f"{path}: malformed JSON ({e})") from None


def csv_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(first line, row dict) of a CSV file with a header row."""
    path = Path(path)
    at = [0]  # the last physical line handed to the csv reader

    def lines() -> Iterator[str]:
        for n, line in text_lines(path):
            at[0] = n
            yield line

    reader = csv.DictReader(lines(), strict=True)
    start = 2  # where the record being read begins (after the header)
    try:
        if not reader.fieldnames:
            raise DataError(f"{path}:1: malformed line: a CSV file needs a header row")
        for row in reader:
            spans = 1 + max((v.count("\n") for v in row.values() if isinstance(v, str)), default=0)
            first = at[0] - spans + 1
            if spans > MAX_FIELD_LINES:
                raise DataError(
                    f"{path}:{first}: malformed line: a quoted field runs over {spans} lines "
                    "(an unterminated quote?)"
                )
            yield first, row
            start = at[0] + 1
    except csv.Error as e:
        raise DataError(
            f"{path}:{start}: malformed line: {e} in the record that starts here and runs to "
            f"line {at[0]} (an unterminated quote?)"
        ) from None


def image_in_folder(root: str | os.PathLike, name: str) -> Path | None:
    """`root/name`, or None when `name` is absolute or climbs out of `root` with `..`."""
    if not name or os.path.isabs(name) or "\0" in name:
        return None
    top = os.path.normpath(root)
    joined = os.path.normpath(os.path.join(top, name))
    if joined == top or not joined.startswith(top.rstrip(os.sep) + os.sep):
        return None
    return Path(root) / name
