"""Never lose work: resume, torn lines, interruptions (SIGKILL in a subprocess), no duplicates."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from labeling_support import make_photos, tiny_model
from PIL import Image

from captioner.cli.label import _sigterm_stops_cleanly
from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions


class CountingEngine(LabelEngine):
    """Counts the images it describes; can stop the run after some batches."""

    def __init__(self, *a, stop_after: int | None = None, stop=None, **kw):
        super().__init__(*a, **kw)
        self.images, self.batches, self.stop_after, self.stop = 0, 0, stop_after, stop

    def heads(self, grid, pooled):
        if self.stop_after is not None and self.batches == self.stop_after:
            self.stop()
        self.batches += 1
        self.images += grid.size(0)
        return super().heads(grid, pooled)


def engine(**kw) -> CountingEngine:
    return CountingEngine(
        tiny_model(), EngineOptions(backend="torch", generation=GenerationConfig(beam_size=2)), **kw
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def run(folders, eng, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("batch_size", 3)
    return label_folders(
        folders if isinstance(folders, list) else [folders], eng, LabelOptions(**kw)
    )


def test_resume_labels_only_what_is_missing(tmp_path):
    rels = make_photos(tmp_path, 10)
    run(tmp_path, engine())
    journal = tmp_path / "labels.jsonl"
    kept = journal.read_text(encoding="utf-8").splitlines()[:6]
    journal.write_text("\n".join(kept) + "\n", encoding="utf-8")
    eng = engine()
    summary = run(tmp_path, eng)
    assert (eng.images, summary.skipped, summary.labelled) == (4, 6, 4)
    assert sorted(r["path"] for r in lines(journal)) == rels


def test_torn_last_line_is_dropped_and_the_run_resumes(tmp_path):
    rels = make_photos(tmp_path, 5)
    run(tmp_path, engine())
    journal = tmp_path / "labels.jsonl"
    with open(journal, "ab") as f:
        f.write(b'{"path": "p003.jpg", "caption": "a half-writ')  # power cut mid-line
    with open(journal, "rb+") as f:  # and garbage lines in the middle, as after a crash
        content = f.read()
        f.seek(0)
        f.write(content.replace(b"\n", b"\n\x00\x00\x00\nedited by hand\n", 1))
    eng = engine()
    summary = run(tmp_path, eng)
    assert eng.images == 0 and summary.skipped == 5
    rows = lines(journal)  # compacted: every line valid, one per image
    assert sorted(r["path"] for r in rows) == rels
    assert (tmp_path / "labels.jsonl.rejected").read_bytes() == b"edited by hand\n"


def test_a_foreign_labels_file_is_never_touched(tmp_path):
    from captioner.labeling.writers import JournalError

    make_photos(tmp_path, 2)
    foreign = b"id,label\n1,cat\n"
    (tmp_path / "labels.jsonl").write_bytes(foreign)
    with pytest.raises(JournalError, match="not a captioner labels file"):
        run(tmp_path, engine(), overwrite=True)
    assert (tmp_path / "labels.jsonl").read_bytes() == foreign


def test_interrupted_run_keeps_finished_batches_and_exits_130(tmp_path):
    rels = make_photos(tmp_path, 12)

    def ctrl_c():
        raise KeyboardInterrupt

    summary = run(tmp_path, engine(stop_after=2, stop=ctrl_c), formats=("jsonl", "csv"))
    assert summary.interrupted and summary.exit_code == 130
    done = lines(tmp_path / "labels.jsonl")
    assert len(done) == 6  # two batches of three
    assert (tmp_path / "labels.csv").read_text(encoding="utf-8").count("\n") == 7
    eng = engine()
    summary = run(tmp_path, eng)
    assert (eng.images, summary.exit_code) == (6, 0)
    assert sorted(r["path"] for r in lines(tmp_path / "labels.jsonl")) == rels


def test_sigterm_stops_cleanly(tmp_path):
    make_photos(tmp_path, 9)
    with _sigterm_stops_cleanly():
        eng = engine(stop_after=1, stop=lambda: os.kill(os.getpid(), signal.SIGTERM))
        summary = run(tmp_path, eng)
    assert summary.interrupted and len(lines(tmp_path / "labels.jsonl")) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_retry_failed_and_overwrite_leave_no_duplicates(tmp_path):
    make_photos(tmp_path, 4, sub_every=0)
    (tmp_path / "late.jpg").write_bytes(b"")
    assert run(tmp_path, engine()).exit_code == 3
    Image.new("RGB", (20, 20), "white").save(tmp_path / "late.jpg")  # fixed meanwhile
    summary = run(tmp_path, engine())
    assert (summary.previously_failed, summary.exit_code) == (1, 3)
    eng = engine()
    summary = run(tmp_path, eng, retry_failed=True)
    assert (eng.images, summary.labelled, summary.exit_code) == (1, 1, 0)
    rows = lines(tmp_path / "labels.jsonl")
    assert len(rows) == 5 and all(r["error"] is None for r in rows)
    eng = engine()
    run(tmp_path, eng, overwrite=True)
    assert eng.images == 5 and len(lines(tmp_path / "labels.jsonl")) == 5


def test_shared_output_for_several_folders_and_moved_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_photos(a, 3, sub_every=0)
    make_photos(b, 2, sub_every=0)  # same relative names as in a
    out = tmp_path / "all.jsonl"
    run([a, b], engine(), out=out, formats=("metadata",))
    rows = lines(out)
    assert sorted((Path(r["folder"]).name, r["path"]) for r in rows) == [
        ("a", "p000.jpg"),
        ("a", "p001.jpg"),
        ("a", "p002.jpg"),
        ("b", "p000.jpg"),
        ("b", "p001.jpg"),
    ]
    assert len(lines(a / "metadata.jsonl")) == 3 and len(lines(b / "metadata.jsonl")) == 2
    eng = engine()
    assert run([a, b], eng, out=out).skipped == 5 and eng.images == 0
    run(a, engine())  # per-folder journal inside a, then the folder moves
    moved = shutil.move(str(a), str(tmp_path / "moved"))
    eng = engine()
    assert run(moved, eng).skipped == 3 and eng.images == 0


def _label_cli(argv: list[str]) -> None:
    from captioner.cli.label import main

    logging.disable(logging.CRITICAL)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child is killed
    sys.exit(main(argv))


def test_sigkill_mid_run_then_resume_without_duplicates(tmp_path):
    """A real process killed with SIGKILL while labeling; the rerun finishes the job."""
    from tests_support import tiny_model_dir

    model = tiny_model_dir(tmp_path, encoder="mobilenet_v3_small")
    photos = tmp_path / "photos"
    rels = make_photos(photos, 60)
    journal = photos / "labels.jsonl"
    argv = [
        str(photos),
        "--model",
        str(model),
        "--batch-size",
        "1",
        "--workers",
        "0",
        "--backend",
        "torch",
        "--beam-size",
        "3",
    ]
    # A forked child runs the real command line (no second interpreter start-up to wait for).
    proc = multiprocessing.get_context("fork").Process(target=_label_cli, args=(argv,))
    proc.start()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.is_alive():
            if journal.exists() and journal.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.002)
        if not proc.is_alive():
            pytest.fail(f"run ended (exit code {proc.exitcode}) before it could be killed")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL
    data = journal.read_bytes()
    complete = [json.loads(x) for x in data.split(b"\n")[:-1]]  # a torn tail is allowed
    assert 4 <= len(complete) < 60 and len({r["path"] for r in complete}) == len(complete)
    from captioner import Captioner

    eng = CountingEngine(
        Captioner.from_pretrained(model, device="cpu"),
        EngineOptions(backend="torch", generation=GenerationConfig(beam_size=3)),
    )
    summary = run(photos, eng, batch_size=8)
    assert summary.skipped == len(complete) and eng.images == 60 - len(complete)
    rows = lines(journal)
    assert sorted(r["path"] for r in rows) == rels and len(rows) == 60
    assert [r for r in rows if r["path"] in {c["path"] for c in complete}] == complete
