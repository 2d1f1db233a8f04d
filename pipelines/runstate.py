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
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from safetensors.torch import load_file, save

from captioner.atomic import atomic_write, write_bytes_atomic
from captioner.checkpoint import CheckpointError, read_json, write_json_atomic
from captioner.devices import resolve_device
from captioner.errors import one_line

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


_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")


def epoch_dirs(ckpt_dir: Path) -> list[Path]:
    """The `epoch-NNNN` checkpoint folders, newest first."""
    if not Path(ckpt_dir).is_dir():
        return []
    found = [p for p in Path(ckpt_dir).iterdir() if _EPOCH_DIR.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def has_checkpoint(ckpt_dir: Path) -> bool:
    """Whether the run has anything to resume from (`last.json` or an epoch folder)."""
    return (Path(ckpt_dir) / LAST).is_file() or bool(epoch_dirs(ckpt_dir))


def save_checkpoint(
    ckpt_dir: Path, epoch: int, weights: dict[str, torch.Tensor], state: dict, *, keep: int = 1
) -> Path:
    ckpt_dir = Path(ckpt_dir)
    target = ckpt_dir / f"epoch-{epoch:04d}"
    target.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().clone() for k, v in weights.items()}
    write_bytes_atomic(target / "model.safetensors", save(tensors))
    with atomic_write(target / "state.pt", "wb") as f:
        torch.save(state, f)
    write_json_atomic(ckpt_dir / LAST, {"epoch": epoch, "dir": target.name})
    old = sorted(p for p in ckpt_dir.glob("epoch-*") if p.is_dir() and p != target)
    for p in old[: max(0, len(old) - max(0, keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return target


def _read_epoch_dir(
    target: Path, map_location: torch.device | str
) -> tuple[dict[str, torch.Tensor], dict]:
    """One checkpoint folder, verified: both files readable, its epoch the folder's."""
    for name in ("model.safetensors", "state.pt"):
        if not (target / name).is_file():
            raise CheckpointError(f"{target / name}: missing checkpoint file")
    try:
        weights = load_file(str(target / "model.safetensors"))
        state = torch.load(target / "state.pt", map_location=map_location, weights_only=True)
    except Exception as e:  # safetensors / unpickling errors of several kinds
        raise CheckpointError(
            f"{target}: unreadable checkpoint ({type(e).__name__}: {one_line(e)})"
        ) from None
    if not isinstance(state, dict) or int(state.get("epoch", -1)) != int(target.name[6:]):
        raise CheckpointError(f"{target / 'state.pt'}: its epoch does not match {target.name}")
    return weights, state


def load_checkpoint(
    ckpt_dir: Path, *, map_location: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (model weights, training state) of the checkpoint `last.json` points to; when
    `last.json` is missing or broken, or its checkpoint is, the newest valid epoch folder
    (a warning says which). No valid checkpoint at all is a `CheckpointError` naming why."""
    ckpt_dir = Path(ckpt_dir)
    problems: list[str] = []
    candidates = epoch_dirs(ckpt_dir)
    try:
        last = read_json(ckpt_dir, LAST)
        name = str(last.get("dir")) if isinstance(last, dict) else ""
        if not _EPOCH_DIR.match(name):
            raise CheckpointError(
                f"{ckpt_dir / LAST}: expected {{'epoch': N, 'dir': 'epoch-NNNN'}}"
            )
        candidates = [ckpt_dir / name] + [p for p in candidates if p.name != name]
    except CheckpointError as e:
        problems.append(str(e))
    for target in candidates:
        try:
            found = _read_epoch_dir(target, map_location)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        if problems:
            log.warning("%s; resuming from %s instead", "; ".join(problems), target)
        return found
    raise CheckpointError(
        f"{ckpt_dir}: no valid checkpoint to resume from ({'; '.join(problems)}); the run's "
        "files are left as they are: repair them, or train into a new output folder"
    )


# ---------------------------------------------------------------------- model dir / batches
# The files a model directory of ours holds (`save_model_dir`, the model card): the only
# names `publish_model_dir` ever replaces or removes in an output folder.
MODEL_FILES = frozenset({
    "config.json", "model.safetensors", "vocab.json", "labels.json", "sentiment_vocab.json",
    "subwords.model", "README.md", "scores.json",
})  # fmt: skip
RUN = "run"  # the training run's folder inside the output folder


def is_our_model_dir(path: str | Path) -> bool:
    """Whether `path` holds a model directory of ours: a `config.json` in the captioner
    format, read within the checkpoint limits (a pipe or device at the name is not one)."""
    try:
        config = read_json(Path(path), "config.json")
    except CheckpointError:
        return False
    return isinstance(config, dict) and config.get("format") == "captioner"


def out_dir_problem(out: str | Path) -> str | None:
    """Why a training run must not write into `out`, or None: it may be missing, empty, a
    model directory of ours or the output folder of an earlier run (its `run/` folder).
    Anything else holds someone's files, which training never replaces or deletes."""
    out = Path(out)
    flag = f"--out {out}"
    if not os.path.lexists(out):
        return None
    if not out.is_dir():
        return f"{flag}: exists and is not a folder; give a folder for the model directory"
    run = out / RUN
    if os.path.lexists(run) and not run.is_dir():
        return f"{flag}: {run} exists and is not a folder (training keeps its run files there)"
    try:
        entries = os.listdir(out)
    except OSError as e:
        return f"{flag}: cannot read the folder ({e.strerror or e})"
    if not entries or run.is_dir() or is_our_model_dir(out):
        return None
    shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
    return (
        f"{flag}: the folder holds other files ({len(entries)}: {shown}) and is not a model "
        "directory; give a new or empty folder"
    )


def publish_model_dir(src: str | Path, dst: str | Path, *, keep: tuple[str, ...] = (RUN,)) -> Path:
    """Copy the files of model directory `src` into `dst` beside its run folder. Each file
    is written to a temporary name and renamed into place, `config.json` last, so a reader
    or a crash meets the old config or the new one, never a torn file. Only model-file
    names (`MODEL_FILES`) are replaced or, when `src` lacks them, removed: any other file in
    `dst` is left alone, and a `dst` that holds other files without being a model directory
    of ours is refused (`CheckpointError`) before anything is written."""
    src, dst = Path(src), Path(dst)
    problem = out_dir_problem(dst)
    if problem:
        raise CheckpointError(problem)
    dst.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in src.iterdir() if p.is_file()}
    for name in sorted(names, key=lambda n: n == "config.json"):  # config last
        with open(src / name, "rb") as fin, atomic_write(dst / name, "wb", within=dst) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    for name in sorted(MODEL_FILES - names - set(keep)):  # a part the new model lacks
        stale = dst / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
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
        with atomic_write(path) as f:
            f.write("".join(json.dumps(r) + "\n" for r in kept))


def progress(iterable: Iterable, *, enabled: bool, desc: str) -> Iterable:
    """A bar with ETA on a terminal; silent when stderr is not a TTY or `enabled` is false
    (not rank 0)."""
    from captioner.progress import progress_bar

    return progress_bar(iterable, desc=desc, enabled=enabled and sys.stderr.isatty())
