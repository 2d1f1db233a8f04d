"""Shared training machinery for every recipe (captioner, recognizer, sentiment).

A recipe builds a model, a dataset and two functions, and hands them to `Trainer`:

    trainer = Trainer(
        model=model,                      # nn.Module holding every trained parameter
        config=cfg,                       # a TrainConfig (or a subclass of it)
        train_dataset=ds, collate_fn=collate,
        loss_fn=lambda model, batch: ...,  # -> scalar loss, or (loss, {"name": float})
        evaluate_fn=lambda model, epoch: {"CIDEr-D": ...},  # optional, rank 0, real decoding
        monitor="CIDEr-D", mode="max",     # best-model / early-stopping score
        on_best=lambda model, scores, epoch: ...,  # export the best model (rank 0)
        run_dir=out / "run",
        param_groups=param_groups(model, cfg),   # optional: lower LR for encoder blocks
    )
    result = trainer.fit()

What the engine does: device choice (`--device auto|cpu|cuda|cuda:N`), mixed precision on
CUDA (bf16 autocast where supported, else fp16 + GradScaler; off on CPU), AdamW with warmup
+ cosine/step/constant schedule, gradient clipping with the norm logged every step,
DistributedDataParallel when launched by `torchrun` (only rank 0 writes), a run directory
(`config.json`, `metrics.jsonl`, `curves.png`, `checkpoints/`), checkpoints every epoch that
`--resume` continues exactly (optimizer, scheduler, scaler, RNG, epoch, best score), early
stopping and best-model selection. `batch_sampler` (e.g. `batching.LengthBatches`) replaces
the random batches. Checkpoint files are written atomically and the training
state is read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Sampler

from captioner.checkpoint import write_json_atomic
from captioner.pipelines import runstate
from captioner.pipelines.batching import make_loader
from captioner.pipelines.config import TrainConfig, to_dict
from captioner.pipelines.optim import amp_settings, build_scheduler, param_groups
from captioner.pipelines.plot import plot_curves
from captioner.pipelines.runstate import (
    DistInfo,
    barrier,
    init_distributed,
    publish_model_dir,
    resolve_device,
    seed_everything,
    shutdown_distributed,
    to_device,
)
from captioner.progress import StepProgress

log = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "Trainer",
    "FitResult",
    "DistInfo",
    "setup",
    "barrier",
    "init_distributed",
    "shutdown_distributed",
    "resolve_device",
    "seed_everything",
    "param_groups",
    "build_scheduler",
    "to_device",
    "publish_model_dir",
]

LossFn = Callable[[nn.Module, Any], "Tensor | tuple[Tensor, dict[str, float]]"]
EvalFn = Callable[[nn.Module, int], dict[str, float]]
BestFn = Callable[[nn.Module, dict[str, float], int], None]


@dataclass
class FitResult:
    best_score: float | None
    best_epoch: int | None  # 1-based epoch whose model was exported by on_best
    epochs_done: int
    steps: int
    stopped_early: bool
    last_scores: dict[str, float]


def setup(config: TrainConfig) -> DistInfo:
    """Process set-up every recipe starts with: CPU threads, torch.distributed (when launched
    by torchrun), device, seeds. Returns this process's `DistInfo`."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    dist = init_distributed(config.device)
    seed_everything(config.seed)
    return dist


