"""Label every image under folders: stream, decode in workers, infer in batches, journal.

`label_folders(folders, engine, options)` resumes from the JSONL journal (images already
labelled are skipped), appends each batch durably, and at the end regenerates the CSV,
`metadata.jsonl` and XMP sidecars from the journal. Originals are only ever read.
With `LabelOptions(shard=Shard(K, N))` it labels one shard into that shard's journal and
leaves the exports to the merge (`captioner.labeling.merge`; see `distributed` for torchrun).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from captioner.api import image_record
from captioner.cpus import plan_cores
from captioner.imageio import MAX_PIXELS
from captioner.labeling.device_decode import decode_on_device
from captioner.labeling.engine import LabelEngine, torch_threads
from captioner.labeling.exports import remove_stale_temp_files
from captioner.labeling.formats import FORMATS, ExportProblems, export
from captioner.labeling.journals import Journals
from captioner.labeling.loader import FolderBatches, Key, iter_todo, make_loader
from captioner.labeling.lock import JournalLock
from captioner.labeling.merge import merge_labels
from captioner.labeling.scan import ScanOptions
from captioner.labeling.shards import Shard, check_shards, find_shards, write_settings
from captioner.labeling.xmp import NAMINGS
from captioner.progress import progress_bar

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 3, 130


class Interrupted(Exception):
    """Raised (e.g. from a SIGTERM handler) to stop a run cleanly."""


@dataclass
class LabelOptions:
    out: str | os.PathLike | None = None  # one JSONL for all folders; None: DIR/labels.jsonl
    formats: tuple[str, ...] = ("jsonl",)  # names in formats.FORMATS; jsonl is always written
    xmp_naming: str = "ext"  # "ext": photo.jpg.xmp, "stem": photo.xmp
    overwrite: bool = False  # start over instead of resuming
    retry_failed: bool = False  # try files that failed in an earlier run again
    batch_size: int = 32
    workers: int | None = None  # decoding processes; None: automatic
    scan: ScanOptions = field(default_factory=ScanOptions)
    max_pixels: int = MAX_PIXELS
    progress: bool = False
    wait: bool = False  # wait for another run holding a journal instead of stopping
    shard: Shard | None = None  # label only this shard, into its own journal
    merge: bool = True  # after a shard: merge when every shard is finished

    def __post_init__(self) -> None:
        unknown = set(self.formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {tuple(FORMATS)}")
        if self.xmp_naming not in NAMINGS:
            raise ValueError(f"XMP naming must be one of {NAMINGS}, got {self.xmp_naming!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.out is not None and (
            not os.fspath(self.out).strip() or Path(self.out).name in ("", ".", "..")
        ):
            raise ValueError(
                f"--out {os.fspath(self.out)!r}: not a file name; give a path such as labels.jsonl"
            )
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
    waiting: list[str] = field(default_factory=list)  # a shard run: why nothing was merged
    # images labelled whose own output could not be written (a sidecar name too long)
    export_failed: int = 0
    export_errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        failed = self.failed or self.previously_failed or self.export_failed
        return EXIT_FAILED if failed else EXIT_OK

    @property
    def rate(self) -> float:
        return (self.labelled + self.failed) / self.seconds if self.seconds > 0 else 0.0


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
    journals = Journals(roots, o.out, o.shard)
    journals.check_outputs(o.formats)  # a pipe or device at an output name: refused at once
    settings = run_settings(engine, o)
    with ExitStack() as held:
        for store in journals.stores:  # one run per journal; exports written under it too
            held.enter_context(JournalLock(store.path, wait=o.wait))
        for store in journals.stores:
            if o.shard:
                check_shards(journals.mains[id(store)].path, o.shard.count, settings)
                write_settings(store.path, settings)
            elif find_shards(store.path):
                log.warning(
                    "%s: unmerged shard journals lie beside it; this run labels what the "
                    "main journal lacks itself (finish the shards and use --merge instead)",
                    store.path,
                )
        remove_stale_temp_files(
            p for s in journals.stores for p in [s.path, *journals.format_files(s)]
        )
        summary = _label_locked(journals, roots, engine, o)
    if o.shard and o.merge and not summary.interrupted:
        merged = merge_labels(
            roots, out=o.out, scan=o.scan, formats=o.formats, xmp_naming=o.xmp_naming,
            count=o.shard.count, settings=settings, require_complete=False,
        )  # fmt: skip
        summary.outputs += merged.outputs
        summary.waiting = merged.waiting
        summary.export_failed += merged.problems.count
        summary.export_errors += merged.problems.errors
    summary.seconds = time.perf_counter() - start
    return summary


def run_settings(engine: LabelEngine, o: LabelOptions) -> dict[str, Any]:
    """What decides a run's rows (shards must agree on it), as JSON values."""
    both = {**engine.settings(), "scan": dataclasses.asdict(o.scan), "max_pixels": o.max_pixels}
    return json.loads(json.dumps(both, sort_keys=True))


