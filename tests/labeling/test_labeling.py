"""Folder labeling: bad files, originals untouched, heads, workers, exit codes, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from labeling_support import TAGS, WEIRD_NAMES, make_photos, make_zoo, snapshot, tiny_model
from PIL import Image

from captioner.cli.label import main
from captioner.decoding import GenerationConfig
from captioner.imageio import MAX_PIXELS
from captioner.labeling import LabelEngine, LabelOptions, ScanOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.loader import load_one
from captioner.labeling.scan import iter_files


@pytest.fixture(scope="module")
def engine():
    return LabelEngine(
        tiny_model(),
        EngineOptions(backend="torch", generation=GenerationConfig(beam_size=2), top_k=3),
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(folder, engine, **kw):
    kw.setdefault("workers", 0)
    return label_folders([folder], engine, LabelOptions(**kw))


def test_every_bad_file_gets_a_clear_error_row_and_the_run_goes_on(tmp_path, engine):
    expected = make_zoo(tmp_path / "zoo")
    summary = run(tmp_path / "zoo", engine, batch_size=4)
    rows = {r["path"]: r for r in read_jsonl(tmp_path / "zoo" / "labels.jsonl")}
    assert set(rows) == set(expected)  # notes.txt ignored, folder loop walked once
    for name, err in expected.items():
        row = rows[name]
        if err is None:
            assert row["error"] is None, row
            assert isinstance(row["caption"], str) and row["caption"]
            assert [t["label"] in TAGS for t in row["tags"]] == [True] * 3
            assert row["sentiment"]["label"] in ("negative", "positive")
        else:
            assert err in row["error"] and name.split(".")[0] in row["error"], row
            assert row["caption"] is None and row["tags"] is None
    failed = sum(e is not None for e in expected.values())
    assert (summary.failed, summary.labelled, summary.exit_code) == (
        failed,
        len(expected) - failed,
        3,
    )


def test_awkward_but_valid_images_decode_right(tmp_path):
    make_zoo(tmp_path)
    spec = LabelEngine(tiny_model(caption=False), EngineOptions(backend="torch")).spec
    big = load_one(str(tmp_path / "rotated.jpg"), dataclasses.replace(spec, size=64), MAX_PIXELS)
    top, bottom = big[5, 32], big[58, 32]  # EXIF orientation 6: red on top, blue below
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    anim = load_one(str(tmp_path / "anim.gif"), spec, MAX_PIXELS)
    assert tuple(anim[16, 16]) == (255, 0, 0)  # first frame
    pal = load_one(str(tmp_path / "palette.png"), spec, MAX_PIXELS)
    assert tuple(pal[16, 2]) == (255, 255, 255) and tuple(pal[16, 30]) == (0, 255, 0)
    deep = load_one(str(tmp_path / "deep16.png"), spec, MAX_PIXELS)
    assert deep[0, 0, 0] < 20 and deep[-1, -1, 0] > 235  # 16-bit range kept, not clipped
    cmyk = load_one(str(tmp_path / "cmyk.jpg"), spec, MAX_PIXELS)
    assert cmyk[10, 10, 0] > 200 and cmyk[10, 10, 1] < 60


def test_unreadable_file_is_an_error_row(tmp_path, engine, monkeypatch):
    make_photos(tmp_path, 3, sub_every=0)
    locked = tmp_path / "p001.jpg"
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads anything: simulate the permission error opening it would raise
        real_open = os.open

        def guarded(fp, *a, **kw):
            if str(fp) == str(locked):
                raise PermissionError(13, "Permission denied", str(fp))
            return real_open(fp, *a, **kw)

        monkeypatch.setattr(os, "open", guarded)
    summary = run(tmp_path, engine)
    rows = {r["path"]: r for r in read_jsonl(tmp_path / "labels.jsonl")}
    assert "permission denied" in rows["p001.jpg"]["error"]
    assert rows["p000.jpg"]["error"] is None and summary.exit_code == 3


def test_decompression_bomb_limit_is_configurable(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    run(tmp_path, engine, max_pixels=200 * 200)
    rows = {r["path"]: r for r in read_jsonl(tmp_path / "labels.jsonl")}
    assert "big.png" in rows["big.png"]["error"] and "limit" in rows["big.png"]["error"]
    assert rows["p000.jpg"]["error"] is None


def test_originals_are_never_modified(tmp_path, engine):
    make_zoo(tmp_path / "zoo")
    make_photos(tmp_path / "zoo", 5)
    before = snapshot(tmp_path / "zoo")
    run(tmp_path / "zoo", engine, formats=("jsonl", "csv", "metadata", "xmp"))
    after = snapshot(tmp_path / "zoo")
    assert {k: after[k] for k in before} == before
    assert any(k.endswith(".xmp") for k in after)  # outputs were written beside them


def test_missing_heads_give_null_fields(tmp_path):
    make_photos(tmp_path, 3)
    tagger = LabelEngine(tiny_model(caption=False), EngineOptions(backend="torch"))
    run(tmp_path, tagger, out=tmp_path / "t.jsonl")
    rows = read_jsonl(tmp_path / "t.jsonl")
    assert all(
        r["caption"] is None and r["sentiment"] is None and len(r["tags"]) == 5 for r in rows
    )
    no_tags = LabelEngine(tiny_model(tags=False, sentiment=False), EngineOptions(backend="torch"))
    run(tmp_path, no_tags, out=tmp_path / "c.jsonl")
    rows = read_jsonl(tmp_path / "c.jsonl")
    assert all(r["caption"] and r["tags"] is None and r["sentiment"] is None for r in rows)


def test_same_captions_as_the_captioner_api(tmp_path, engine):
    rels = make_photos(tmp_path, 12)
    run(tmp_path, engine, batch_size=5)
    rows = {r["path"]: r for r in read_jsonl(tmp_path / "labels.jsonl")}
    api = tiny_model().caption([str(tmp_path / r) for r in rels], beam_size=2)
    assert [rows[r]["caption"] for r in rels] == api
    assert len(set(api)) > 1  # the test model tells images apart


class OpaqueTransform:
    """Any PIL -> float tensor callable: decoded and transformed in the worker."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, image):
        return self.inner(image)


