"""Peak memory of `captioner label` for 1,000 vs 10,000 images (flat = streaming works).

Run through `python bench/label_throughput.py --rss [--rss-counts 1000,10000]`: it writes
small synthetic JPEGs into a temporary folder (1,000 per sub-folder) and labels them in a
fresh process per count, reporting the peak RSS of the main process and of the decoding
workers (forked; shared pages count in both).
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from label_throughput import load_model, photo

from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions


def rss_child(folder: str, model: str, vocab: int, batch: int, workers: int | None) -> None:
    cap = load_model(model, vocab, "cpu")
    eng = LabelEngine(cap, EngineOptions(generation=GenerationConfig(max_length=6)))
    s = label_folders(
        [folder],
        eng,
        LabelOptions(out=Path(folder) / "labels.jsonl", batch_size=batch, workers=workers),
    )
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "images": s.total,
                "labelled": s.labelled,
                "main_mb": usage,
                "worker_mb": kids,
                "rate": s.rate,
            }
        )
    )


def rss_bench(args, script: str) -> None:
    counts = [int(c) for c in args.rss_counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "many"
        rng = np.random.default_rng(0)
        tiles = [photo(rng, 96, 72) for _ in range(8)]
        buffers = []
        for t in tiles:
            b = io.BytesIO()
            t.save(b, "JPEG", quality=85)
            buffers.append(b.getvalue())
        print("| images | peak RSS main (MB) | peak RSS worker (MB) | images/s |")
        print("| ---: | ---: | ---: | ---: |")
        made = 0
        for n in counts:
            for i in range(made, n):
                sub = folder / f"d{i // 1000:03d}"
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"i{i:06d}.jpg").write_bytes(buffers[i % len(buffers)])
            made = n
            (folder / "labels.jsonl").unlink(missing_ok=True)
            cmd = [
                sys.executable,
                script,
                "--rss-child",
                str(folder),
                "--model",
                args.rss_model,
                "--batch-size",
                str(args.batch_size),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            assert r["labelled"] == n, r
            print(f"| {n:,} | {r['main_mb']:.0f} | {r['worker_mb']:.0f} | {r['rate']:.0f} |")
