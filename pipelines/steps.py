"""One step of a release recipe: run a training or fetch command, resuming a started run.

Shared by `release`, `photos` and `translators`: each step trains into its own folder with
the release's fixed seed; a finished model without a run is used as is, an interrupted run
resumes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

log = logging.getLogger("captioner.pipelines.release")  # its lines are the release's

SEED = 0


def done(directory: Path) -> bool:
    return (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()


def resume_flag(directory: Path) -> list[str] | None:
    """Flags for a training step: ["--resume"] when its run was started (a finished run
    returns at once; the model directory beside an interrupted run is only its best epoch so
    far), [] for a fresh start, None when a finished model is there without a run."""
    if (directory / "run" / "checkpoints" / "last.json").is_file():
        return ["--resume"]
    return None if done(directory) else []


def run_step(step: str, main, argv: list[str]) -> float:
    """Run `main(argv)`; a non-zero exit stops the release. Returns the seconds it took."""
    log.info("release: %s: %s", step, " ".join(argv))
    start = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        code = main(argv)
    finally:  # a recipe's --threads (sentiment: 1) must not carry over to the next step
        torch.set_num_threads(threads)
    if code:
        raise SystemExit(f"release: step {step!r} failed with exit code {code}")
    return time.perf_counter() - start


def train_step(step: str, main, out: Path, device: str, argv: list[str]) -> Path:
    """Run one training recipe into `out` (fixed seed), resuming a started run; skipped when
    a finished model is there without a run."""
    resume = resume_flag(out)
    if resume is not None:
        run_step(
            step,
            main,
            [*argv, "--out", str(out), "--seed", str(SEED), "--device", device, *resume],
        )
    return out
