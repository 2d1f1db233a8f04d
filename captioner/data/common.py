"""Shared pieces of the data layer: errors, the bad-data report, the caption schema,
deterministic hash splits, caption clean-up and the cache directory.

Every loader takes `on_error`: "raise" (default) stops at the first bad record with one
`DataError` naming the file and line (or JSON entry) and the problem; "skip" drops the
record, logs it, and counts it in a `DataReport` attached to the returned `DatasetDict`
as `.report`. Nothing bad is ever dropped silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image as PILImage

from captioner.cache import cache_root  # noqa: F401  (re-exported for the loaders)
from captioner.errors import CaptionerError
from captioner.progress import progress_bar

logger = logging.getLogger("captioner.data")

SPLITS = ("train", "validation", "test")
OnError = Literal["raise", "skip"]

# Split names found in the wild -> ours ("restval" is Karpathy's extra COCO training images).
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "restval": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


class DataError(CaptionerError, ValueError):
    """A bad record in a data source; the message names the file, line and problem."""


@dataclass
class Problem:
    """One bad record: what kind, in which file, where in it (line or entry), and why."""

    kind: str  # "missing image" | "unreadable image" | "empty caption" | "malformed line"
    file: str
    where: str | None
    detail: str

    def __str__(self) -> str:
        loc = f"{self.file}:{self.where}" if self.where else self.file
        return f"{loc}: {self.kind}: {self.detail}"


@dataclass
class DataReport:
    """What a loader skipped (with `on_error="skip"`) and other notes about the source."""

    source: str
    skipped: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.skipped))

    def summary(self) -> str:
        parts = [f"{self.source}: skipped {self.num_skipped} bad record(s)"]
        if self.skipped:
            parts.append(", ".join(f"{k}: {n}" for k, n in sorted(self.counts().items())))
        return "; ".join(parts + self.notes)


class Problems:
    """Collects bad records: raises on the first one, or records it when skipping."""

    def __init__(self, source: str, on_error: OnError = "raise"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.on_error = on_error
        self.report = DataReport(source=source)

    def bad(self, kind: str, file: str | os.PathLike, where: Any, detail: str) -> None:
        problem = Problem(kind, str(file), None if where is None else str(where), detail)
        if self.on_error == "raise":
            raise DataError(f"{problem} (pass on_error='skip' to skip bad records)")
        logger.info("skipping %s", problem)
        self.report.skipped.append(problem)

    def note(self, text: str) -> None:
        logger.info("%s: %s", self.report.source, text)
        self.report.notes.append(text)

    def finish(self) -> DataReport:
        if self.report.skipped:
            logger.warning("%s", self.report.summary())
        return self.report


def image_problem(path: Path) -> tuple[str, str] | None:
    """(kind, detail) when `path` is not a readable image, else None. Reads the header only."""
    if not path.is_file():
        return "missing image", f"no image file {path}"
    try:
        with PILImage.open(path) as img:
            img.size  # noqa: B018 - the header parse is the check
    except Exception as e:  # PIL raises many kinds for bad files
        return "unreadable image", f"cannot read image {path} ({type(e).__name__}: {e})"
    return None


_TYPOGRAPHIC = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": " - ",
        "\u2014": " - ",
        "\u2015": " - ",
        "\u2026": "...",
        "\u00a0": " ",
    }
)
_SPACES = re.compile(r"\s+")
_CONTROLS = re.compile("[\x00-\x1f\x7f]")  # NUL and other control characters


def clean_caption(text: str) -> str:
    """NFC-normalise, map typographic quotes/dashes/ellipses to ASCII, turn control
    characters (NUL ...) into spaces, collapse spaces."""
    text = unicodedata.normalize("NFC", text).translate(_TYPOGRAPHIC)
    return _SPACES.sub(" ", _CONTROLS.sub(" ", text)).strip()


def hash_split(key: str, *, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic split of `key`: the same key always lands in the same split."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "validation" if u < fractions[0] + fractions[1] else "test"


def normalise_split(name: str) -> str | None:
    return SPLIT_ALIASES.get(str(name).strip().lower())


def caption_features():
    from datasets import Features, Image, List, Value

    return Features(
        {"image": Image(), "captions": List(Value("string")), "image_id": Value("string")}
    )


@dataclass
class CaptionRecord:
    image: str | bytes  # a file path, or encoded image bytes
    captions: list[str]
    image_id: str


def build_caption_dict(records: dict[str, list[CaptionRecord]], report: DataReport):
    """Records by split -> DatasetDict with train/validation/test (empty where none)."""
    from datasets import Dataset, DatasetDict

    features = caption_features()
    out = DatasetDict()
    for split in [*SPLITS, *(s for s in records if s not in SPLITS)]:
        rows = records.get(split, [])
        images = [
            {"bytes": r.image, "path": None}
            if isinstance(r.image, bytes)
            else {"bytes": None, "path": str(r.image)}
            for r in rows
        ]
        out[split] = Dataset.from_dict(
            {
                "image": images,
                "captions": [r.captions for r in rows],
                "image_id": [r.image_id for r in rows],
            },
            features=features,
        )
    out.report = report
    return out


def progress(iterable: Iterable, *, enabled: bool, desc: str, total: int | None = None):
    """A progress bar over `iterable` when `enabled` (the CLI), else the iterable itself."""
    if not enabled:
        return iterable
    return progress_bar(iterable, desc=desc, total=total, unit="item", enabled=True)


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars inside (saving, mapping): internal steps that show their
    own progress, or none."""
    import datasets

    was_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_off:
            datasets.enable_progress_bars()
