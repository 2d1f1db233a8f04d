"""Issue 27's labeller attacks: writes that lead outside the folder, pipes and devices at
output names, unbounded journal reads, malformed records, user files replaced, and the
inputs that ended in a traceback (`--out ''`, a closed stderr, long and hostile names)."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from labeling_support import color_image, make_photos, tiny_model
from tests_support import tiny_model_dir

from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, ScanOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.lock import lock_path
from captioner.labeling.scan import iter_files
from captioner.labeling.writers import JournalError

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="making device nodes needs root")


@pytest.fixture(scope="module")
def engine():
    return LabelEngine(
        tiny_model(),
        EngineOptions(backend="torch", generation=GenerationConfig(beam_size=1), top_k=2),
    )


@pytest.fixture
def cli_with(engine, monkeypatch):
    """`captioner label` with the tiny engine (the model is not the point)."""
    from captioner.cli import label as cli

    monkeypatch.setattr(cli, "_engine", lambda args: engine)
    return lambda *argv: cli.main([*map(str, argv), "--workers", "0"])


def run(folder, engine, **kw):
    kw.setdefault("workers", 0)
    return label_folders([folder], engine, LabelOptions(**kw))


def rows_of(path: Path) -> dict[str, dict]:
    lines = path.read_bytes().decode("utf-8").splitlines()
    return {r["path"]: r for r in map(json.loads, lines)}


def record(path: str, **fields) -> str:
    rec = {"path": path, "caption": "a cat", "tags": [{"label": "cat", "score": 0.9}]}
    rec.update(sentiment={"label": "positive", "score": 0.8}, error=None, model="tiny-test")
    rec.update(fields)
    return json.dumps(rec) + "\n"


def within(seconds: float, fn, *args, **kw):
    """fn(...)'s result or exception, failing the test when it blocks (a named pipe)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("captioner label: error: "), err
    return lines[0]


# ---------------------------------------------------------------- 2: writes stay inside
def test_record_paths_leading_out_of_the_folder_are_not_trusted(tmp_path, engine, caplog):
    folder, outside = tmp_path / "photos", tmp_path / "outside"
    make_photos(folder, 2, sub_every=0)
    outside.mkdir()
    color_image(7).save(outside / "victim.jpg")
    (folder / "labels.jsonl").write_text(
        record("p000.jpg")
        + record("../outside/victim.jpg")
        + record(str(outside / "victim.jpg"))
        + record("sub/../../outside/victim.jpg")
    )
    run(folder, engine, formats=("jsonl", "csv", "metadata", "xmp"))
    assert sorted(p.name for p in outside.iterdir()) == ["victim.jpg"]  # no sidecar there
    for n in (2, 3, 4):
        assert f"labels.jsonl line {n}" in caplog.text
    assert sorted(rows_of(folder / "labels.jsonl")) == ["p000.jpg", "p001.jpg"]
    names = [json.loads(line)["file_name"] for line in open(folder / "metadata.jsonl")]
    assert sorted(names) == ["p000.jpg", "p001.jpg"]
    assert "victim" in (folder / "labels.jsonl.rejected").read_text()  # kept, not lost


def test_no_sidecar_is_written_into_a_linked_folder_leading_out(tmp_path, engine):
    folder, outside = tmp_path / "photos", tmp_path / "outside"
    make_photos(folder, 2, sub_every=0)
    make_photos(outside, 2, sub_every=0)
    os.symlink(outside, folder / "linked")
    summary = run(folder, engine, formats=("jsonl", "xmp"))
    assert summary.labelled == 4  # images behind the link are read and labelled
    assert sorted(p.name for p in outside.iterdir()) == ["p000.jpg", "p001.jpg"]
    assert (folder / "p000.jpg.xmp").is_file()


def test_rejected_file_linked_outside_is_never_appended_to(tmp_path, engine):
    folder, outside = tmp_path / "photos", tmp_path / "outside"
    make_photos(folder, 2, sub_every=0)
    outside.mkdir()
    (outside / "victim").write_text("precious")
    (folder / "labels.jsonl").write_text(record("p000.jpg") + "not json\n")
    os.symlink(outside / "victim", folder / "labels.jsonl.rejected")
    with pytest.raises(JournalError, match="symbolic link"):
        run(folder, engine)
    assert (outside / "victim").read_text() == "precious"


