"""Issue 14's run-level faults: two runs on one folder, a full disk, resume without
`last.json`, a killed demo, the demo's batch memory."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from labeling_support import make_photos, tiny_model
from PIL import Image
from training_support import tiny_trainer

from captioner.checkpoint import CheckpointError
from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.lock import FolderBusyError, lock_path
from captioner.pipelines import runstate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine():
    return LabelEngine(
        tiny_model(),
        EngineOptions(backend="torch", generation=GenerationConfig(beam_size=1), top_k=2),
    )


def journal_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def hold_lock(journal: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the journal's lock for `seconds` (started and holding)."""
    code = textwrap.dedent(f"""
        import sys, time
        from captioner.labeling.lock import JournalLock
        with JournalLock({str(journal)!r}):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# ---------------------------------------------------------------- 1: two runs, one folder
def test_second_run_on_a_held_folder_stops_or_waits(tmp_path, engine):
    make_photos(tmp_path, 6, sub_every=0)
    journal = tmp_path / "labels.jsonl"
    holder = hold_lock(journal, 2.0)
    try:
        with pytest.raises(FolderBusyError, match=rf"process {holder.pid}.*--wait"):
            label_folders([tmp_path], engine, LabelOptions(workers=0))
        assert not journal.exists()  # nothing was written by the refused run
        start = time.perf_counter()
        summary = label_folders([tmp_path], engine, LabelOptions(workers=0, wait=True))
        assert time.perf_counter() - start > 0.5  # it waited for the holder
    finally:
        holder.wait(10)
    assert summary.labelled == 6 and len(journal_rows(journal)) == 6
    assert not lock_path(journal).exists()


def test_out_into_a_new_folder_still_works(tmp_path, engine):
    make_photos(tmp_path / "photos", 2, sub_every=0)
    out = tmp_path / "new" / "deeper" / "labels.jsonl"
    label_folders([tmp_path / "photos"], engine, LabelOptions(workers=0, out=out))
    assert len(journal_rows(out)) == 2 and not lock_path(out).exists()


def test_cli_exit_code_2_when_the_folder_is_busy(tmp_path, capsys, engine, monkeypatch):
    from captioner.cli import label as cli

    make_photos(tmp_path, 2, sub_every=0)
    monkeypatch.setattr(cli, "_engine", lambda args: engine)  # the model is not the point
    holder = hold_lock(tmp_path / "labels.jsonl", 30)
    try:
        assert cli.main([str(tmp_path), "--workers", "0"]) == 2
        assert "another captioner label run" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(10)
    assert cli.main([str(tmp_path), "--workers", "0", "--wait"]) == 0


def test_identical_concurrent_runs_label_each_image_once(tmp_path, engine):
    """Two runs started together: one labels, the other waits (--wait) and then finds every
    image done. Without the lock both appended a row per image (2N rows)."""
    make_photos(tmp_path, 8, sub_every=0)
    barrier = threading.Barrier(2)
    results = []

    def one_run():
        barrier.wait()
        options = LabelOptions(workers=0, batch_size=1, wait=True)
        results.append(label_folders([tmp_path], engine, options))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.labelled for r in results) == [0, 8]
    assert sorted(r.skipped for r in results) == [0, 8]
    assert len(journal_rows(tmp_path / "labels.jsonl")) == 8


# ---------------------------------------------------------------- 16: disk full
def test_full_disk_names_the_journal_and_keeps_it_intact(tmp_path, engine, monkeypatch):
    make_photos(tmp_path, 6, sub_every=0)
    label_folders([tmp_path], engine, LabelOptions(workers=0, batch_size=2))
    journal = tmp_path / "labels.jsonl"
    before = journal.read_bytes()
    (tmp_path / "p006.jpg").write_bytes((tmp_path / "p000.jpg").read_bytes())
    real_write = os.write

    def full(fd, data):  # the first bytes go out, then the disk is full
        if len(data) > 20:
            real_write(fd, bytes(data[:20]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match=r"No space left.*intact.*run the same command") as info:
        label_folders([tmp_path], engine, LabelOptions(workers=0))
    assert info.value.filename == str(journal)
    monkeypatch.undo()
    assert journal.read_bytes() == before  # no torn line
    assert label_folders([tmp_path], engine, LabelOptions(workers=0)).labelled == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_tmpfs_disk(tmp_path, engine):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        make_photos(tmp_path / "photos", 60, sub_every=0)
        out = disk / "labels.jsonl"
        with pytest.raises(OSError) as info:
            label_folders(
                [tmp_path / "photos"], engine, LabelOptions(workers=0, out=out, batch_size=4)
            )
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(out)
        assert "intact" in str(info.value)
        rows = journal_rows(out)  # every line whole
        assert 0 < len(rows) < 60
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", "-l", str(disk)])


# ---------------------------------------------------------------- 2: resume
def test_resume_without_last_json_continues_from_the_newest_epoch(tmp_path):
    tiny_trainer(tmp_path, epochs=3).fit()
    ckpt, metrics = tmp_path / "run" / "checkpoints", tmp_path / "run" / "metrics.jsonl"
    assert sorted(p.name for p in ckpt.glob("epoch-*")) == ["epoch-0002", "epoch-0003"]
    (ckpt / "last.json").unlink()
    before = runstate.read_metrics(metrics)
    result = tiny_trainer(tmp_path, epochs=4, resume=True).fit()
    assert result.epochs_done == 4
    after = runstate.read_metrics(metrics)
    assert after[: len(before)] == before  # nothing of the first run's metrics lost
    assert [r["epoch"] for r in after if r["type"] == "epoch"] == [1, 2, 3, 4]


def test_a_corrupt_last_checkpoint_falls_back_to_the_one_before(tmp_path):
    tiny_trainer(tmp_path, epochs=3).fit()
    ckpt = tmp_path / "run" / "checkpoints"
    (ckpt / "epoch-0003" / "model.safetensors").write_bytes(b"\0" * 100)
    weights, state = runstate.load_checkpoint(ckpt)
    assert state["epoch"] == 2 and weights


def test_no_valid_checkpoint_refuses_and_keeps_metrics(tmp_path):
    tiny_trainer(tmp_path, epochs=2).fit()
    run = tmp_path / "run"
    for d in (run / "checkpoints").glob("epoch-*"):
        (d / "state.pt").write_bytes(b"junk")
    (run / "checkpoints" / "last.json").unlink()
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        tiny_trainer(tmp_path, epochs=3, resume=True).fit()
    assert (run / "metrics.jsonl").read_bytes() == before


# ---------------------------------------------------------------- 12: the demo's temp folder
def test_sigterm_removes_the_demo_temp_folder(tmp_path):
    code = "from captioner.demo.env import prepare_environment, stop_on_sigterm as stop; "
    code += "stop(); print(prepare_environment(), flush=True); "
    code += "import time; time.sleep(60)"
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    temp = Path(proc.stdout.readline().decode().strip())
    (temp / "upload-photo.jpg").write_bytes(b"private")
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    assert not temp.exists()


def test_stale_demo_folders_of_dead_processes_are_removed(tmp_path):
    from captioner.demo.env import OWNER_FILE, remove_stale_temp_dirs

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone, alive, old = (tmp_path / f"captioner-demo-{n}" for n in ("gone", "alive", "old"))
    for d, pid in ((gone, dead.stdout.strip()), (alive, str(os.getpid()))):
        d.mkdir()
        (d / OWNER_FILE).write_text(pid)
        (d / "photo.jpg").write_bytes(b"private")
    old.mkdir()
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    assert sorted(remove_stale_temp_dirs(tmp_path)) == sorted([gone, old])
    assert alive.exists() and not gone.exists() and not old.exists()


# ---------------------------------------------------------------- 11: the batch tab's memory
def test_batch_images_are_shrunk_one_at_a_time_within_a_pixel_budget(tmp_path):
    import zipfile

    from captioner.demo import batch as batching
    from captioner.encoders import ImageTransform

    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1500), (10, 200, 30)).save(big)
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as zf:
        for i in range(5):
            zf.write(big, f"img{i}.png")
    items = batching.iter_batch_items(
        [tmp_path / "many.zip"], work_dir=tmp_path, max_pixels=10_000_000,
        transform=ImageTransform(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    )  # fmt: skip
    got = list(items)
    sizes = [it.image.size for it in got if it.image is not None]
    assert len(sizes) == 3 and all(224 <= min(s) < 448 for s in sizes)  # 3 x 3 MP fit 10 MP
    assert [("gigapixels" in (it.error or "")) for it in got] == [False] * 3 + [True] * 2


def test_null_upload_path_keeps_the_error_text(monkeypatch):
    gr = pytest.importorskip("gradio")
    from captioner.demo.ui import image_input

    def broken(self, payload):
        raise OSError("image file is truncated")

    monkeypatch.setattr(gr.Image, "preprocess", broken)
    component = image_input(type="pil")
    with pytest.raises(gr.Error) as info:
        component.preprocess(SimpleNamespace(path=None, orig_name="photo.png"))
    assert info.value.message == "photo.png: cannot read this image (image file is truncated)"


def test_cli_full_disk_while_exporting_says_the_journal_is_intact(
    tmp_path, capsys, engine, monkeypatch
):
    from captioner.cli import label as cli
    from captioner.labeling import exports

    make_photos(tmp_path, 2, sub_every=0)
    monkeypatch.setattr(cli, "_engine", lambda args: engine)

    def full(records, path, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(exports, "write_csv", full)  # formats.FORMATS["csv"] calls it
    assert cli.main([str(tmp_path), "--workers", "0", "--format", "csv"]) == 1
    err = capsys.readouterr().err
    assert "labels.csv" in err and "journal is intact" in err
    assert len(journal_rows(tmp_path / "labels.jsonl")) == 2