class Trainer:
    """Runs epochs of `loss_fn` over `train_dataset`; see the module docstring."""

    def __init__(
        self,
        *,
        model: nn.Module,
        config: TrainConfig,
        train_dataset: Dataset,
        loss_fn: LossFn,
        run_dir: str | Path,
        collate_fn: Callable | None = None,
        evaluate_fn: EvalFn | None = None,
        monitor: str = "train_loss",
        mode: str = "min",
        on_best: BestFn | None = None,
        param_groups: list[dict] | None = None,
        run_config: dict | None = None,
        dist: DistInfo | None = None,
        score_to_beat: float | None = None,
        batch_sampler: Sampler | None = None,
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if evaluate_fn is None and monitor != "train_loss":
            raise ValueError(f"monitor {monitor!r} needs an evaluate_fn")
        self.config, self.loss_fn, self.evaluate_fn = config, loss_fn, evaluate_fn
        self.monitor, self.mode, self.on_best = monitor, mode, on_best
        self.dist = dist or init_distributed(config.device)
        self.device = self.dist.device
        self.run_dir = Path(run_dir)
        self.model = model.to(self.device)
        self.wrapped: nn.Module = self.model
        if self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
        if not sum(len(g["params"]) for g in groups):
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.loader, self.sampler_gen = make_loader(
            train_dataset, batch_size=config.batch_size, num_workers=config.num_workers,
            dist=self.dist, device=self.device, seed=config.seed, collate_fn=collate_fn,
            batch_sampler=batch_sampler,
        )  # fmt: skip
        if len(self.loader) == 0:
            raise ValueError("the training set is empty")
        self.scheduler = build_scheduler(self.optimizer, config, steps_per_epoch=len(self.loader))
        self.amp_dtype, use_scaler = amp_settings(self.device, config.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.run_config = {**(run_config or {}), "train": to_dict(config)}
        self.epoch = self.step = 0
        # score_to_beat: e.g. the initial model's (fine-tuning); on_best fires only above it
        self.best: dict[str, Any] = {"score": score_to_beat, "epoch": None, "bad_epochs": 0}
        self.finished = False

    # ------------------------------------------------------------------ one step
    def _train_step(self, batch: Any) -> tuple[float, float, dict[str, float]]:
        c = self.config
        batch = to_device(batch, self.device)
        with torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            out = self.loss_fn(self.wrapped, batch)
        loss, extra = out if isinstance(out, tuple) else (out, {})
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = c.grad_clip if c.grad_clip > 0 else float("inf")
        norm = float(nn.utils.clip_grad_norm_(params, max_norm))
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips the step itself on inf/nan
            self.scaler.update()
        elif math.isfinite(norm):
            self.optimizer.step()
        else:
            log.warning("step %d: non-finite gradient norm (%s); update skipped", self.step, norm)
        self.scheduler.step()
        return float(loss.detach()), norm, {k: float(v) for k, v in extra.items()}

    # ------------------------------------------------------------------ the loop
    def fit(self) -> FitResult:
        c = self.config
        main = self.dist.is_main
        ckpt_dir = self.run_dir / "checkpoints"
        if c.resume and runstate.has_checkpoint(ckpt_dir):
            self._resume(ckpt_dir)
        elif main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "metrics.jsonl").write_text("")
        if main:
            write_json_atomic(self.run_dir / "config.json", self.run_config)
        metrics = runstate.MetricsLog(self.run_dir / "metrics.jsonl", enabled=main)
        scores: dict[str, float] = {}
        done_now = 0
        while self.epoch < c.epochs and not self.finished:
            epoch = self.epoch + 1
            t0 = time.time()
            train_loss = self._train_epoch(epoch, metrics)
            train_s = time.time() - t0
            scores = {"train_loss": train_loss}
            if self.evaluate_fn is not None:
                scores.update(self._evaluate(epoch))
            improved = self._update_best(scores, epoch)
            self.epoch, done_now = epoch, done_now + 1
            patience_out = c.patience > 0 and self.best["bad_epochs"] >= c.patience
            self.finished = patience_out or epoch >= c.epochs
            rngs = runstate.gather_rng(self.dist)  # every rank's RNG, for an exact resume
            if main:
                if improved and self.on_best is not None:
                    self.on_best(self.model, scores, epoch)
                record = {
                    "type": "epoch",
                    "epoch": epoch,
                    "step": self.step,
                    "time_s": round(time.time() - t0, 3),  # training + validation
                    "train_s": round(train_s, 3),
                    **scores,
                    "best_score": self.best["score"],
                    "best_epoch": self.best["epoch"],
                }
                metrics.write(record)
                log.info("epoch %d/%d %s", epoch, c.epochs, _fmt(scores))
                self._save_checkpoint(ckpt_dir, rngs)
                last = self.finished or (c.stop_after and done_now >= c.stop_after)
                if c.plot_every > 0 and (epoch % c.plot_every == 0 or last):
                    plot_curves(self.run_dir)
            runstate.barrier(self.dist)
            if patience_out:
                log.info("early stop: no %s improvement for %d epochs", self.monitor, c.patience)
            if c.stop_after and done_now >= c.stop_after and not self.finished:
                log.info("stopping after %d epochs as asked (--resume continues)", done_now)
                break
        metrics.close()
        return FitResult(
            self.best["score"],
            self.best["epoch"],
            self.epoch,
            self.step,
            self.finished and self.epoch < c.epochs,
            scores,
        )

    def _train_epoch(self, epoch: int, metrics: runstate.MetricsLog) -> float:
        c = self.config
        self.wrapped.train()
        self.sampler_gen.manual_seed(c.seed * 1000 + epoch)
        for part in (self.loader.sampler, self.loader.batch_sampler, self.loader.dataset):
            if hasattr(part, "set_epoch"):  # DistributedSampler, per-epoch reference choice...
                part.set_epoch(epoch)
        total, count = 0.0, 0
        progress = StepProgress(desc=f"epoch {epoch}/{c.epochs}", total=len(self.loader),
                                every=c.progress_every, enabled=self.dist.is_main, log=log)  # fmt: skip
        for batch in self.loader:
            tokens = batch_tokens(batch)  # counted on the CPU batch, before it moves
            loss, norm, extra = self._train_step(batch)
            self.step += 1
            total, count = total + loss, count + 1
            lr = self.optimizer.param_groups[0]["lr"]
            if self.step % max(1, c.log_every) == 0:
                metrics.write(
                    {
                        "type": "step",
                        "epoch": epoch,
                        "step": self.step,
                        "loss": loss,
                        "grad_norm": norm,
                        "lr": lr,
                        **extra,
                    }
                )
            progress.update(1, tokens=tokens, loss=loss, gnorm=norm)
        progress.close()
        return runstate.mean_across(total, count, self.dist, self.device)

    def _evaluate(self, epoch: int) -> dict[str, float]:
        scores: dict[str, float] = {}
        if self.dist.is_main:
            self.model.eval()
            with torch.no_grad():
                scores = {k: float(v) for k, v in self.evaluate_fn(self.model, epoch).items()}
            self.model.train()
            if self.monitor not in scores:
                raise KeyError(f"evaluate_fn returned {sorted(scores)}, no {self.monitor!r}")
        return runstate.broadcast(scores, self.dist)

    def _update_best(self, scores: dict[str, float], epoch: int) -> bool:
        value = scores.get(self.monitor)
        old = self.best["score"]
        better = (
            value is not None
            and math.isfinite(value)
            and (old is None or (value > old if self.mode == "max" else value < old))
        )
        if better:
            self.best.update(score=value, epoch=epoch, bad_epochs=0)
        else:
            self.best["bad_epochs"] += 1
        return better

    # ------------------------------------------------------------------ checkpoints
    def _state(self, rngs: list[dict]) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "finished": self.finished,
            "best": dict(self.best),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": rngs,
            "world_size": self.dist.world_size,
        }

    def _save_checkpoint(self, ckpt_dir: Path, rngs: list[dict]) -> None:
        runstate.save_checkpoint(
            ckpt_dir,
            self.epoch,
            self.model.state_dict(),
            self._state(rngs),
            keep=self.config.keep_checkpoints,
        )

    def _resume(self, ckpt_dir: Path) -> None:
        weights, state = runstate.load_checkpoint(ckpt_dir, map_location=self.device)
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best = dict(state["best"])
        # recomputed, not restored: a run resumed with more --epochs continues
        c = self.config
        self.finished = self.epoch >= c.epochs or (
            c.patience > 0 and self.best["bad_epochs"] >= c.patience
        )
        rngs = state["rng"]
        runstate.set_rng_state(rngs[self.dist.rank] if len(rngs) > self.dist.rank else rngs[0])
        if self.dist.is_main:
            runstate.truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
            _warn_config_changes(self.run_dir / "config.json", self.run_config)
        log.info("resumed %s at epoch %d, step %d", ckpt_dir, self.epoch, self.step)


def batch_tokens(batch: Any) -> int | None:
    """The tokens a training batch holds, for tokens/s: the non-padding ids of its target
    sequences (`tgt` for translation, `captions`; padding is id 0 in every vocabulary here),
    else the summed `lengths` (sentiment texts); None for a batch without text (images)."""
    if not isinstance(batch, dict):
        return None
    for key in ("tgt", "captions"):
        ids = batch.get(key)
        if isinstance(ids, Tensor) and not ids.is_floating_point():
            return int((ids != 0).sum())
    lengths = batch.get("lengths")
    return int(lengths.sum()) if isinstance(lengths, Tensor) else None


def _fmt(scores: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in scores.items())


def _warn_config_changes(path: Path, now: dict) -> None:
    """Log the settings that differ from the interrupted run's (resume flags aside)."""
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    flat = {**before, **before.get("train", {})}
    current = {**now, **now.get("train", {})}
    ignore = {"train", "resume", "stop_after"}
    changed = sorted(
        k for k in current if k not in ignore and flat.get(k, current[k]) != current[k]
    )
    if changed:
        log.warning("resuming with changed settings: %s",
                    ", ".join(f"{k} {flat[k]!r} -> {current[k]!r}" for k in changed))  # fmt: skip