@pytest.mark.parametrize(
    "name", ["labels.jsonl", "labels.jsonl.rejected", "labels.csv", "metadata.jsonl"]
)
def test_a_named_pipe_at_an_output_name_is_refused_at_once(tmp_path, engine, name):
    make_photos(tmp_path, 2, sub_every=0)
    if name == "labels.jsonl.rejected":
        (tmp_path / "labels.jsonl").write_text(record("p000.jpg") + "not json\n")
    os.mkfifo(tmp_path / name)
    with pytest.raises(JournalError, match="named pipe"):
        within(20, run, tmp_path, engine, formats=("jsonl", "csv", "metadata"))
    assert stat.S_ISFIFO(os.lstat(tmp_path / name).st_mode)  # never replaced nor removed
    assert not lock_path(tmp_path / "labels.jsonl").exists()


def test_a_named_pipe_at_the_lock_name_is_refused_and_kept(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    os.mkfifo(lock_path(tmp_path / "labels.jsonl"))
    with pytest.raises(JournalError, match="named pipe"):
        within(20, run, tmp_path, engine)
    assert stat.S_ISFIFO(os.lstat(lock_path(tmp_path / "labels.jsonl")).st_mode)


def test_a_journal_link_loop_is_one_line_and_exit_2(tmp_path, cli_with, capsys):
    make_photos(tmp_path, 2, sub_every=0)
    os.symlink("labels.jsonl", tmp_path / "labels.jsonl")
    assert cli_with(tmp_path) == 2
    assert "loop" in one_error_line(capsys.readouterr().err)


def test_a_pipe_at_a_temporary_file_name_is_not_removed(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    pipe, stale = tmp_path / ".labels.jsonl.abc123.tmp", tmp_path / ".labels.jsonl.old.tmp"
    os.mkfifo(pipe)
    stale.write_text("left by a killed run")
    run(tmp_path, engine)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and not stale.exists()


def test_a_pipe_at_a_sidecar_name_is_skipped_not_replaced(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    os.mkfifo(tmp_path / "p000.jpg.xmp")
    within(60, run, tmp_path, engine, formats=("jsonl", "xmp"))
    assert stat.S_ISFIFO(os.lstat(tmp_path / "p000.jpg.xmp").st_mode)
    assert (tmp_path / "p001.jpg.xmp").is_file()


@needs_root
@pytest.mark.parametrize("name", ["labels.jsonl", "labels.csv", "metadata.jsonl", "p000.jpg.xmp"])
def test_a_device_node_at_an_output_name_is_refused(tmp_path, engine, name):
    make_photos(tmp_path, 2, sub_every=0)
    node = tmp_path / name
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    if name.endswith(".xmp"):
        run(tmp_path, engine, formats=("jsonl", "xmp"))
        assert (tmp_path / "p001.jpg.xmp").is_file()
    else:
        with pytest.raises(JournalError, match="character device"):
            run(tmp_path, engine, formats=("jsonl", "csv", "metadata"))
    assert stat.S_ISCHR(os.lstat(node).st_mode)


@needs_root
def test_out_to_a_device_node_is_one_line_and_exit_2(tmp_path, cli_with, capsys):
    make_photos(tmp_path / "photos", 2, sub_every=0)
    node = tmp_path / "full"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
    assert cli_with(tmp_path / "photos", "--out", node) == 2
    assert "character device" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "photos"]  # no lock file


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_out_dev_full_is_one_line_and_exit_2(tmp_path, cli_with, capsys):
    make_photos(tmp_path, 2, sub_every=0)
    assert within(60, cli_with, tmp_path, "--out", "/dev/full") == 2
    assert "character device" in one_error_line(capsys.readouterr().err)
    assert not os.path.lexists("/dev/.full.lock")


# ---------------------------------------------------------------- 3: bounded reads
def test_a_sparse_8_gb_journal_is_refused_without_reading_it(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    journal = tmp_path / "labels.jsonl"
    journal.write_text(record("p000.jpg"))
    os.truncate(journal, 8 << 30)  # sparse: 8 GB of NUL bytes, no newline
    with pytest.raises(JournalError, match=r"line 2 .*longer than 1 MiB"):
        within(30, run, tmp_path, engine)
    assert journal.stat().st_size == 8 << 30  # left as it was


def test_cli_sparse_journal_is_one_line_and_exit_2(tmp_path, cli_with, capsys):
    make_photos(tmp_path, 2, sub_every=0)
    with open(tmp_path / "labels.jsonl", "wb") as f:
        f.truncate(8 << 30)
    assert within(60, cli_with, tmp_path) == 2
    assert "line 1" in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- 4: user files kept
def test_a_users_labels_csv_is_kept_as_orig(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    (tmp_path / "labels.csv").write_text("name,notes\nholiday,my own notes\n")
    run(tmp_path, engine, formats=("jsonl", "csv"))
    assert (tmp_path / "labels.csv.orig").read_text() == "name,notes\nholiday,my own notes\n"
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 2
    run(tmp_path, engine, formats=("jsonl", "csv"))  # ours now: replaced, nothing more kept
    assert sorted(p.name for p in tmp_path.glob("labels.csv*")) == ["labels.csv", "labels.csv.orig"]


def test_a_users_metadata_with_a_blank_first_line_is_kept_as_orig(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    mine = '\n{"file_name": "p000.jpg", "label": "holiday"}\n'
    (tmp_path / "metadata.jsonl").write_text(mine)
    run(tmp_path, engine, formats=("jsonl", "metadata"))
    assert (tmp_path / "metadata.jsonl.orig").read_text() == mine
    assert len((tmp_path / "metadata.jsonl").read_text().splitlines()) == 2


# ---------------------------------------------------------------- 5: malformed records
MALFORMED = {
    "p000.jpg": {"tags": 5},
    "p001.jpg": {"sentiment": "x"},
    "p002.jpg": {"caption": {}},
    "p003.jpg": {"tags": [{"score": 0.5}]},
    "p004.jpg": {"tags": [{"label": "cat", "score": "high"}]},
    "p005.jpg": {"translations": []},
}


def test_malformed_records_are_reported_by_line_and_relabelled(tmp_path, engine, caplog):
    make_photos(tmp_path, 7, sub_every=0)
    lines = [record(name, **bad) for name, bad in MALFORMED.items()]
    (tmp_path / "labels.jsonl").write_text("".join(lines) + record("p006.jpg"))
    summary = run(tmp_path, engine, formats=("jsonl", "csv", "metadata", "xmp"))
    assert summary.labelled == 6 and summary.skipped == 1
    for n, bad in enumerate(MALFORMED.values(), 1):
        assert f"labels.jsonl line {n}: {next(iter(bad))} is" in caplog.text
    rows = rows_of(tmp_path / "labels.jsonl")
    assert len(rows) == 7 and all(isinstance(r["tags"], list) for r in rows.values())
    assert len((tmp_path / "labels.jsonl.rejected").read_text().splitlines()) == 6


def test_cli_malformed_record_is_no_traceback(tmp_path, cli_with, capsys):
    make_photos(tmp_path, 2, sub_every=0)
    (tmp_path / "labels.jsonl").write_text(record("p000.jpg", tags=5) + record("p001.jpg"))
    assert cli_with(tmp_path, "--format", "csv,metadata,xmp") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "labelled 1, skipped 1" in err


# ---------------------------------------------------------------- exit 2, never a traceback
def test_out_empty_is_one_line_and_exit_2(tmp_path, cli_with, capsys):
    make_photos(tmp_path, 2, sub_every=0)
    assert cli_with(tmp_path, "--out", "") == 2
    assert "--out" in one_error_line(capsys.readouterr().err)


def test_calibration_folder_missing_is_one_line_and_exit_2(tmp_path, capsys):
    from captioner.cli import label as cli

    make_photos(tmp_path / "photos", 2, sub_every=0)
    model = tiny_model_dir(tmp_path / "model")
    argv = [str(tmp_path / "photos"), "--model", str(model), "--device", "cpu"]
    missing = str(tmp_path / "nonexistent")
    assert cli.main([*argv, "--encoder", "int8", "--calibration", missing]) == 2
    assert "--calibration" in one_error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_label_with_stderr_closed_labels_quietly(tmp_path):
    folder = tmp_path / "photos"
    make_photos(folder, 3, sub_every=0)
    model = tiny_model_dir(tmp_path / "model")
    command = [sys.executable, "-m", "captioner.cli.main", "label", str(folder)]
    command += ["--model", str(model), "--device", "cpu", "--backend", "torch", "--workers", "0"]
    done = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.close(2),  # `captioner label DIR 2>&-`
        timeout=300,
    )
    assert done.returncode == 0, done
    rows = rows_of(folder / "labels.jsonl")  # every line one whole record, nothing stray
    assert sorted(rows) == ["p000.jpg", "p001.jpg", "p002.jpg"]


def test_a_name_too_long_for_its_sidecar_is_an_error_and_the_export_goes_on(
    tmp_path, cli_with, capsys
):
    make_photos(tmp_path, 2, sub_every=0)
    fits, too_long = "a" * 247 + ".jpg", "b" * 248 + ".jpg"  # + ".xmp": 255, 256 bytes
    color_image(3).save(tmp_path / fits)
    color_image(4).save(tmp_path / too_long)
    assert cli_with(tmp_path, "--format", "csv,xmp") == 3
    err = capsys.readouterr().err
    assert "name too long for its XMP sidecar" in err and "Traceback" not in err
    assert (tmp_path / (fits + ".xmp")).is_file() and (tmp_path / "p001.jpg.xmp").is_file()
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_files_deeper_than_path_max_get_an_error_row(tmp_path, engine):
    make_photos(tmp_path, 1, sub_every=0)
    fd = os.open(tmp_path, os.O_RDONLY)
    depth, part = 0, "d" * 200
    try:
        while depth * 201 < 4200:  # deeper than PATH_MAX (4096)
            os.mkdir(part, dir_fd=fd)
            inner = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, depth = inner, depth + 1
        image = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(image, (tmp_path / "p000.jpg").read_bytes())
        os.close(image)
    finally:
        os.close(fd)
    summary = run(tmp_path, engine)
    rows = rows_of(tmp_path / "labels.jsonl")
    deep = "/".join([part] * depth + ["deep.jpg"])
    assert rows["p000.jpg"]["error"] is None
    assert "too long" in rows[deep]["error"] and summary.exit_code == 3


def test_escape_sequences_in_names_are_escaped_when_printed(tmp_path, cli_with, capsys):
    make_photos(tmp_path, 1, sub_every=0)
    (tmp_path / "evil\x1b]0;pwned\x07\x1b[2J.jpg").write_bytes(b"not an image")
    assert cli_with(tmp_path) == 3
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J.jpg" in err


def test_escape_sequences_in_logged_paths_are_escaped(tmp_path, cli_with, caplog):
    folder = tmp_path / "ph\x1b[2Jotos"
    make_photos(folder, 2, sub_every=0)
    (folder / "labels.jsonl").write_text(record("p000.jpg", tags=5) + record("p001.jpg"))
    assert cli_with(folder) == 0
    assert "\x1b" not in caplog.text and "ph\\x1b[2Jotos" in caplog.text
    assert "line 1: tags is 5" in caplog.text


def test_names_that_are_not_utf8_keep_the_exports_readable(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    color_image(5).save(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"), "JPEG")
    summary = run(tmp_path, engine, formats=("jsonl", "csv", "metadata"))
    assert summary.labelled == 3 and summary.exit_code == 0
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as f:  # strict UTF-8
        paths = sorted(r["path"] for r in csv.DictReader(f))
    assert paths == ["caf\\xe9.jpg", "p000.jpg", "p001.jpg"]
    meta = (tmp_path / "metadata.jsonl").read_bytes().decode("utf-8")
    assert sorted(json.loads(line)["file_name"] for line in meta.splitlines()) == [
        "p000.jpg",
        "p001.jpg",
    ]
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path), split="train")
    assert loaded.num_rows == 2 and "caption" in loaded.column_names


def test_a_lone_surrogate_in_a_caption_keeps_metadata_readable(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    (tmp_path / "labels.jsonl").write_text(record("p000.jpg", caption="a \ud800 cat"))
    run(tmp_path, engine, formats=("jsonl", "metadata"))
    meta = (tmp_path / "metadata.jsonl").read_bytes().decode("utf-8")
    assert "\\ud800" not in meta and len(meta.splitlines()) == 2


# ---------------------------------------------------------------- own outputs never labelled
def test_out_named_like_an_image_inside_the_folder_is_never_labelled(tmp_path, engine):
    make_photos(tmp_path, 3, sub_every=0)
    out = tmp_path / "zz.jpg"
    first = run(tmp_path, engine, out=out, batch_size=1)
    second = run(tmp_path, engine, out=out)
    assert (first.labelled, second.labelled, second.skipped) == (3, 0, 3)
    assert sorted(rows_of(out)) == ["p000.jpg", "p001.jpg", "p002.jpg"]


def test_include_star_never_picks_kept_foreign_files(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    (tmp_path / "metadata.jsonl").write_text('{"mine": 1}\n')
    (tmp_path / "labels.csv").write_text("mine\n")
    run(tmp_path, engine, formats=("jsonl", "csv", "metadata"))
    run(tmp_path, engine, formats=("jsonl", "csv", "metadata"))  # a second .orig? no
    assert (tmp_path / "metadata.jsonl.orig").exists() and (tmp_path / "labels.csv.orig").exists()
    picked = list(iter_files(tmp_path, ScanOptions(include=("*",), hidden=True)))
    assert sorted(picked) == ["p000.jpg", "p001.jpg"]