def _label_locked(
    journals: Journals, roots: list[str], engine: LabelEngine, o: LabelOptions
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
    own = journals.own_outputs()  # never labelled, wherever --out puts them
    for fi, rel in iter_todo(roots, o.scan, frozenset(), o.shard, own):
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
    if o.workers is not None:
        workers = o.workers
    else:
        workers = plan_cores(todo=todo, batch_size=o.batch_size, device=engine.device.type).workers
    bar = progress_bar(total=todo, desc="labeling", unit="img", enabled=o.progress)
    try:
        if todo:
            dataset = FolderBatches(
                roots,
                own=own,
                scan=o.scan,
                skip=skip,
                spec=engine.spec,
                batch_size=o.batch_size,
                max_pixels=o.max_pixels,
                select=o.shard,
                raw_jpegs=engine.decodes_jpeg,
            )
            loader = make_loader(dataset, workers=workers, pin_memory=engine.device.type == "cuda")
            prepare = (
                partial(decode_on_device, folders=roots, spec=engine.spec, device=engine.device,
                        max_pixels=o.max_pixels)
                if engine.decodes_jpeg else None
            )  # fmt: skip
            for batch, results in _inferred(loader, engine, prepare):
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
    if o.shard:  # the exports are written once, by the merge
        summary.outputs = [str(s.path) for s in journals.stores if s.path.exists()]
    else:
        problems = ExportProblems()
        summary.outputs = export(journals, roots, o.formats, o.xmp_naming, problems=problems)
        summary.export_failed, summary.export_errors = problems.count, problems.errors
    return summary


def _inferred(
    loader: Any, engine: LabelEngine, prepare: Any = None
) -> Iterator[tuple[Any, list[dict]]]:
    """(batch, one result per readable image), in order. On CPU with the ONNX encoder the
    batches run in `engine.lanes` lanes (`_in_lanes`); with one lane (or on a GPU), batch i+1
    is prepared (`prepare`: GPU JPEG decoding) and encoded in a second thread while the
    caption search of batch i runs (two cores busy instead of one: the encoder and the beam
    search cost about the same)."""

    def encode(batch: Any) -> Any:
        if prepare is not None:
            prepare(batch)
        return engine.encode(batch.pixels) if batch.pixels is not None else None

    def finish(batch: Any, feats: Any) -> tuple[Any, list[dict]]:
        return batch, (engine.heads(*feats) if feats is not None else [])

    lanes = getattr(engine, "lanes", 1)
    if lanes > 1 and prepare is None:
        yield from _in_lanes(loader, lambda batch: finish(batch, encode(batch)), engine, lanes)
        return
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


def _in_lanes(
    loader: Any, work: Any, engine: LabelEngine, lanes: int
) -> Iterator[tuple[Any, list[dict]]]:
    """`work(batch)` (encode + heads) for up to `lanes` batches at once, one thread each,
    yielded in order. Each lane runs the ONNX encoder and the search on its own thread
    (`EngineOptions.lanes`): nothing waits for a slower thread of a parallel operator, and a
    core left idle by one lane (its search's many small operators, a batch still being
    decoded) is taken by another. PyTorch keeps `decoder_threads` for the whole run: the
    lanes share that process-wide setting, so none changes it while another runs."""
    with (
        torch_threads(engine.decoder_threads),
        ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="lane") as pool,
    ):
        pending: deque[Any] = deque()
        for batch in loader:
            pending.append(pool.submit(work, batch))
            if len(pending) >= lanes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _label_batch(
    batch: Any,
    results: list[dict],
    engine: LabelEngine,
    roots: list[str],
    journals: Journals,
    done: dict[Key, bool],
    summary: LabelSummary,
) -> None:
    by_pos = dict(zip(batch.ok, results))
    per_store: dict[int, list[dict]] = {}
    for pos, (fi, rel) in enumerate(batch.items):
        folder = roots[fi]
        error = batch.errors.get(pos)
        record = image_record(rel, folder, by_pos.get(pos), error=error, model=engine.name)
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
