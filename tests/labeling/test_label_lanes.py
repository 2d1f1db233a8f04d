"""`captioner label` in lanes (issue 25): on CPU with the ONNX encoder, batches are encoded
and searched side by side, one thread each; the journal keeps walk order and the same rows
as one batch at a time."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from labeling_support import make_photos, tiny_model

from captioner.cpus import plan_cores
from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


def engine(cache, **kw) -> LabelEngine:
    options = EngineOptions(backend="onnx", onnx_cache=cache, top_k=3,
                            generation=GenerationConfig(beam_size=2), **kw)  # fmt: skip
    return LabelEngine(tiny_model(), options)


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_lanes_default_to_one_per_core_on_cpu_with_onnx(cache):
    assert engine(cache).lanes == plan_cores().cores
    assert engine(cache, lanes=1).lanes == 1
    torch_engine = LabelEngine(tiny_model(), EngineOptions(backend="torch", lanes=3))
    assert torch_engine.lanes == 1  # the PyTorch encoder runs one batch at a time
    with pytest.raises(ValueError, match="lanes"):
        engine(cache, lanes=0)


@pytest.mark.parametrize("workers", [0, 1])
def test_lanes_keep_walk_order_and_give_the_same_rows(tmp_path, cache, monkeypatch, workers):
    make_photos(tmp_path / "photos", 23)
    seen: set[str] = set()
    heads = LabelEngine.heads

    def spy(self, grid, pooled):
        seen.add(threading.current_thread().name)
        assert torch.get_num_threads() == self.decoder_threads  # set once for all lanes
        return heads(self, grid, pooled)

    out = {}
    for lanes in (1, 3):
        monkeypatch.setattr(LabelEngine, "heads", spy)
        eng = engine(cache, lanes=lanes)
        options = LabelOptions(out=tmp_path / f"{lanes}.jsonl", batch_size=4, workers=workers)
        summary = label_folders([tmp_path / "photos"], eng, options)
        assert summary.labelled == 23 and summary.exit_code == 0
        out[lanes] = rows(tmp_path / f"{lanes}.jsonl")
    assert [r["path"] for r in out[1]] == [r["path"] for r in out[3]]
    assert [r["path"] for r in out[3]] == sorted(r["path"] for r in out[3])
    assert out[1] == out[3]
    assert len({name for name in seen if name.startswith("lane")}) > 1


def test_a_failing_lane_stops_the_run_with_its_error(tmp_path, cache, monkeypatch):
    make_photos(tmp_path / "photos", 12)
    eng = engine(cache, lanes=2)
    calls = []

    def broken(self, grid, pooled):
        calls.append(1)
        raise RuntimeError("search failed")

    monkeypatch.setattr(LabelEngine, "heads", broken)
    with pytest.raises(RuntimeError, match="search failed"):
        label_folders([tmp_path / "photos"], eng,
                      LabelOptions(out=tmp_path / "l.jsonl", batch_size=4, workers=0))  # fmt: skip
    assert calls


def test_the_label_command_passes_lanes(tmp_path, monkeypatch, capsys):
    from tests_support import tiny_model_dir

    from captioner.cli import label
    from captioner.cli.label_flags import build_parser

    assert build_parser().parse_args([str(tmp_path)]).lanes is None
    with pytest.raises(SystemExit):
        build_parser().parse_args([str(tmp_path), "--lanes", "0"])
    seen = []

    def spy(self, captioner, options=None):
        seen.append(options.lanes)
        raise ValueError("stop here")

    monkeypatch.setattr(LabelEngine, "__init__", spy)
    args = build_parser().parse_args([str(tmp_path), "--lanes", "2", "--model",
                                      str(tiny_model_dir(tmp_path))])  # fmt: skip
    assert label._engine(args) is None and seen == [2]
    assert "stop here" in capsys.readouterr().err
