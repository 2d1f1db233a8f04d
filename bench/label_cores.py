"""`captioner label` images/s against the number of cores, each run pinned with taskset.

    python bench/label_cores.py                              # 1 and 2 cores (CPUs 1 / 0,1)
    python bench/label_cores.py --cpu-sets 0 0-1 0-3 0-7 0-15  # a bigger machine

Every CPU set runs the same label pipeline (bundled model, automatic sizing from
`captioner.cpus.plan_cores`, which reads the affinity that taskset sets) in a fresh process on
the same synthetic 1024x768 JPEGs, after one shared ONNX export. It prints the sizing each
run chose (decoding processes, lanes, threads per lane), images/s, the speed-up over the first set and the efficiency per core. The load
average is printed first: numbers taken while other work uses the CPUs are contended.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def child(folder: str, model: str, cache: str, batch: int) -> None:
    from captioner import Captioner
    from captioner.cpus import plan_cores, usable_cores
    from captioner.labeling import LabelEngine, LabelOptions, label_folders
    from captioner.labeling.engine import EngineOptions

    cap = Captioner.from_pretrained(model, backend="torch")
    eng = LabelEngine(cap, EngineOptions(onnx_cache=cache))
    out = Path(folder).parent / f"labels-{os.getpid()}.jsonl"
    opts = LabelOptions(out=out, overwrite=True, batch_size=batch)
    rate = max(label_folders([folder], eng, opts).rate for _ in range(2))
    n = sum(1 for _ in Path(folder).glob("*.jpg"))
    plan = dict(plan_cores(todo=n, batch_size=batch).__dict__, lanes=eng.lanes)
    if eng.lanes > 1:  # each lane runs ONNX Runtime on one thread
        plan["encoder_threads"] = 1
    print(json.dumps({"cores": usable_cores(), "plan": plan, "rate": rate}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-sets", nargs="+", default=["1", "0,1"], help="taskset -c lists")
    p.add_argument("--model", default="default")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--child", nargs=2, metavar=("FOLDER", "CACHE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child[0], args.model, args.child[1], args.batch_size)
    from label_throughput import make_jpegs  # bench/, beside this file

    from captioner import Captioner
    from captioner.onnx_backend import load_onnx_encoder

    print(f"# load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; model "
          f"{args.model}; {args.images} JPEGs 1024x768; batch {args.batch_size}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "photos", str(Path(tmp) / "onnx")
        make_jpegs(folder, args.images, (1024, 768))
        load_onnx_encoder(Captioner.from_pretrained(args.model, backend="torch").encoder,
                          cache_dir=cache)  # fmt: skip
        rows = []
        for cpus in args.cpu_sets:
            cmd = ["taskset", "-c", cpus, sys.executable, __file__, "--model", args.model,
                   "--batch-size", str(args.batch_size), "--child", str(folder), cache]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append((cpus, json.loads(done.stdout.strip().splitlines()[-1])))
    base = rows[0][1]
    print("| taskset -c | usable cores | decode workers | lanes | encoder threads | decoder "
          "threads | images/s | speed-up | per core vs first |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cpus, r in rows:
        plan, up = r["plan"], r["rate"] / base["rate"]
        eff = up * base["cores"] / r["cores"]
        print(f"| {cpus} | {r['cores']} | {plan['workers']} | {plan['lanes']} | "
              f"{plan['encoder_threads']} | "
              f"{plan['decoder_threads']} | {r['rate']:.1f} | {up:.2f}x | {eff:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
