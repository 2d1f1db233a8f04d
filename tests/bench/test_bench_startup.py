"""bench/startup.py's table (issue 25): command, cold, warm, warm CPU, the goal for the warm
time, whether it is met, and the CPU time beyond `import torch`'s; nothing is run or timed here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "startup.py"


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("startup_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_timed_command_with_a_goal_is_in_the_table(bench):
    names = [name for name, _ in bench.commands("demo/examples/photo-chelsea.jpg")]
    assert names[0] == bench.FLOOR and set(bench.TARGETS) <= set(names)
    assert bench.TARGETS == {
        "captioner sentiment TEXT": 2.5,
        "captioner caption ONE.jpg": 3.5,
        "captioner translate TEXT --to de": 3.0,
    }


def test_table_says_target_met_and_cost_beyond_import_torch(bench, capsys):
    rows = [
        [bench.FLOOR, 2.1, 2.0, 1.9],
        ["captioner --help", 0.1, 0.05, 0.05],
        ["captioner sentiment TEXT", 2.6, 2.4, 2.3],
        ["captioner caption ONE.jpg", 5.0, 3.9, 3.7],
        ["captioner translate TEXT --to de", 2.9, 2.6, 2.5],
    ]
    bench.print_table(rows, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["command", "cold", "s", "warm", "s", "warm", "CPU", "s",
                                "target", "s", "met?", "CPU-torch", "s"]  # fmt: skip
    cells = {line.rsplit(None, 6)[0].strip(): line.split()[-6:] for line in lines[1:6]}
    assert cells["captioner sentiment TEXT"] == ["2.60", "2.40", "2.30", "2.50", "yes", "0.40"]
    assert cells["captioner caption ONE.jpg"][3:] == ["3.50", "NO", "1.80"]
    assert cells["captioner --help"][3:] == ["-", "-", "-"]
    assert lines[-1] == "targets met: 2 of 3 (warm wall time, this tree)"


def test_table_with_an_older_tree_beside(bench, capsys):
    rows = [[bench.FLOOR, 2.1, 2.0, 1.9, 2.2, 2.1, 2.0],
            ["captioner sentiment TEXT", 2.6, 2.4, 2.3, 9.0, 8.0, 7.5]]  # fmt: skip
    bench.print_table(rows, Path("/tmp/old"))
    out = capsys.readouterr().out
    sentiment = next(line for line in out.splitlines() if line.startswith("captioner sentiment"))
    assert sentiment.split()[-7:] == ["2.30", "2.50", "yes", "0.40", "9.00", "8.00", "7.50"]
    assert "before (/tmp/old)" in out
