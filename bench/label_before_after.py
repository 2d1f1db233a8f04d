"""`captioner label` of this tree against an older checkout, alternating run by run.

    git archive 7db6bf1 | tar -x -C /tmp/old    # the tree before issue 25
    python bench/label_before_after.py --before /tmp/old --images 192 --rounds 3

On a shared machine the load changes from one minute to the next, so one rate from each
tree measured minutes apart says little; alternating them (old, new, new with --lanes 1, old,
...) on the same JPEGs does. Each run labels the folder once to warm up, then twice, and
reports the better rate; each tree runs in its own process with PYTHONPATH set to it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import sys, tempfile
from pathlib import Path
from dataclasses import fields
from captioner import Captioner
from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions
folder, model, lanes, cache = sys.argv[1:5]
cap = Captioner.from_pretrained(model, device="cpu", backend="torch")
kw = dict(generation=GenerationConfig(beam_size=3, max_length=20), onnx_cache=cache)
if lanes != "-" and "lanes" in {f.name for f in fields(EngineOptions)}:
    kw["lanes"] = int(lanes)
eng = LabelEngine(cap, EngineOptions(**kw))
out = Path(tempfile.mkdtemp()) / "labels.jsonl"
rates = []
for _ in range(3):
    s = label_folders([folder], eng, LabelOptions(out=out, overwrite=True, batch_size=32,
                                                  workers=1))
    rates.append(s.rate)
print("RATE", max(rates[1:]))
"""


def label_rate(tree: Path, folder: Path, model: str, lanes: str, cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), model, lanes, str(cache)],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.split("RATE")[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, type=Path, help="the older checkout")
    p.add_argument("--model", default="default")
    p.add_argument("--images", type=int, default=192)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    here = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(here / "bench"))
    from label_throughput import load_average, make_jpegs

    runs = {"before": (args.before.resolve(), "-"), "today": (here, "-"),
            "today, --lanes 1": (here, "1")}  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        make_jpegs(folder, args.images, (1024, 768))
        print(f"# {args.images} JPEGs 1024x768, model {args.model}; load average {load_average()}")
        for _ in range(args.rounds):
            for name, (tree, lanes) in runs.items():
                cache = Path(tmp) / f"onnx-{name.split(',')[0]}"
                rates[name].append(label_rate(tree, folder, args.model, lanes, cache))
                print(f"{name}: {rates[name][-1]:.1f} images/s", flush=True)
        print(f"# load average after: {load_average()}")
    print("| tree | images/s, run by run | best |\n| --- | --- | ---: |")
    for name, values in rates.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {max(values):.1f} |")


if __name__ == "__main__":
    main()
