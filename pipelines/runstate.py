"""The engine's plumbing: devices, torch.distributed, RNG state, checkpoints, metrics log.

Checkpoint layout (inside a run directory):

    checkpoints/epoch-0003/model.safetensors   model weights (safetensors)
    checkpoints/epoch-0003/state.pt            optimizer, scheduler, scaler, RNG, epoch, best
    checkpoints/last.json                      {"epoch": 3, "dir": "epoch-0003"}

Each file is written to a temporary name and `os.replace`d; `last.json` moves last, so a
process killed at any moment leaves the previous complete checkpoint in charge. `state.pt`
holds only tensors, numbers, strings, lists and dicts, and is read with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from safetensors.torch import load_file, save_file

from captioner.checkpoint import CheckpointError, read_json, write_json_atomic
from captioner.devices import resolve_device

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- devices / processes
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's env vars (WORLD_SIZE, RANK, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT) when WORLD_SIZE > 1; nccl on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def shutdown_distributed() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        tdist.barrier()


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank."""
    if info.world_size == 1:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across(total: float, count: int, info: DistInfo, device: torch.device) -> float:
    if info.world_size > 1:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        tdist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(1, count)


# ---------------------------------------------------------------------- RNG
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA RNG states as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def gather_rng(info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG state, indexed by rank (on every rank)."""
    mine = rng_state()
    if info.world_size == 1:
        return [mine]
    out: list[Any] = [None] * info.world_size
    tdist.all_gather_object(out, mine)
    return out


# ---------------------------------------------------------------------- checkpoints
LAST = "last.json"


def has_checkpoint(ckpt_dir: Path) -> bool:
    return (Path(ckpt_dir) / LAST).is_file()


def save_checkpoint(
    ckpt_dir: Path, epoch: int, weights: dict[str, torch.Tensor], state: dict, *, keep: int = 1
) -> Path:
    ckpt_dir = Path(ckpt_dir)
    target = ckpt_dir / f"epoch-{epoch:04d}"
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".model.tmp{os.getpid()}"
    save_file({k: v.detach().cpu().clone() for k, v in weights.items()}, str(tmp))
    os.replace(tmp, target / "model.safetensors")
    tmp = target / f".state.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, target / "state.pt")
    write_json_atomic(ckpt_dir / LAST, {"epoch": epoch, "dir": target.name})
    old = sorted(p for p in ckpt_dir.glob("epoch-*") if p.is_dir() and p != target)
    for p in old[: max(0, len(old) - max(0, keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return target


def load_checkpoint(
    ckpt_dir: Path, *, map_location: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (model weights, training state) of the checkpoint `last.json` points to."""
    ckpt_dir = Path(ckpt_dir)
    last = read_json(ckpt_dir, LAST)
    if not isinstance(last, dict) or "dir" not in last:
        raise CheckpointError(f"{ckpt_dir / LAST}: expected {{'epoch': N, 'dir': NAME}}")
    target = ckpt_dir / str(last["dir"])
    for name in ("model.safetensors", "state.pt"):
        if not (target / name).is_file():
            raise CheckpointError(f"{target / name}: missing checkpoint file")
    try:
        weights = load_file(str(target / "model.safetensors"))
        state = torch.load(target / "state.pt", map_location=map_location, weights_only=True)
    except Exception as e:  # safetensors / unpickling errors of several kinds
        raise CheckpointError(
            f"{target}: unreadable checkpoint ({type(e).__name__}: {e})"
        ) from None
    if int(state.get("epoch", -1)) != int(last.get("epoch", -2)):
        raise CheckpointError(f"{target / 'state.pt'}: epoch does not match {ckpt_dir / LAST}")
    return weights, state


# ---------------------------------------------------------------------- model dir / batches
def publish_model_dir(
    src: str | Path, dst: str | Path, *, keep: tuple[str, ...] = ("run",)
) -> Path:
    """Copy the files of model directory `src` into `dst`, each atomically, and remove other
    files of `dst` except the names in `keep` (the run folder lives beside the model)."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in src.iterdir() if p.is_file()}
    for name in sorted(names, key=lambda n: n == "config.json"):  # config last
        tmp = dst / f".{name}.tmp{os.getpid()}"
        tmp.write_bytes((src / name).read_bytes())
        os.replace(tmp, dst / name)
    for p in dst.iterdir():
        if (
            p.is_file()
            and p.name not in names
            and p.name not in keep
            and not p.name.startswith(".")
        ):
            p.unlink()
    return dst


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts/lists/tuples (non_blocking from pinned memory)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


# ---------------------------------------------------------------------- metrics / progress
class MetricsLog:
    """Append-only JSONL; one flushed line per record; a no-op on ranks other than 0."""

    def __init__(self, path: Path, *, enabled: bool = True):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115

    def write(self, record: dict) -> None:
        if self._f is not None:
            self._f.write(json.dumps(record, default=float) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_metrics(path: Path) -> list[dict]:
    """Records of a metrics.jsonl; a torn last line (killed mid-write) is skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """On resume: drop records written after the checkpoint (a killed epoch's steps)."""
    if Path(path).is_file():
        kept = [r for r in read_metrics(path) if int(r.get("step", 0)) <= step]
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)


def progress(iterable: Iterable, *, enabled: bool, desc: str) -> Iterable:
    """A bar with ETA on a terminal; silent when stderr is not a TTY or `enabled` is false
    (not rank 0)."""
    from captioner.progress import progress_bar

    return progress_bar(iterable, desc=desc, enabled=enabled and sys.stderr.isatty())


def plot_curves(run_dir: Path) -> Path | None:
    """Redraw `curves.png` from `metrics.jsonl`; a plotting failure never stops training."""
    try:
        from captioner.pipelines.plot import plot_metrics

        return plot_metrics(Path(run_dir) / "metrics.jsonl", Path(run_dir) / "curves.png")
    except Exception as e:  # matplotlib missing or broken: training goes on
        log.warning("could not draw training curves: %s", e)
        return None
