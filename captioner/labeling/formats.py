"""The outputs of `captioner label`, in one table: `FORMATS` maps each format's name to its
`Format`, which says what it writes (for `--help`), the files it writes at fixed names, and
the writer that regenerates it from a journal at the end of a run or of a merge.

Everything that knows the formats reads this table: the `--format` flag's choices and help
text (`captioner.cli.label_flags`), `LabelOptions`' check, the exports (`export`), the
checks on output names before a run and the run's own files (`captioner.labeling.journals`).
A new format is one entry here.

Light on purpose: `captioner label --help` reads it without importing the writers
(`captioner.labeling.exports`, `captioner.labeling.xmp`), which load when a format is written.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from captioner.labeling.journals import Journals
    from captioner.labeling.writers import LabelStore


@dataclass
class ExportProblems:
    count: int = 0  # outputs of single images that could not be written (sidecars)
    errors: list[str] = field(default_factory=list)  # the first few, one line each


@dataclass
class ExportJob:
    """One journal to export: what a format's writer is given."""

    store: LabelStore  # the journal (its rows are the labels)
    folders: list[str]  # the folders whose rows it holds
    roots: set[str]  # the folders of this run (sidecars are written for their images only)
    xmp_naming: str  # "ext" (photo.jpg.xmp) or "stem" (photo.xmp)
    problems: ExportProblems  # single images' outputs that could not be written


def _no_files(journal: Path, folders: list[str]) -> list[Path]:
    return []


@dataclass(frozen=True)
class Format:
    shown: str  # how `--help` names it
    help: str  # what it writes, for `--help`
    write: Callable[[ExportJob], list[str]]  # regenerates it; returns what was written
    # the files at fixed names it writes for a journal and its folders (each written only
    # inside its own folder); per-image files (sidecars) are checked as they are written
    files: Callable[[Path, list[str]], list[Path]] = _no_files
    always: bool = False  # written whatever --format says


def _write_jsonl(job: ExportJob) -> list[str]:
    return [str(job.store.path)]  # the journal itself, appended as images are labelled


def _csv_files(journal: Path, folders: list[str]) -> list[Path]:
    return [journal.with_suffix(".csv")]


def _write_csv(job: ExportJob) -> list[str]:
    from captioner.labeling.exports import write_csv

    store = job.store
    csv_path = store.path.with_suffix(".csv")
    langs = sorted({k for r in store.iter_records() for k in r.get("translations") or ()})
    write_csv(store.iter_records(), csv_path, mode_of=store.path, languages=langs)
    return [str(csv_path)]


def _metadata_files(journal: Path, folders: list[str]) -> list[Path]:
    from captioner.labeling.exports import METADATA_NAME

    return [Path(f) / METADATA_NAME for f in folders]


def _write_metadata(job: ExportJob) -> list[str]:
    from captioner.labeling.exports import METADATA_NAME, write_metadata

    write_metadata(job.store.iter_records(), job.folders, mode_of=job.store.path)
    return [os.path.join(f, METADATA_NAME) for f in job.folders]


def _write_xmp(job: ExportJob) -> list[str]:
    from captioner.labeling.xmp import write_sidecars

    records = (r for r in job.store.iter_records() if r.get("folder") in job.roots)
    stats = write_sidecars(records, naming=job.xmp_naming)
    failed = f", {stats.failed} not written (see the errors)" if stats.failed else ""
    job.problems.count += stats.failed
    job.problems.errors += stats.errors
    return [f"{stats.written} XMP sidecar(s) written, {stats.unchanged} unchanged{failed}"]


FORMATS: dict[str, Format] = {
    "jsonl": Format(
        "DIR/labels.jsonl",
        "one JSON object per image (path, caption, tags, sentiment, error, model); the "
        "resumable journal. --out PATH writes one file instead.",
        _write_jsonl,
        always=True,
    ),
    "csv": Format(
        "--format csv", "labels.csv beside the JSONL (one row per image)", _write_csv, _csv_files
    ),
    "metadata": Format(
        "--format metadata",
        'DIR/metadata.jsonl, read by datasets.load_dataset("imagefolder", data_dir=DIR)',
        _write_metadata,
        _metadata_files,
    ),
    "xmp": Format(
        "--format xmp",
        "XMP sidecars (dc:description + dc:subject) for photo managers",
        _write_xmp,
    ),
}
ALWAYS = tuple(name for name, f in FORMATS.items() if f.always)  # ("jsonl",)


def help_lines() -> list[str]:
    """The formats as `captioner label --help` lists them, one entry each."""
    lines: list[str] = []
    for f in FORMATS.values():
        lines += textwrap.wrap(
            f.help, 90, initial_indent=f"  {f.shown}".ljust(24), subsequent_indent=" " * 24,
            break_long_words=False, break_on_hyphens=False,
        )  # fmt: skip
    return lines


def export(
    journals: Journals,
    roots: list[str],
    formats: tuple[str, ...],
    xmp_naming: str,
    stores: list[LabelStore] | None = None,
    problems: ExportProblems | None = None,
) -> list[str]:
    """Regenerate the `formats` (and those written always) from each journal (or those of
    `stores`), in FORMATS' order; returns what was written. Files whose own output could not
    be written (a sidecar name too long) are added to `problems`, one line each, and the
    export goes on."""
    outputs: list[str] = []
    wanted = set(roots)
    problems = ExportProblems() if problems is None else problems
    for store in journals.stores if stores is None else stores:
        if not store.path.exists():
            continue
        job = ExportJob(store, journals.folders_of[id(store)], wanted, xmp_naming, problems)
        for name, f in FORMATS.items():
            if f.always or name in formats:
                outputs += f.write(job)
    return outputs
