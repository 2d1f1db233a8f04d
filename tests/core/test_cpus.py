"""Core counting (affinity, cgroup quota, torchrun ranks) and the labeling thread plan."""

from __future__ import annotations

import pytest

from captioner import cpus
from captioner.cpus import CorePlan, cgroup_quota, plan_cores, usable_cores


@pytest.fixture
def eight_cores(monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)


def test_cgroup_v2_quota_caps_the_affinity(tmp_path, eight_cores):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    assert usable_cores(tmp_path) == 2  # 1.5 cores keep two threads busy part of the time


def test_cgroup_v2_without_a_limit_and_without_files(tmp_path, eight_cores):
    assert usable_cores(tmp_path) == 8  # no cgroup files at all
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None and usable_cores(tmp_path) == 8
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert usable_cores(tmp_path) == 8


def test_cgroup_v1_quota(tmp_path, eight_cores):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(tmp_path) == 3
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert usable_cores(tmp_path) == 8


def test_a_quota_above_the_affinity_changes_nothing(tmp_path, eight_cores):
    (tmp_path / "cpu.max").write_text("3200000 100000\n")  # 32 cores of quota, 8 allowed
    assert usable_cores(tmp_path) == 8


def test_torchrun_ranks_share_the_machine(tmp_path, eight_cores, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert usable_cores(tmp_path) == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert usable_cores(tmp_path) == 1  # never 0
    assert usable_cores(tmp_path, ranks=2) == 4


@pytest.mark.parametrize(
    "cores, workers, decoder",
    [(1, 1, 1), (2, 1, 1), (4, 1, 1), (8, 2, 1), (16, 4, 2), (64, 16, 4), (256, 16, 4)],
)
def test_plan_on_cpu(cores, workers, decoder):
    plan = plan_cores(cores, todo=10_000)
    assert plan == CorePlan(cores, workers, encoder_threads=cores, decoder_threads=decoder)


def test_plan_single_batch_decodes_in_process_and_gpu_gets_more_workers():
    assert plan_cores(16, todo=32, batch_size=32).workers == 0
    assert plan_cores(16, todo=33, batch_size=32).workers == 4
    assert plan_cores(16, todo=10_000, device="cuda").workers == 8


def test_plan_defaults_to_the_usable_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "usable_cores", lambda: 12)
    assert plan_cores().cores == 12 and plan_cores().workers == 3


def test_onnx_session_threads_follow_the_plan(monkeypatch):
    pytest.importorskip("onnxruntime")
    from captioner import onnx_backend

    seen = {}

    class FakeOrt:
        class SessionOptions:
            def add_session_config_entry(self, *a):
                pass

        class GraphOptimizationLevel:
            ORT_ENABLE_ALL = 99

        @staticmethod
        def InferenceSession(path, opts, providers):
            seen["threads"] = opts.intra_op_num_threads
            return "session"

    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", FakeOrt)
    monkeypatch.setattr(cpus, "usable_cores", lambda: 6)
    assert onnx_backend._session("x.onnx", None) == "session" and seen["threads"] == 6
    onnx_backend._session("x.onnx", 3)
    assert seen["threads"] == 3


def test_small_op_commands_run_on_the_decoder_threads_and_restore_them(monkeypatch):
    """Issue 25: sentiment / translate / caption load a model and run small ops; on a 2-core
    machine with a busy core, 2 PyTorch threads made them several times slower."""
    import importlib

    import torch

    cli_main = importlib.import_module("captioner.cli.main")  # the module, not cli.main()

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "usable_cores", lambda *a, **k: 4)
    with cpus.small_op_threads() as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice wins
    with cpus.small_op_threads() as n:
        assert n == before
    monkeypatch.delenv("OMP_NUM_THREADS")
    seen = {}

    class Command:
        @staticmethod
        def main(argv):
            seen["threads"] = torch.get_num_threads()
            return 0

    monkeypatch.setattr(cli_main.importlib, "import_module", lambda name: Command)
    assert cli_main.run_command("sentiment", ["x"]) == 0 and seen["threads"] == 1
    assert cli_main.run_command("train", ["x"]) == 0 and seen["threads"] == before
    assert torch.get_num_threads() == before
