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

from captioner import commandline
from captioner.cli import options as flags
from captioner.cli.label_flags import build_parser
from captioner.labeling.formats import ALWAYS
from captioner.labeling.safefiles import shown

log = logging.getLogger(__name__)


def std_streams() -> None:
    """Open a closed stdin, stdout or stderr (`2>&-`) on /dev/null: otherwise the next file
    opened (the journal) takes its number and whatever is written to fd 2 lands in it, and
    `sys.stderr` is None (the run then goes on quietly)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, os.O_RDWR)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


class _Printable(logging.Filter):
    """Log lines with control characters (of file names) escaped (`safefiles.shown`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = shown(message)  # a newline in a name cannot fake a log line either
        if safe != message:
            record.msg, record.args = safe, None
        return True


def escape_logged_names() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Printable) for f in handler.filters):
            handler.addFilter(_Printable())


def say(text: str) -> None:
    """Lines to stderr, file names escaped; a closed or broken stderr is not an error."""
    try:
        print("\n".join(shown(line) for line in text.split("\n")), file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass


def error(text: str) -> None:
    say(f"captioner label: error: {shown(text)}")


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
    lines += [f"  {shown(why)}" for why in summary.waiting]
    if summary.interrupted:
        lines.append("interrupted: finished images are saved; run the same command to resume")
    for err in summary.errors[:5]:
        lines.append(f"  error: {shown(err)}")
    if summary.failed > 5:
        lines.append(f"  ... and {summary.failed - 5} more (see the error field)")
    for err in summary.export_errors[:5]:
        lines.append(f"  error: {shown(err)}")
    if summary.export_failed > 5:
        lines.append(f"  ... and {summary.export_failed - 5} more sidecar(s) not written")
    lines += [f"  -> {shown(out)}" for out in summary.outputs]
    say("\n".join(lines))


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _calibration(args: argparse.Namespace, first: int = 3000) -> list[str]:
    """Image files for the int8 encoder: --calibration DIR, else the first `first` files
    of the folders' listing (the encoder samples them evenly)."""
    from itertools import islice

    from captioner.labeling.scan import ScanOptions, iter_files

    folders = [args.calibration] if args.calibration else args.folders
    scan = ScanOptions(include=tuple(args.include), exclude=tuple(args.exclude))
    found = (os.path.join(f, rel) for f in folders for rel in iter_files(f, scan))
    files = list(islice(found, first))
    if not files:
        raise ValueError(f"no image files to calibrate the int8 encoder on in {', '.join(folders)}")
    return files


def _engine(args: argparse.Namespace):
    """The model and its inference engine, or None after printing why not."""
    from captioner.api import Captioner
    from captioner.checkpoint import CheckpointError
    from captioner.errors import CaptionerError
    from captioner.labeling.engine import EngineOptions, LabelEngine
    from captioner.onnx_backend import OnnxBackendError

    try:
        # the engine picks the encoder runtime itself (--backend)
        captioner = Captioner.from_pretrained(args.model, device=args.device, backend="torch")
    except (FileNotFoundError, CheckpointError, RuntimeError, ValueError) as e:
        error(f"cannot load model {args.model!r}: {e}")
        return None
    try:
        calibration = _calibration(args) if args.encoder == "int8" else ()
    except (OSError, ValueError) as e:
        error(f"--calibration: {e}")
        return None
    try:
        generation = flags.generation_config(args, captioner)
    except CaptionerError as e:
        error(str(e))
        return None
    options = EngineOptions(
        backend=args.backend,
        generation=generation,
        top_k=args.top_k,
        min_tag_score=args.min_tag_score,
        int8_decoder=args.int8_decoder,
        encoder=args.encoder,
        calibration=calibration,
        lang=args.lang,
        translator=args.translator,
        lanes=args.lanes,
    )
    try:
        return LabelEngine(captioner, options)
    except (OnnxBackendError, ValueError) as e:
        error(str(e))
        return None


def merge_command(args: argparse.Namespace, scan, formats: tuple[str, ...]) -> int:
    """`captioner label DIR --merge`: exit 0 merged (or nothing to merge), 2 refused, 3 some
    sidecars could not be written."""
    from captioner.labeling.merge import merge_labels
    from captioner.labeling.writers import JournalError

    try:
        result = merge_labels(
            args.folders, out=args.out, scan=scan, formats=formats, xmp_naming=args.xmp_name
        )
    except JournalError as e:  # unfinished shards, other settings, another run busy
        error(str(e))
        return 2
    if not result.merged:
        say("nothing to merge: no shard journals found (merged already?)")
    for err in result.problems.errors[:5]:
        say(f"  error: {err}")
    for out in result.outputs:
        say(f"  -> {out}")
    return 3 if result.problems.count else 0


def main(argv: list[str] | None = None) -> int:
    std_streams()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (already printed)
        return int(e.code or 0)
    commandline.configure_logging(args)
    escape_logged_names()
    return run(args)


def run(args: argparse.Namespace, *, merge_after: bool = True) -> int:
    """`captioner label` with parsed arguments; `merge_after=False`: a shard run leaves the
    merge to another process (torchrun's rank 0)."""
    for folder in [*args.folders, *([args.calibration] if args.calibration else [])]:
        if not os.path.isdir(folder):
            what = "is not a folder" if os.path.exists(folder) else "no such folder"
            flag = "--calibration " if folder is args.calibration else ""
            error(f"{flag}{folder}: {what}")
            return 2
    if args.out is not None and os.path.isdir(args.out):
        error(f"--out {args.out} is a folder; give a file path such as labels.jsonl")
        return 2
    formats = tuple(dict.fromkeys([*ALWAYS, *(f for group in args.format for f in group)]))
    progress = _isatty(sys.stderr) if args.progress is None else args.progress

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
        error(str(e))
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
    except JournalError as e:  # not a labels file, busy, a pipe or device at an output name
        error(str(e))
        return 2
    except OSError as e:
        hint = "" if args.out else " (write the labels elsewhere with --out FILE.jsonl)"
        if e.errno == errno.ENOSPC and "intact" not in str(e):  # an export ran out of space
            hint = "; the labels journal is intact: free some space and run the same command"
        error(f"{e}{hint}")
        return 1
    _print_summary(summary)
    return summary.exit_code
