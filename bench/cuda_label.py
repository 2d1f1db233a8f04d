"""Check 4 of `bench/cuda_check.py`: labeling 800x600 JPEGs at batch 128 on a GPU.

Measured in one run on the same synthetic JPEGs and the bundled model: nvJPEG decoding +
resizing alone (`device_decode.decode_on_device` on bytes read beforehand), the model alone
(encoder + beam search + heads on decoded images), and the whole `label` pipeline with JPEGs
decoded on the GPU and, for comparison, on the CPU. `small=True`: a CPU dry run (no nvJPEG).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from label_throughput import make_jpegs

from captioner import Captioner
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.device_decode import decode_on_device
from captioner.labeling.engine import EngineOptions
from captioner.labeling.loader import load_batch


class CpuDecodeEngine(LabelEngine):
    decodes_jpeg = False  # the same engine, JPEGs decoded by the CPU workers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(fn, n: int, device: torch.device, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return round(n / best, 1)


def label_check(small: bool = False) -> dict:
    device = torch.device("cpu" if small else "cuda")
    n, batch = (64, 16) if small else (2048, 128)
    cap = Captioner.from_pretrained("default", device=device, backend="torch")
    engines = {"gpu decode": LabelEngine(cap, EngineOptions(backend="torch"))}
    engines["cpu decode"] = CpuDecodeEngine(cap, EngineOptions(backend="torch"))
    out: dict = {"images": n, "batch": batch, "size": "800x600", "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        make_jpegs(folder, n, (800, 600))
        eng = engines["gpu decode"]
        items = [(0, p.name) for p in sorted(folder.glob("*.jpg"))]
        chunks = [items[i : i + batch] for i in range(0, n, batch)]
        raw = [load_batch([str(folder)], c, eng.spec, raw_jpegs=True) for c in chunks]
        kw = dict(folders=[str(folder)], spec=eng.spec, device=device, max_pixels=10**9)
        if eng.decodes_jpeg:
            out["nvjpeg decode + resize only"] = _rate(
                lambda: [decode_on_device(copy.copy(b), **kw) for b in raw], n, device
            )
        pixels = [load_batch([str(folder)], c, eng.spec).pixels for c in chunks]
        eng.describe(pixels[0][:2])
        out["model only (decoded images)"] = _rate(
            lambda: [eng.describe(p) for p in pixels], n, device
        )
        for name, e in engines.items():
            opts = LabelOptions(out=Path(tmp) / "labels.jsonl", overwrite=True, batch_size=batch)
            out[f"label pipeline, {name}"] = round(
                max(label_folders([folder], e, opts).rate for _ in range(2)), 1
            )
    if device.type == "cuda":
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps({"label": out}, indent=1))
    return out
