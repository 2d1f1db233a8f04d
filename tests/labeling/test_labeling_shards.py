"""Sharded labeling: --shard K/N, the merge, a killed shard, torchrun ranks on gloo."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
from pathlib import Path

import pytest
from labeling_support import make_photos, tiny_model

from captioner.cli.label import main as label_main
from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.merge import ShardsIncomplete, merge_labels
from captioner.labeling.shards import Shard, ShardError, parse_shard
from captioner.labeling.writers import JournalError


class KillingEngine(LabelEngine):
    """Kills its own process (SIGKILL, nothing cleaned up) before its `kill_at`-th batch."""

    def __init__(self, *a, kill_at: int | None = None, **kw):
        super().__init__(*a, **kw)
        self.images, self.batches, self.kill_at = 0, 0, kill_at

    def heads(self, grid, pooled):
        if self.batches == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.batches += 1
        self.images += grid.size(0)
        return super().heads(grid, pooled)


def engine(beam: int = 2, **kw) -> KillingEngine:
    return KillingEngine(
        tiny_model(),
        EngineOptions(backend="torch", generation=GenerationConfig(beam_size=beam)),
        **kw,
    )


def run(folder: Path, eng, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("batch_size", 2)
    return label_folders([folder], eng, LabelOptions(**kw))


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def shard_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("labels.shard-*"))


def test_parse_shard_and_clear_errors():
    assert parse_shard("1/4") == Shard(1, 4) and str(Shard(3, 4)) == "3/4"
    for bad, says in [("4/4", "K from 0 to N-1"), ("0/0", "N from 1"), ("1", "expected K/N"),
                      ("a/b", "expected K/N"), ("-1/2", "expected K/N")]:  # fmt: skip
        with pytest.raises(ValueError, match=says):
            parse_shard(bad)


def test_cli_rejects_a_malformed_shard(tmp_path, capsys):
    assert label_main([str(tmp_path), "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_every_image_has_exactly_one_shard():
    rels = [f"d{i % 7}/img{i:04d}.jpg" for i in range(400)]
    for n in (1, 2, 5):
        owners = [[k for k in range(n) if Shard(k, n).owns(0, r)] for r in rels]
        assert all(len(o) == 1 for o in owners)
        if n > 1:  # and the split is not degenerate
            sizes = [sum(o == [k] for o in owners) for k in range(n)]
            assert min(sizes) > 400 / n / 2, sizes


def test_two_shards_give_the_rows_and_exports_of_one_process(tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos, 11)
    single = run(photos, engine(), out=tmp_path / "one/labels.jsonl", formats=("jsonl", "csv"))
    assert single.exit_code == 0
    kw = {"out": tmp_path / "two/labels.jsonl", "formats": ("jsonl", "csv")}
    first = run(photos, engine(), shard=Shard(0, 2), **kw)
    assert 0 < first.labelled < 11 and first.waiting and "shard 1/2" in first.waiting[0]
    assert not (tmp_path / "two/labels.jsonl").exists()  # no output before the merge
    second = run(photos, engine(), shard=Shard(1, 2), **kw)
    assert first.labelled + second.labelled == 11
    assert rows(tmp_path / "two/labels.jsonl") == rows(tmp_path / "one/labels.jsonl")
    assert (tmp_path / "two/labels.csv").read_bytes() == (tmp_path / "one/labels.csv").read_bytes()
    assert shard_files(tmp_path / "two") == []  # merged once: the shard files are gone
    again = run(photos, engine(), shard=Shard(1, 2), **kw)  # a late rerun redoes nothing
    assert again.labelled == 0 and again.skipped == second.labelled
    assert merge_labels([photos], out=kw["out"]).merged == []


def test_merge_refuses_while_a_shard_is_incomplete(tmp_path, capsys):
    make_photos(tmp_path, 9)
    run(tmp_path, engine(), shard=Shard(2, 3), merge=False)
    with pytest.raises(ShardsIncomplete, match=r"shard 0/3: \d+ image\(s\).*shard 1/3"):
        merge_labels([tmp_path])
    assert label_main([str(tmp_path), "--merge"]) == 2
    assert "unfinished shards" in capsys.readouterr().err
    assert not (tmp_path / "labels.jsonl").exists()
    assert shard_files(tmp_path) == [
        "labels.shard-00002-of-00003.jsonl",
        "labels.shard-00002-of-00003.settings.jsonl",
    ]


def test_shards_with_other_settings_or_another_split_are_refused(tmp_path):
    make_photos(tmp_path, 8)
    run(tmp_path, engine(beam=2), shard=Shard(0, 2))
    with pytest.raises(ShardError, match="other settings.*beam_size"):
        run(tmp_path, engine(beam=1), shard=Shard(1, 2))
    with pytest.raises(ShardError, match="different splits"):
        run(tmp_path, engine(beam=2), shard=Shard(0, 3))
    assert not (tmp_path / "labels.jsonl").exists()
    assert run(tmp_path, engine(beam=2), shard=Shard(1, 2)).exit_code == 0
    assert len(rows(tmp_path / "labels.jsonl")) == 8


def _killed_shard(folder: str) -> None:
    run(Path(folder), engine(kill_at=2), shard=Shard(1, 2))


def test_a_killed_shard_rerun_labels_every_image_exactly_once(tmp_path):
    rels = make_photos(tmp_path, 16)
    proc = multiprocessing.get_context("fork").Process(target=_killed_shard, args=(str(tmp_path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    journal = tmp_path / "labels.shard-00001-of-00002.jsonl"
    assert len(rows(journal)) == 4  # two batches of two were saved before the kill
    mine = sum(Shard(1, 2).owns(0, r) for r in rels)
    run(tmp_path, engine(), shard=Shard(0, 2))
    rerun = engine()
    summary = run(tmp_path, rerun, shard=Shard(1, 2))
    assert (summary.skipped, rerun.images) == (4, mine - 4)
    merged = [r["path"] for r in rows(tmp_path / "labels.jsonl")]
    assert merged == rels  # every image once, in the walk order of one process
    assert shard_files(tmp_path) == []


def _rank(argv: list[str], env: dict[str, str], code) -> None:
    import logging
    import sys

    from captioner.cli.label_distributed import torchrun_main

    os.environ.update(env)
    logging.disable(logging.CRITICAL)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - a short-lived child
    code.value = torchrun_main(argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_give_the_rows_of_one_process(tmp_path):
    from tests_support import tiny_model_dir

    model = tiny_model_dir(tmp_path)
    photos = tmp_path / "photos"
    make_photos(photos, 10)
    common = ["--model", str(model), "--backend", "torch", "--batch-size", "2", "--workers", "0"]
    assert label_main([str(photos), *common, "--out", str(tmp_path / "one.jsonl")]) == 0
    argv = [str(photos), *common, "--out", str(tmp_path / "ranks/labels.jsonl")]
    port = str(_free_port())
    ctx = multiprocessing.get_context("fork")
    codes = [ctx.Value("i", -1) for _ in range(2)]
    procs = []
    for rank in range(2):
        env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}  # fmt: skip
        procs.append(ctx.Process(target=_rank, args=(argv, env, codes[rank])))
        procs[-1].start()
    for p in procs:
        p.join(120)
    assert [c.value for c in codes] == [0, 0]
    assert rows(tmp_path / "ranks/labels.jsonl") == rows(tmp_path / "one.jsonl")
    assert shard_files(tmp_path / "ranks") == []


def test_a_running_shard_is_left_to_merge_itself(tmp_path):
    from captioner.labeling.lock import JournalLock

    make_photos(tmp_path, 8)
    run(tmp_path, engine(), shard=Shard(1, 2), merge=False)
    with JournalLock(tmp_path / "labels.shard-00001-of-00002.jsonl"):  # shard 1 still "runs"
        first = run(tmp_path, engine(), shard=Shard(0, 2))
        assert first.exit_code == 0 and "another captioner label run" in first.waiting[0]
        assert not (tmp_path / "labels.jsonl").exists()
    assert merge_labels([tmp_path]).merged == [str(tmp_path / "labels.jsonl")]


def test_merge_needs_the_shards_selection_and_a_labels_journal(tmp_path):
    from captioner.labeling.scan import ScanOptions

    make_photos(tmp_path, 6)
    run(tmp_path, engine(), shard=Shard(0, 2), merge=False)
    run(tmp_path, engine(), shard=Shard(1, 2), merge=False)
    with pytest.raises(ShardError, match="other selection flags"):
        merge_labels([tmp_path], scan=ScanOptions(exclude=("sub",)))
    (tmp_path / "labels.jsonl").write_text("my own notes\n")
    with pytest.raises(JournalError, match="not a captioner labels file"):
        merge_labels([tmp_path])
    assert (tmp_path / "labels.jsonl").read_text() == "my own notes\n"
    (tmp_path / "labels.jsonl").unlink()
    assert len(rows(Path(merge_labels([tmp_path]).merged[0]))) == 6
