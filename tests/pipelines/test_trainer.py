"""The shared training engine on a tiny synthetic regression task (no images, milliseconds)."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import nn
from training_support import mse_loss, tiny_trainer

from captioner.checkpoint import CheckpointError
from captioner.pipelines import runstate
from captioner.pipelines.trainer import (
    TrainConfig,
    build_scheduler,
    param_groups,
    publish_model_dir,
    resolve_device,
)


def test_loss_decreases_and_run_files(tmp_path):
    result = tiny_trainer(tmp_path, plot_every=100).fit()  # drawn once, at the end
    run = tmp_path / "run"
    records = runstate.read_metrics(run / "metrics.jsonl")
    steps = [r for r in records if r["type"] == "step"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, 33))  # 64 / 8 = 8 steps x 4 epochs
    assert all(r["grad_norm"] > 0 and r["lr"] > 0 for r in steps)
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]
    assert result.epochs_done == 4 and result.steps == 32 and result.best_epoch == 4
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["batch_size"] == 8
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = torch.load(run / "checkpoints/epoch-0004/state.pt", weights_only=True)
    assert state["epoch"] == 4 and state["step"] == 32 and len(state["rng"]) == 1


def test_gradient_norm_is_logged_before_clipping_and_nonfinite_steps_are_skipped(tmp_path, caplog):
    calls = []

    def loss_fn(model, batch):
        calls.append(1)
        loss = mse_loss(model, batch) * 1000.0
        return loss * float("nan") if len(calls) == 2 else loss

    tr = tiny_trainer(tmp_path, loss_fn=loss_fn, grad_clip=1.0, epochs=1, lr=1e-3)
    before = {}

    with caplog.at_level(logging.WARNING, logger="captioner.pipelines.trainer"):
        orig = tr._train_step

        def spy(batch):
            before["w"] = tr.model[0].weight.detach().clone()
            out = orig(batch)
            before.setdefault("after", []).append(
                torch.equal(before["w"], tr.model[0].weight.detach())
            )
            return out

        tr._train_step = spy
        tr.fit()
    steps = [
        r for r in runstate.read_metrics(tmp_path / "run/metrics.jsonl") if r["type"] == "step"
    ]
    assert steps[0]["grad_norm"] > 1.0  # the pre-clipping norm, not the clip value
    assert math.isnan(steps[1]["grad_norm"])
    assert before["after"][1] is True and before["after"][0] is False  # NaN step: no update
    assert "non-finite gradient norm" in caplog.text


def test_warmup_cosine_and_step_schedules():
    p = nn.Parameter(torch.zeros(1))
    cfg = TrainConfig(epochs=2, lr=1.0, warmup=4, min_lr_ratio=0.1)
    sched = build_scheduler(torch.optim.SGD([p], lr=1.0), cfg, steps_per_epoch=12)
    lrs = []
    for _ in range(24):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # cosine: never rises
    assert lrs[-1] == pytest.approx(0.1, abs=0.02)
    cfg = TrainConfig(epochs=3, lr=1.0, warmup=0, schedule="step", gamma=0.5, step_epochs=1)
    sched = build_scheduler(torch.optim.SGD([p], lr=1.0), cfg, steps_per_epoch=2)
    seen = []
    for _ in range(6):
        seen.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    assert seen == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_param_groups_lower_encoder_lr_and_no_decay_on_biases():
    model = nn.ModuleDict({"encoder": nn.Linear(3, 3), "decoder": nn.Linear(3, 2)})
    model["encoder"].bias.requires_grad_(False)
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(lr=1e-3, encoder_lr=1e-5))}
    assert set(groups) == {"encoder", "head", "head_no_decay"}  # frozen encoder bias left out
    assert groups["encoder"]["lr"] == 1e-5 and groups["head"]["lr"] == 1e-3
    assert groups["head_no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["params"][0] is model["decoder"].weight


def test_early_stopping_and_best_model_selection(tmp_path):
    scores = iter([0.3, 0.5, 0.4, 0.45, 0.2, 0.9])
    best_calls = []
    tr = tiny_trainer(
        tmp_path, epochs=6, patience=2,
        evaluate_fn=lambda m, e: {"acc": next(scores)}, monitor="acc", mode="max",
        on_best=lambda m, s, e: best_calls.append((e, s["acc"])),
    )  # fmt: skip
    result = tr.fit()
    assert best_calls == [(1, 0.3), (2, 0.5)]
    assert result.stopped_early and result.epochs_done == 4
    assert result.best_score == 0.5 and result.best_epoch == 2
    with pytest.raises(KeyError, match="no 'acc'"):
        tiny_trainer(tmp_path / "b", evaluate_fn=lambda m, e: {"other": 1.0}, monitor="acc").fit()


def test_resolve_device_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="not a device"):
        resolve_device("toaster")


def test_broken_checkpoints_are_clear_errors(tmp_path):
    tr = tiny_trainer(tmp_path, epochs=1)
    tr.fit()
    ckpt = tmp_path / "run" / "checkpoints"
    (ckpt / "last.json").write_text("{not json")  # falls back to the newest valid folder
    assert runstate.load_checkpoint(ckpt)[1]["epoch"] == 1
    (ckpt / "last.json").write_text(json.dumps({"epoch": 1, "dir": "epoch-0001"}))
    (ckpt / "epoch-0001" / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        runstate.load_checkpoint(ckpt)
    (ckpt / "epoch-0001" / "state.pt").unlink()
    with pytest.raises(CheckpointError, match="state.pt: missing"):
        tiny_trainer(tmp_path, epochs=2, resume=True).fit()


def test_keep_checkpoints_and_publish_model_dir(tmp_path):
    tiny_trainer(tmp_path, epochs=3, keep_checkpoints=2).fit()
    kept = sorted(p.name for p in (tmp_path / "run/checkpoints").glob("epoch-*"))
    assert kept == ["epoch-0002", "epoch-0003"]
    src, out = tmp_path / "model", tmp_path / "out"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"x")
    (out / "run").mkdir(parents=True)
    (out / "labels.json").write_text("[]")  # stale file of an older model
    publish_model_dir(src, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "run"]


def test_resume_with_more_epochs_continues_and_warns_about_changes(tmp_path, caplog):
    tiny_trainer(tmp_path, epochs=2).fit()
    with caplog.at_level(logging.WARNING, logger="captioner.pipelines.trainer"):
        result = tiny_trainer(tmp_path, epochs=3, resume=True, lr=0.01).fit()
    assert result.epochs_done == 3 and result.steps == 24
    assert "lr 0.05 -> 0.01" in caplog.text and "epochs 2 -> 3" in caplog.text
    again = tiny_trainer(tmp_path, epochs=3, resume=True, lr=0.01).fit()  # already finished
    assert again.epochs_done == 3 and again.steps == 24
