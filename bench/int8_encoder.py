"""int8 vs float ONNX encoder: speed and agreement, side by side in one run.

    python bench/int8_encoder.py                       # Flickr8k dev images, bundled model
    python bench/int8_encoder.py --data DIR --calibrate 300 --images 200

Calibrates the int8 encoder on the first --calibrate images of the Flickr8k dev split and
measures on the next --images dev images (never the test split): encoder-only images/s on
pre-decoded batches, the whole `label` pipeline's images/s, and how often the int8 encoder
gives the float encoder's answer: top-1 tag, identical caption, and corpus BLEU-4 of the int8
captions against the float ones as references. The rule: int8 becomes the default only with
top-1 agreement >= 97 % and a faster pipeline.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from captioner import Captioner
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.loader import load_batch
from captioner.metrics.coco_scores import bleu

DATA = Path(os.environ.get("CAPTIONER_DATA", "/work/shared/data")) / "flickr8k"


def best_rate(fn, n: int, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="Flickr8k folder")
    p.add_argument("--model", default="default")
    p.add_argument("--calibrate", type=int, default=300)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    names = (args.data / "Flickr_8k.devImages.txt").read_text().split()
    calib = [str(args.data / "Images" / n) for n in names[: args.calibrate]]
    test = [str(args.data / "Images" / n) for n in names[args.calibrate :][: args.images]]
    cap = Captioner.from_pretrained(args.model, backend="torch")
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(backend="onnx", onnx_cache=str(Path(tmp) / "onnx"))
        t = time.perf_counter()
        engines = {
            "float": LabelEngine(cap, EngineOptions(**common)),
            "int8": LabelEngine(cap, EngineOptions(encoder="int8", calibration=calib, **common)),
        }
        build = time.perf_counter() - t
        folder = Path(tmp) / "images"
        folder.mkdir()
        for path in test:  # links: the images are only read, never copied
            (folder / Path(path).name).symlink_to(path)
        items = [(0, Path(x).name) for x in test]
        batches = [
            load_batch([str(folder)], items[i : i + args.batch_size], engines["float"].spec).pixels
            for i in range(0, len(items), args.batch_size)
        ]
        rows, out = {}, {}
        for kind, eng in engines.items():
            eng.encode(batches[0][:2])
            rows[f"encoder only, {kind}"] = best_rate(
                lambda e=eng: [e.encode(b) for b in batches], len(test)
            )
            out[kind] = [r for b in batches for r in eng.describe(b)]
        for kind, eng in engines.items():
            opts = LabelOptions(out=Path(tmp) / f"{kind}.jsonl", overwrite=True)
            rows[f"label pipeline, {kind} encoder"] = max(
                label_folders([folder], eng, opts).rate for _ in range(2)
            )
    f, q = out["float"], out["int8"]
    top1 = sum(a["tags"][0]["label"] == b["tags"][0]["label"] for a, b in zip(f, q)) / len(f)
    same = sum(a["caption"] == b["caption"] for a, b in zip(f, q)) / len(f)
    bleu4 = bleu([[a["caption"]] for a in f], [b["caption"] for b in q])[3]
    print(f"# {len(test)} Flickr8k dev images (calibration: {len(calib)} other dev images); "
          f"model {args.model}; float export + int8 calibration took {build:.0f} s")  # fmt: skip
    print("| measurement | images/s |\n| --- | ---: |")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} |")
    enc_ratio = rows["encoder only, int8"] / rows["encoder only, float"]
    pipe_ratio = rows["label pipeline, int8 encoder"] / rows["label pipeline, float encoder"]
    print(f"int8 / float: encoder {enc_ratio:.2f}x, pipeline {pipe_ratio:.2f}x")
    print(f"top-1 tag agreement {top1:.1%}; identical captions {same:.1%}; "
          f"BLEU-4 of int8 captions vs float {bleu4:.3f}")  # fmt: skip
    ok = top1 >= 0.97 and pipe_ratio > 1.0
    print(f"default: {'int8' if ok else 'float'} (int8 needs top-1 >= 97 % and a faster pipeline)")


if __name__ == "__main__":
    main()