def test_any_encoder_transform_works(tmp_path, engine):
    make_photos(tmp_path, 6)
    model = tiny_model()
    model.encoder.transform = OpaqueTransform(model.encoder.transform)
    other = LabelEngine(
        model, EngineOptions(backend="torch", generation=GenerationConfig(beam_size=2), top_k=3)
    )
    assert not other.uint8 and engine.uint8
    run(tmp_path, engine, out=tmp_path / "a.jsonl")
    run(tmp_path, other, out=tmp_path / "b.jsonl", workers=1, batch_size=2)
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert [(r["path"], r["caption"]) for r in a] == [(r["path"], r["caption"]) for r in b]


def test_worker_processes_keep_order_and_results(tmp_path, engine):
    make_photos(tmp_path, 23)
    run(tmp_path, engine, batch_size=4, workers=0, out=tmp_path / "a.jsonl")
    run(tmp_path, engine, batch_size=4, workers=2, out=tmp_path / "b.jsonl")
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert [r["path"] for r in a] == [r["path"] for r in b] == iter_files_list(tmp_path)
    assert [r["caption"] for r in a] == [r["caption"] for r in b]


def iter_files_list(folder: Path) -> list[str]:
    return list(iter_files(folder))


def test_selection_rules(tmp_path):
    make_photos(tmp_path, 6)
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "h.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / ".dot.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "UPPER.JPG")
    (tmp_path / "raw.heic").write_bytes(b"\0" * 10)
    (tmp_path / "labels.jsonl").write_text("")
    all_files = list(iter_files(tmp_path))
    assert all_files == sorted(all_files, key=lambda p: p.split("/"))
    assert "UPPER.JPG" in all_files and "sub/p002.png" in all_files
    assert not any(
        p.startswith(".") or "/." in p or p.endswith((".heic", ".jsonl")) for p in all_files
    )
    flat = list(iter_files(tmp_path, ScanOptions(recursive=False)))
    assert flat == [p for p in all_files if "/" not in p]
    assert list(iter_files(tmp_path, ScanOptions(include=("*.heic",)))) == ["raw.heic"]
    assert "sub/p002.png" not in list(iter_files(tmp_path, ScanOptions(exclude=("sub",))))
    assert list(iter_files(tmp_path, ScanOptions(include=("*.png",), exclude=("p005*",)))) == [
        "sub/p002.png"
    ]
    assert ".hidden/h.jpg" in list(iter_files(tmp_path, ScanOptions(hidden=True)))


def test_weird_names_round_trip_through_jsonl(tmp_path, engine):
    for i, name in enumerate(WEIRD_NAMES):
        Image.fromarray(np.full((20, 20, 3), i * 30, np.uint8)).save(tmp_path / name)
    summary = run(tmp_path, engine)
    rows = read_jsonl(tmp_path / "labels.jsonl")
    assert sorted(r["path"] for r in rows) == sorted(WEIRD_NAMES)
    assert all((tmp_path / r["path"]).is_file() and r["error"] is None for r in rows)
    assert summary.exit_code == 0


# ------------------------------------------------------------------ command line
@pytest.mark.slow
def test_cli_exit_codes_and_usage_errors(tmp_path, capsys, monkeypatch):
    model = tiny_model_dir(tmp_path)
    photos = tmp_path / "photos"
    make_photos(photos, 4)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CAPTIONER_CACHE", str(cache))
    base = ["--model", str(model), "--workers", "0", "--backend", "torch"]
    assert main([str(photos), *base, "--format", "csv,metadata"]) == 0
    err = capsys.readouterr().err
    assert "labelled 4, skipped 0 (already done), failed 0" in err
    assert (photos / "labels.csv").is_file() and (photos / "metadata.jsonl").is_file()
    assert main([str(photos), *base]) == 0  # resume: nothing to do
    assert "labelled 0, skipped 4" in capsys.readouterr().err
    (photos / "zero.jpg").write_bytes(b"")
    assert main([str(photos), *base]) == 3
    assert "zero.jpg: empty file" in capsys.readouterr().err
    assert main([str(photos), *base]) == 3  # the earlier failure is still there
    other = tmp_path / "other"
    make_photos(other, 1)
    (other / "labels.jsonl").write_text("my own notes\n")
    assert main([str(other), *base]) == 2
    assert "not a captioner labels file" in capsys.readouterr().err
    assert (other / "labels.jsonl").read_text() == "my own notes\n"
    assert main([str(photos), *base, "--out", str(tmp_path / "x.csv")]) == 2
    assert "needs its own name" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), *base]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main([str(photos), "--format", "pdf"]) == 2
    assert "unknown format pdf" in capsys.readouterr().err
    assert main([str(photos), "--batch-size", "0"]) == 2
    assert main([str(photos), "--model", str(tmp_path / "no-model")]) == 2
    assert "cannot load model" in capsys.readouterr().err
    assert main([]) == 2


def tiny_model_dir(tmp_path: Path) -> Path:
    from tests_support import tiny_model_dir as make

    return make(tmp_path, encoder="resnet18")
