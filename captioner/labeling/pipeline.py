"""Label every image under folders: stream, decode in workers, infer in batches, journal.

`label_folders(folders, engine, options)` resumes from the JSONL journal (images already
labelled are skipped), appends each batch durably, and at the end regenerates the CSV,
`metadata.jsonl` and XMP sidecars from the journal. Originals are only ever read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioner.imageio import MAX_PIXELS
from captioner.labeling.engine import LabelEngine
from captioner.labeling.exports import remove_stale_temp_files, write_csv, write_metadata
from captioner.labeling.loader import FolderBatches, Key, iter_todo, make_loader
from captioner.labeling.lock import JournalLock
from captioner.labeling.scan import ScanOptions
from captioner.labeling.writers import LabelStore
from captioner.labeling.xmp import NAMINGS, write_sidecars
from captioner.progress import progress_bar

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "metadata", "xmp")
JOURNAL_NAME = "labels.jsonl"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 3, 130


class Interrupted(Exception):
    """Raised (e.g. from a SIGTERM handler) to stop a run cleanly."""


@dataclass
class LabelOptions:
    out: str | os.PathLike | None = None  # one JSONL for all folders; None: DIR/labels.jsonl
    formats: tuple[str, ...] = ("jsonl",)  # any of FORMATS; jsonl is always written
    xmp_naming: str = "ext"  # "ext": photo.jpg.xmp, "stem": photo.xmp
    overwrite: bool = False  # start over instead of resuming
    retry_failed: bool = False  # try files that failed in an earlier run again
    batch_size: int = 32
    workers: int | None = None  # decoding processes; None: automatic
    scan: ScanOptions = field(default_factory=ScanOptions)
    max_pixels: int = MAX_PIXELS
    progress: bool = False
    wait: bool = False  # wait for another run holding a journal instead of stopping

    def __post_init__(self) -> None:
        unknown = set(self.formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {FORMATS}")
        if self.xmp_naming not in NAMINGS:
            raise ValueError(f"XMP naming must be one of {NAMINGS}, got {self.xmp_naming!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.out is not None:
            name = Path(self.out).name.lower()
            if name == "metadata.jsonl" or name.endswith((".csv", ".xmp")):
                raise ValueError(
                    f"--out {self.out}: the JSONL journal needs its own name (such as "
                    "labels.jsonl); CSV and metadata.jsonl are written beside it"
                )


@dataclass
class LabelSummary:
    total: int = 0  # files selected in the folders
    labelled: int = 0  # labelled in this run
    failed: int = 0  # failed in this run (an error row was written)
    skipped: int = 0  # labelled by an earlier run
    previously_failed: int = 0  # failed in an earlier run, not retried
    seconds: float = 0.0
    interrupted: bool = False
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first few error messages

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed or self.previously_failed else EXIT_OK

    @property
    def rate(self) -> float:
        return (self.labelled + self.failed) / self.seconds if self.seconds > 0 else 0.0


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(todo: int, batch_size: int) -> int:
    """Decoding processes: none for a single batch, else one per spare core (1 to 4)."""
    if todo <= batch_size:
        return 0  # one batch: starting a process costs more than it saves
    return max(1, min(4, usable_cpus() - 1))


class _Journals:
    """The JSONL store(s) of a run and which folder writes to which."""

    def __init__(self, folders: list[str], out: str | os.PathLike | None):
        if out is not None:
            one = LabelStore(Path(out), folder_override=folders[0] if len(folders) == 1 else None)
            self.stores = [one]
            self.of_folder = {f: one for f in folders}
            self.folders_of = {id(one): folders}
        else:
            self.stores = [LabelStore(Path(f) / JOURNAL_NAME, folder_override=f) for f in folders]
            self.of_folder = dict(zip(folders, self.stores))
            self.folders_of = {id(s): [f] for f, s in zip(folders, self.stores)}
        self.dirty: set[int] = set()  # stores that need compaction
        self.models: set[str] = set()  # model names in the journals

    def load(self, overwrite: bool) -> dict[Key, bool]:
        done: dict[Key, bool] = {}
        for store in self.stores:
            d, stats = store.load()  # raises JournalError for a file that is not ours
            if overwrite and store.path.exists():
                store.path.unlink()
                d, stats = store.load()
            if stats.bad_lines or stats.junk_lines or stats.duplicates:
                self.dirty.add(id(store))
            self.models |= stats.models
            if len(stats.models) > 1:
                log.warning(
                    "%s holds labels from several models: %s",
                    store.path,
                    ", ".join(sorted(stats.models)),
                )
            done.update(d)
        return done

    def close(self) -> None:
        for store in self.stores:
            store.close()
            if id(store) in self.dirty:
                store.compact()


def label_folders(
    folders: list[str | os.PathLike], engine: LabelEngine, options: LabelOptions | None = None
) -> LabelSummary:
    """Label every selected image under `folders`; see the module docstring."""
    o = options or LabelOptions()
    start = time.perf_counter()
    roots = list(dict.fromkeys(os.path.abspath(os.fspath(f)) for f in folders))
    for root in roots:
        if not os.path.isdir(root):
            raise NotADirectoryError(f"{root}: no such folder")
    journals = _Journals(roots, o.out)
    with ExitStack() as held:
        for store in journals.stores:  # one run per journal; exports written under it too
            held.enter_context(JournalLock(store.path, wait=o.wait))
        remove_stale_temp_files([s.path for s in journals.stores], roots)
        return _label_locked(journals, roots, engine, o, start)


def _label_locked(
    journals: _Journals, roots: list[str], engine: LabelEngine, o: LabelOptions, start: float
) -> LabelSummary:
    done = journals.load(o.overwrite)
    if done and journals.models - {engine.name}:
        log.warning(
            "resuming output labelled with model(s) %s using model %s; --overwrite "
            "relabels everything with %s",
            ", ".join(sorted(journals.models)),
            engine.name,
            engine.name,
        )
    skip = {k for k, ok in done.items() if ok or not o.retry_failed}
    summary = LabelSummary()
    todo = 0
    for fi, rel in iter_todo(roots, o.scan, frozenset()):
        summary.total += 1
        state = done.get((roots[fi], rel))
        if state is None or (state is False and o.retry_failed):
            todo += 1
        elif state:
            summary.skipped += 1
        else:
            summary.previously_failed += 1
    if summary.skipped or summary.previously_failed:
        log.info(
            "resuming: %d image(s) already labelled, %d earlier failure(s) kept%s",
            summary.skipped,
            summary.previously_failed,
            "" if o.retry_failed else " (--retry-failed tries them again)",
        )
    workers = o.workers if o.workers is not None else default_workers(todo, o.batch_size)
    bar = progress_bar(total=todo, desc="labeling", unit="img", enabled=o.progress)
    try:
        if todo:
            dataset = FolderBatches(
                roots,
                scan=o.scan,
                skip=skip,
                spec=engine.spec,
                batch_size=o.batch_size,
                max_pixels=o.max_pixels,
            )
            loader = make_loader(dataset, workers=workers, pin_memory=engine.device.type == "cuda")
            for batch, results in _inferred(loader, engine):
                _label_batch(batch, results, engine, roots, journals, done, summary)
                bar.update(len(batch.items))
                if summary.failed:
                    bar.set_postfix(failed=summary.failed, refresh=False)
    except (KeyboardInterrupt, Interrupted):
        summary.interrupted = True
        log.warning(
            "interrupted: every image finished so far is saved; run the same "
            "command again to resume"
        )
    finally:
        bar.close()
        journals.close()
    summary.outputs = _export(journals, roots, o)
    summary.seconds = time.perf_counter() - start
    return summary


def _inferred(loader: Any, engine: LabelEngine) -> Iterator[tuple[Any, list[dict]]]:
    """(batch, one result per readable image), in order. With the ONNX encoder, batch i+1 is
    encoded in a second thread while the caption search of batch i runs (two cores busy
    instead of one: the encoder and the beam search cost about the same)."""

    def encode(batch: Any) -> Any:
        return engine.encode(batch.pixels) if batch.pixels is not None else None

    def finish(batch: Any, feats: Any) -> tuple[Any, list[dict]]:
        return batch, (engine.heads(*feats) if feats is not None else [])

    if not engine.overlap:
        for batch in loader:
            yield finish(batch, encode(batch))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder") as pool:
        pending = None
        for batch in loader:
            future = pool.submit(encode, batch)
            if pending is not None:
                yield finish(pending[0], pending[1].result())
            pending = (batch, future)
        if pending is not None:
            yield finish(pending[0], pending[1].result())


def _label_batch(
    batch: Any,
    results: list[dict],
    engine: LabelEngine,
    roots: list[str],
    journals: _Journals,
    done: dict[Key, bool],
    summary: LabelSummary,
) -> None:
    by_pos = dict(zip(batch.ok, results))
    per_store: dict[int, list[dict]] = {}
    for pos, (fi, rel) in enumerate(batch.items):
        folder = roots[fi]
        error = batch.errors.get(pos)
        out = by_pos.get(pos) or {"caption": None, "tags": None, "sentiment": None}
        record = {"path": rel, "folder": folder, **out, "error": error, "model": engine.name}
        if error is not None:
            summary.failed += 1
            if len(summary.errors) < 10:
                summary.errors.append(error)
        else:
            summary.labelled += 1
        store = journals.of_folder[folder]
        if (folder, rel) in done:
            journals.dirty.add(id(store))  # a retried failure supersedes its old row
        per_store.setdefault(id(store), []).append(record)
    for store in journals.stores:
        if id(store) in per_store:
            store.append(per_store[id(store)])


def _export(journals: _Journals, roots: list[str], o: LabelOptions) -> list[str]:
    outputs = []
    wanted = set(roots)
    for store in journals.stores:
        if not store.path.exists():
            continue
        outputs.append(str(store.path))
        if "csv" in o.formats:
            csv_path = store.path.with_suffix(".csv")
            langs = sorted({k for r in store.iter_records() for k in r.get("translations") or ()})
            write_csv(store.iter_records(), csv_path, mode_of=store.path, languages=langs)
            outputs.append(str(csv_path))
        folders = journals.folders_of[id(store)]
        if "metadata" in o.formats:
            write_metadata(store.iter_records(), folders, mode_of=store.path)
            outputs += [os.path.join(f, "metadata.jsonl") for f in folders]
        if "xmp" in o.formats:
            records = (r for r in store.iter_records() if r.get("folder") in wanted)
            stats = write_sidecars(records, naming=o.xmp_naming)
            outputs.append(f"{stats.written} XMP sidecar(s) written, {stats.unchanged} unchanged")
    return outputs
