"""bench/rnn_gradients.py (issue 13's vanishing-gradient demonstration) in its --quick mode:
a synthetic corpus, three tiny translators, the tables and the plot."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "rnn_gradients.py"


@pytest.fixture
def bench(monkeypatch):
    """The script as a module (its report module beside it importable, as when run)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("rnn_gradients", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text: str, title: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under the line starting with `title`, by first cell."""
    lines = text[text.index(title) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def numbers(cells: list[str]) -> list[float]:
    return [float(re.match(r"[-+0-9.e]+", c).group()) for c in cells if c != "–"]


@pytest.mark.slow
def test_quick_run_reports_three_encoders_with_finite_norms(bench, tmp_path, capsys):
    assert bench.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    bleu = table_rows(out, "BLEU")
    assert list(bleu) == ["rnn", "gru", "lstm"]
    assert all(0 <= v <= 100 for row in bleu.values() for v in numbers(row))
    whens = [f"{cell}, {when}" for cell in ("rnn", "gru", "lstm") for when in ("init", "trained")]
    for title in ("norm of d(loss)", "norm of d(forward encoder", "clipping the global"):
        rows = table_rows(out, title)
        assert list(rows) == whens, title
        values = [v for row in rows.values() for v in numbers(row)]
        assert len(values) >= 2 * len(whens)
        assert all(math.isfinite(v) and v >= 0 for v in values), rows
    clip = table_rows(out, "clipping the global")
    for row in clip.values():  # total, first, factor, total clipped, first clipped, ratio
        total, first, factor, total_c, first_c, share = map(float, row)
        assert 0 < factor <= 1 and total_c <= 1.0 + 1e-3  # --clip 1
        assert first_c == pytest.approx(first * factor, rel=0.02)
        assert share == pytest.approx(first_c / total_c, rel=0.02)  # clipping keeps the share
    png = tmp_path / "rnn_gradients.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_without_the_corpus_it_says_so_and_skips(bench, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"skipped: no Multi30k folder at {tmp_path}")
    assert list(tmp_path.iterdir()) == []
    assert [bench.bucket_of(" ".join("w" * n)) for n in (1, 8, 9, 14, 17, 18, 40)] == [
        0, 0, 1, 2, 3, 4, 4
    ]  # fmt: skip
