"""The `captioner label` command line: flags, help text and the exit-code epilogue."""

from __future__ import annotations

import argparse

from captioner import commandline
from captioner.cli import options as flags
from captioner.imageio import MAX_PIXELS
from captioner.labeling.formats import ALWAYS, FORMATS, help_lines

CHOSEN = [name for name in FORMATS if name not in ALWAYS]  # written when --format names them

EPILOG = (
    "\n".join(["outputs:", *help_lines()])
    + f"""
Formats combine: --format {",".join(CHOSEN)}. Images are only ever read. Outputs are
written only inside DIR (or --out's folder), never through a link leading out, and only over
regular files (a pipe or device at an output name is refused); a labels.csv or metadata.jsonl
of yours is kept as NAME.orig.

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
)


def _formats(text: str) -> list[str]:
    items = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(bad) or repr(text)}; choose from {', '.join(FORMATS)}"
        )
    return items


def add_scale_out(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("many machines (see below)")
    d.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="label only shard K of N (K = 0..N-1) into its own journal; the last shard to "
        "finish merges all of them into the outputs (default: everything, one process)",
    )
    d.add_argument(
        "--merge",
        action="store_true",
        help="only merge finished shard journals into the outputs (loads no model; refused "
        "while a shard is unfinished) (default: off)",
    )


def _shard(text: str):
    from captioner.labeling.shards import parse_shard

    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser(command: str = "label") -> argparse.ArgumentParser:
    p = commandline.parser(
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
        "--lanes",
        type=flags.positive,
        default=None,
        help="CPU with the ONNX encoder: batches encoded and captioned side by side, one "
        "thread each (default: one per usable core; 1: one batch at a time)",
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
        help=f"comma-separated outputs: {', '.join(f'{n} (always)' for n in ALWAYS)}, "
        f"{', '.join(CHOSEN)} (default: {', '.join(ALWAYS)})",
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
