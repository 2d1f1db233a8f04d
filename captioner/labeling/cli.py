"""`captioner label DIR [DIR...]`: caption, tag and judge every image under folders.

Exit codes: 0 every selected image is labelled; 3 some files could not be labelled (their
rows carry an `error`); 2 usage errors (bad option, missing folder, unreadable model);
1 other errors; 130 interrupted (what was finished is saved: run again to resume).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from captioner.cli import options as flags
from captioner.labeling.distributed import merge_command
from captioner.labeling.flags import build_parser

log = logging.getLogger(__name__)


@contextmanager
def _sigterm_stops_cleanly() -> Iterator[None]:
    from captioner.labeling.pipeline import Interrupted

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_summary(summary) -> None:
    rate = f" ({summary.rate:.1f} images/s)" if summary.labelled + summary.failed else ""
    lines = [
        f"labelled {summary.labelled}, skipped {summary.skipped} (already done), "
        f"failed {summary.failed}"
        + (
            f", {summary.previously_failed} earlier failure(s) kept (--retry-failed)"
            if summary.previously_failed
            else ""
        )
        + f", {summary.seconds:.1f} s{rate}"
    ]
    lines += [f"  {why}" for why in summary.waiting]
    if summary.interrupted:
        lines.append("interrupted: finished images are saved; run the same command to resume")
    for err in summary.errors[:5]:
        lines.append(f"  error: {err}")
    if summary.failed > 5:
        lines.append(f"  ... and {summary.failed - 5} more (see the error field)")
    lines += [f"  -> {out}" for out in summary.outputs]
    print("\n".join(lines), file=sys.stderr)


def _calibration(args: argparse.Namespace, first: int = 3000) -> list[str]:
    """Image files for the int8 encoder: --calibration DIR, else the first `first` files
    of the folders' listing (the encoder samples them evenly)."""
    from itertools import islice

    from captioner.labeling.scan import ScanOptions, iter_files

    folders = [args.calibration] if args.calibration else args.folders
    scan = ScanOptions(include=tuple(args.include), exclude=tuple(args.exclude))
    found = (os.path.join(f, rel) for f in folders for rel in iter_files(f, scan))
    return list(islice(found, first))


def _engine(args: argparse.Namespace):
    """The model and its inference engine, or None after printing why not."""
    from captioner.api import Captioner
    from captioner.checkpoint import CheckpointError
    from captioner.labeling.engine import EngineOptions, LabelEngine
    from captioner.onnx_backend import OnnxBackendError

    try:
        # the engine picks the encoder runtime itself (--backend)
        captioner = Captioner.from_pretrained(args.model, device=args.device, backend="torch")
    except (FileNotFoundError, CheckpointError, RuntimeError, ValueError) as e:
        print(f"captioner label: error: cannot load model {args.model!r}: {e}", file=sys.stderr)
        return None
    options = EngineOptions(
        backend=args.backend,
        beam_size=args.beam_size,
        top_k=args.top_k,
        min_tag_score=args.min_tag_score,
        max_length=args.max_length,
        int8_decoder=args.int8_decoder,
        encoder=args.encoder,
        calibration=_calibration(args) if args.encoder == "int8" else (),
        lang=args.lang,
        translator=args.translator,
    )
    try:
        return LabelEngine(captioner, options)
    except (OnnxBackendError, ValueError) as e:
        print(f"captioner label: error: {e}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (already printed)
        return int(e.code or 0)
    flags.configure_logging(args)
    return run(args)


def run(args: argparse.Namespace, *, merge_after: bool = True) -> int:
    """`captioner label` with parsed arguments; `merge_after=False`: a shard run leaves the
    merge to another process (torchrun's rank 0)."""
    for folder in args.folders:
        if not os.path.isdir(folder):
            what = "is not a folder" if os.path.exists(folder) else "no such folder"
            print(f"captioner label: error: {folder}: {what}", file=sys.stderr)
            return 2
    if args.out is not None and os.path.isdir(args.out):
        print(
            f"captioner label: error: --out {args.out} is a folder; give a file path "
            "such as labels.jsonl",
            file=sys.stderr,
        )
        return 2
    formats = tuple(dict.fromkeys(["jsonl", *(f for group in args.format for f in group)]))
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    from captioner.labeling.pipeline import LabelOptions, label_folders
    from captioner.labeling.scan import ScanOptions

    scan = ScanOptions(
        recursive=args.recursive,
        include=tuple(args.include),
        exclude=tuple(args.exclude),
        hidden=args.hidden,
    )
    try:
        options = LabelOptions(
            out=args.out,
            formats=formats,
            xmp_naming=args.xmp_name,
            overwrite=args.overwrite,
            retry_failed=args.retry_failed,
            batch_size=args.batch_size,
            workers=args.workers,
            scan=scan,
            max_pixels=args.max_pixels,
            progress=progress,
            wait=args.wait,
            shard=args.shard,
            merge=merge_after,
        )
    except ValueError as e:
        print(f"captioner label: error: {e}", file=sys.stderr)
        return 2
    if args.merge:
        return merge_command(args, scan, formats)
    engine = _engine(args)
    if engine is None:
        return 2
    from captioner.labeling.writers import JournalError

    try:
        with _sigterm_stops_cleanly():
            summary = label_folders(args.folders, engine, options)
    except JournalError as e:
        print(f"captioner label: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        hint = "" if args.out else " (write the labels elsewhere with --out FILE.jsonl)"
        if e.errno == errno.ENOSPC and "intact" not in str(e):  # an export ran out of space
            hint = "; the labels journal is intact: free some space and run the same command"
        print(f"captioner label: error: {e}{hint}", file=sys.stderr)
        return 1
    _print_summary(summary)
    return summary.exit_code
