"""How many CPU cores this process may use, and how labeling splits them.

`usable_cores()` counts the cores the scheduler lets this process run on
(`os.sched_getaffinity`: `taskset`, cpusets) and caps them with the cgroup CPU quota
(`cpu.max` of cgroup v2, `cpu.cfs_quota_us / cpu.cfs_period_us` of v1: a container limited to
"2 CPUs" on a 64-core host gets 2, where `os.cpu_count()` and PyTorch's default say 64).
Processes started by `torchrun` on one machine share its cores (`LOCAL_WORLD_SIZE`).

`plan_cores()` is the one place that sizes the labeling stages (`captioner label`, the
`caption|describe` commands and the Python API's ONNX encoder). The rule follows the cost of
one image measured on CPU (EfficientNet-Lite0 at 224 px, 1024x768 JPEGs): the encoder about
16 core-ms, JPEG decoding + resizing about 4, the beam search + tags + sentiment about 4.4:
- decoding processes: a quarter of the cores (decoding is ~1/6 of the work; the rest is a
  margin for large photos), at least 1, at most 16, none for a single batch;
- decoder threads: 1 below 8 cores (the search is many small ops, which lose to thread
  synchronisation), then one per 8 cores up to 4;
- encoder threads: every core. ONNX Runtime's threads sleep when idle, so the encoder takes
  what the decoding processes and the search leave free instead of a fixed slice. (`captioner
  label` with the ONNX encoder on a CPU runs one lane per core instead, each encoding and
  searching whole batches on one thread: `labeling.engine.EngineOptions.lanes`.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_quota(root: str | os.PathLike = CGROUP_ROOT) -> float | None:
    """The cgroup CPU quota in cores (e.g. 1.5), or None when there is none or it is
    unreadable. cgroup v2 (`cpu.max`: "QUOTA PERIOD" or "max PERIOD") first, then v1."""
    root = Path(root)
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = int(parts[0]), int(parts[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    for folder in (root / "cpu", root / "cpu,cpuacct", root):
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota is None or period is None:
            continue
        try:
            q, p = int(quota), int(period)
        except ValueError:
            return None
        return q / p if q > 0 and p > 0 else None
    return None


def affinity_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def local_ranks() -> int:
    """Processes sharing this machine under torchrun (`LOCAL_WORLD_SIZE`), else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def usable_cores(root: str | os.PathLike = CGROUP_ROOT, *, ranks: int | None = None) -> int:
    """Cores this process may use: affinity, capped by the cgroup quota (rounded up: a quota
    of 1.5 cores keeps 2 threads busy part of the time), shared among `ranks` processes
    (default: torchrun's local world size). At least 1."""
    cores = affinity_cores()
    quota = cgroup_quota(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores // (ranks or local_ranks()))


@dataclass(frozen=True)
class CorePlan:
    cores: int
    workers: int  # image decoding processes (0: in the main process)
    encoder_threads: int  # ONNX Runtime intra-op threads
    decoder_threads: int  # PyTorch threads for the beam search and the heads


def plan_cores(
    cores: int | None = None,
    *,
    todo: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
) -> CorePlan:
    """Split `cores` (default: `usable_cores()`) among the labeling stages; see the module
    docstring. `todo`: images to label (a single batch is decoded in the main process).
    On a GPU the model runs there: the decoding processes get half the cores (they read files,
    and decode on the CPU what the GPU cannot)."""
    cores = max(1, cores if cores is not None else usable_cores())
    if device != "cpu":
        workers = min(16, max(1, cores // 2))
        decoder = 1
    else:
        workers = min(16, max(1, math.ceil(cores / 4)))
        decoder = 1 if cores < 8 else min(4, cores // 8)
    if todo is not None and todo <= batch_size:
        workers = 0  # one batch: starting a process costs more than it saves
    return CorePlan(cores=cores, workers=workers, encoder_threads=cores, decoder_threads=decoder)


@contextmanager
def small_op_threads() -> Iterator[int]:
    """Run the block with the PyTorch intra-op threads of work made of many small ops
    (loading and dequantising a model, an RNN head, beam search): `plan_cores()
    .decoder_threads`, 1 below 8 cores; the count before is restored after. Two threads on a
    2-core machine whose other core is busy make such ops several times slower than one
    (dequantising the bundled model: 1.0 s vs 0.12 s). An `OMP_NUM_THREADS` the user set
    wins. Yields the thread count in use."""
    import torch

    before = torch.get_num_threads()
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(plan_cores().decoder_threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
