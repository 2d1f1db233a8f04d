"""Resuming caption training: after SIGKILL mid-epoch, and exactly at an epoch boundary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from captioner import Captioner
from captioner.data.scenes import build_scene_dataset
from captioner.pipelines import runstate
from captioner.pipelines import train_captioner as tc
from captioner.pipelines.config import parse_config

pytestmark = pytest.mark.slow  # training runs in child processes: 8-45 s

TINY = ["--encoder", "mobilenet_v3_small", "--encoder-weights", "none", "--embed-dim", "16",
        "--hidden-dim", "32", "--attention-dim", "16", "--device", "cpu", "--beam-size", "1",
        "--plot-every", "0", "--threads", "1", "--max-length", "12"]  # fmt: skip


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early:\n{proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting for training")
        time.sleep(0.005)


def _epoch2_started(metrics) -> bool:
    try:
        return any(r.get("epoch") == 2 for r in runstate.read_metrics(metrics))
    except FileNotFoundError:
        return False


def test_sigkill_mid_epoch_then_resume_finishes(tmp_path, monkeypatch):
    out = tmp_path / "model"
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    argv = ["--dataset", "scenes:24?num_eval=4&image_size=48", "--out", str(out),
            "--epochs", "2", "--batch-size", "2", *TINY]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "captioner.pipelines.train_captioner", *argv],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    metrics = out / "run" / "metrics.jsonl"
    _wait_for(lambda: _epoch2_started(metrics), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    last = json.loads((out / "run/checkpoints/last.json").read_text())
    assert last["epoch"] == 1  # killed inside epoch 2: epoch 1 is the last checkpoint
    steps_per_epoch = 24 * 5 // 2

    assert tc.main([*argv, "--resume"]) == 0
    assert json.loads((out / "run/checkpoints/last.json").read_text())["epoch"] == 2
    records = runstate.read_metrics(metrics)
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(1, 2 * steps_per_epoch + 1))  # the killed epoch's steps replaced
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]
    model = Captioner.from_pretrained(out, device="cpu")
    assert isinstance(model.caption(build_scene_dataset(num_train=1, num_eval=0)["train"][0]["image"],
                                    beam_size=1)[0], str)  # fmt: skip


@pytest.fixture(scope="module")
def scenes():
    return build_scene_dataset(num_train=12, num_eval=3, image_size=48)


def _final_weights(out) -> dict[str, torch.Tensor]:
    last = json.loads((out / "run/checkpoints/last.json").read_text())
    return load_file(str(out / "run/checkpoints" / last["dir"] / "model.safetensors"))


def test_resume_at_epoch_boundary_gives_identical_weights(tmp_path, monkeypatch, scenes):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))

    def run(out, *extra):
        cfg = parse_config(tc.CaptionTrainConfig, ["--dataset", "scenes", "--out", str(out),
                              "--epochs", "3", "--batch-size", "8", "--dropout", "0.5", *TINY,
                              *extra])  # fmt: skip
        return tc.train(cfg, dataset=scenes)

    run(tmp_path / "straight")
    first = run(tmp_path / "split", "--stop-after", "1")
    assert first.epochs_done == 1
    after_one = _final_weights(tmp_path / "split")
    torch.manual_seed(123)  # the resumed run must not depend on the process's RNG state
    second = run(tmp_path / "split", "--resume")
    assert second.epochs_done == 3
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    assert any(not torch.allclose(a[k], after_one[k]) for k in a)  # epochs 2-3 did train
