"""Captions of the Flickr8k test photos by every way a photo enters, saved for comparison.

    python bench/caption_paths.py OUT.json [--data ../shared/data/flickr8k] [--limit N]
    python bench/caption_paths.py --compare BEFORE.json AFTER.json

Each photo is captioned with the bundled `default` model (default settings) as a file path
through the API (`describe`), as a PIL image through the API (what `captioner eval` does),
and as a path through `captioner describe`'s engine (`captioner label` runs the same). The
first form writes {way: {image: caption}}; `--compare` prints, per way, how many captions
differ between two runs, and within each run how many differ between ways.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def captions(data: Path, limit: int | None) -> dict[str, dict[str, str]]:
    from PIL import Image

    from captioner.api import Captioner
    from captioner.cli.infer import build_parser, describe_paths

    names = (data / "Flickr_8k.testImages.txt").read_text().split()[:limit]
    paths = [str(data / "Images" / n) for n in names]
    model = Captioner.from_pretrained("default", device="cpu")
    out: dict[str, dict[str, str]] = {}
    found = model.describe(paths, tags=5)
    out["api-path"] = {n: d.caption for n, d in zip(names, found)}
    pil = []
    for i in range(0, len(paths), 32):  # as `captioner eval`: decoded PIL images, 32 at a time
        chunk = [Image.open(p) for p in paths[i : i + 32]]
        pil += model.caption(chunk, batch_size=32)
    out["api-pil"] = dict(zip(names, pil))
    cli = Captioner.from_pretrained("default", device="cpu", backend="torch")
    args = build_parser("describe").parse_args([*paths, "--device", "cpu"])
    out["cli-describe"] = {
        n: r["caption"] for n, r in zip(names, describe_paths(cli, "describe", args))
    }
    return out


def compare(before: dict, after: dict) -> None:
    for name, run in (("before", before), ("after", after)):
        ways = list(run)
        base = run[ways[0]]
        for way in ways[1:]:
            differ = sum(run[way][k] != base[k] for k in base)
            print(f"{name}: {way} differs from {ways[0]} on {differ} of {len(base)}")
    for way in before:
        if way in after:
            changed = sum(before[way][k] != after[way][k] for k in before[way])
            print(f"{way}: {changed} of {len(before[way])} captions changed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "flickr8k")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = p.parse_args()
    if args.compare:
        before, after = (json.loads(Path(f).read_text()) for f in args.compare)
        compare(before, after)
        return 0
    if not (args.data / "Flickr_8k.testImages.txt").is_file():
        print(f"{args.data}: no Flickr8k here; nothing to compare", file=sys.stderr)
        return 0
    Path(args.out).write_text(json.dumps(captions(args.data, args.limit), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
