"""Texts for `captioner sentiment` / `translate`: one a line from a file or stdin, read
within a byte budget, as UTF-8, with every problem a one-line `TextInputError`.

`--file /dev/zero`, a binary file, a file of blank lines or an empty pipe each end with one
line on stderr and exit status 2, never a MemoryError, a traceback or silence.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from captioner.errors import CaptionerError

MAX_TEXT_BYTES = 32 * 1024 * 1024  # the most text one command reads (about 300k captions)
MAX_TEXT_CHARS = 100_000  # one text: a long review fits; a 1 MB line took 40 s to translate
_CHUNK = 1 << 20


class TextInputError(CaptionerError, ValueError):
    """Texts that cannot be read: too large, not UTF-8 text, or none at all."""


def read_bounded(stream: BinaryIO, *, name: str, limit: int | None = None) -> bytes:
    """At most `limit` (default `MAX_TEXT_BYTES`) bytes of `stream`; more is a
    `TextInputError`."""
    limit = MAX_TEXT_BYTES if limit is None else limit
    parts, size = [], 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TextInputError(
                f"{name}: more than {limit / (1024 * 1024):g} MiB of text; split it into "
                "smaller inputs"
            )


def decode_lines(data: bytes, *, name: str) -> list[str]:
    """The non-blank lines of UTF-8 `data`, stripped; binary data is a `TextInputError`."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise TextInputError(f"{name}: binary data (a NUL byte at offset {nul}), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextInputError(f"{name}: not UTF-8 text (byte offset {e.start})") from None
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            lines.append(check_length(line.strip(), f"{name}: line {n}"))
    return lines


def check_length(text: str, where: str) -> str:
    """`text` when it has at most `MAX_TEXT_CHARS` characters, else a `TextInputError`."""
    if len(text) > MAX_TEXT_CHARS:
        raise TextInputError(
            f"{where} has {len(text):,} characters, above the {MAX_TEXT_CHARS:,} of one text"
        )
    return text


def read_lines(path: str, *, stdin: object = None, what: str = "texts") -> list[str]:
    """The non-blank lines of file `path` (`-`: `stdin`, text or binary). None at all is a
    `TextInputError` saying so, naming the file (or stdin) and `what` was wanted."""
    if path == "-":
        name = "stdin"
        buffer = getattr(stdin, "buffer", None)
        if buffer is not None:
            data = read_bounded(buffer, name=name)
        else:  # a text stream (tests, embedding callers)
            text = stdin.read(MAX_TEXT_BYTES + 1)  # type: ignore[union-attr]
            if len(text) > MAX_TEXT_BYTES:
                raise TextInputError(f"{name}: more than {MAX_TEXT_BYTES} characters of text")
            data = text.encode("utf-8", "surrogateescape")
    else:
        name = f"--file {path}"
        if os.path.isdir(path):
            raise TextInputError(f"{name}: is a folder, not a text file")
        try:
            with open(path, "rb") as f:
                data = read_bounded(f, name=name)
        except OSError as e:
            raise TextInputError(f"{name}: cannot read ({e.strerror or e})") from None
    lines = decode_lines(data, name=name)
    if not lines:
        state = "empty" if not data else "only blank lines"
        raise TextInputError(f"{name}: no {what} ({state})")
    return lines
