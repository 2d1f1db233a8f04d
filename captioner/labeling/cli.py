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
from captioner.imageio import MAX_PIXELS
from captioner.labeling.distributed import add_scale_out, merge_command

log = logging.getLogger(__name__)

EPILOG = """\
outputs:
  DIR/labels.jsonl      one JSON object per image (path, caption, tags, sentiment, error,
                        model); the resumable journal. --out PATH writes one file instead.
  --format csv          labels.csv beside the JSONL (one row per image)
  --format metadata     DIR/metadata.jsonl, read by datasets.load_dataset("imagefolder",
                        data_dir=DIR)
  --format xmp          XMP sidecars (dc:description + dc:subject) for photo managers
Formats combine: --format csv,metadata,xmp. Images are only ever read.

Run the same command again to resume: images already labelled are skipped.

many machines: each process labels one shard of the sorted listing into its own journal
(labels.shard-K-of-N.jsonl beside the outputs), resumably; the outputs above are written
once, by one merge, when every shard is finished:
  captioner label DIR --shard K/N  on N machines (K = 0..N-1): the run that finishes and
                                   finds every shard done merges; `captioner label DIR
                                   --merge` merges explicitly (refused while a shard is
                                   unfinished)
  torchrun --nnodes M --nproc-per-node G -m captioner.labeling DIR ...: rank r labels shard
                                   r of M*G; after a barrier rank 0 merges
Shards must be run with the same folders, model and settings (others are refused).
exit codes: 0 all labelled, 3 some files failed, 2 usage error, 130 interrupted."""


def _formats(text: str) -> list[str]:
    from captioner.labeling.pipeline import FORMATS

    items = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(bad) or repr(text)}; choose from {', '.join(FORMATS)}"
        )
    return items


def build_parser(command: str = "label") -> argparse.ArgumentParser:
    p = flags.parser(
        "captioner label",
        "Label every image under folders: caption, top-k tags and the caption's sentiment, "
        "resumably.",
        epilog=EPILOG,
    )
    p.add_argument("folders", nargs="+", metavar="DIR", help="folders to label")
    m = p.add_argument_group("model")
    flags.add_model(m)
    flags.add_device(m)
    flags.add_backend(m)
    m.add_argument(
        "--int8-decoder",
        action="store_true",
        help="int8 caption decoder on CPU: faster, captions may differ slightly (default: off)",
    )
    m.add_argument(
        "--encoder",
        choices=("float", "int8"),
        default="float",
        help="int8: ONNX Runtime static int8 encoder on CPU, calibrated once on up to 300 "
        "images of the folders (or --calibration) and cached; see README Speed (default: float)",
    )
    m.add_argument(
        "--calibration",
        default=None,
        metavar="DIR",
        help="images to calibrate the int8 encoder on (default: the folders being labelled)",
    )
    flags.add_decoding(m, sampling=False)
    flags.add_tags(m)
    flags.add_language(m)
    r = p.add_argument_group("run")
    flags.add_batch_size(r, default=32)
    r.add_argument(
        "--workers",
        type=flags.non_negative,
        default=None,
        help="image decoding processes; 0 = in the main process (default: by folder size "
        "and cores)",
    )
    r.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on when stderr is a terminal)",
    )
    r.add_argument(
        "--max-pixels",
        type=flags.positive,
        default=MAX_PIXELS,
        help=f"refuse larger images, against decompression bombs (default: {MAX_PIXELS})",
    )
    s = p.add_argument_group("selection")
    s.add_argument(
        "--recursive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="walk sub-folders (default: yes)",
    )
    s.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="label only files matching GLOB (path or name; any extension; repeatable) "
        "(default: files with image extensions)",
    )
    s.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files and folders matching GLOB; repeatable (default: none)",
    )
    s.add_argument(
        "--hidden", action="store_true", help="include hidden files and folders (default: off)"
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="one JSONL file for all folders (default: DIR/labels.jsonl per folder)",
    )
    o.add_argument(
        "--format",
        type=_formats,
        action="append",
        default=[],
        metavar="LIST",
        help="comma-separated outputs: jsonl (always), csv, metadata, xmp (default: jsonl)",
    )
    o.add_argument(
        "--xmp-name",
        choices=("ext", "stem"),
        default="ext",
        help="sidecar name: ext = photo.jpg.xmp (darktable, digiKam), stem = "
        "photo.xmp (Lightroom) (default: ext)",
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="start over: relabel everything instead of resuming (default: off)",
    )
    o.add_argument(
        "--wait",
        action="store_true",
        help="when another run is labelling the same folder, wait for it to finish instead "
        "of stopping (default: off)",
    )
    o.add_argument(
        "--retry-failed",
        action="store_true",
        help="try files that failed in an earlier run again (default: off)",
    )
    add_scale_out(p)
    return p


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
