"""Issue 14's hostile inputs: photo folders, model directories, caption sources, images."""

from __future__ import annotations

import csv
import json
import os
import stat
import time
import warnings
from pathlib import Path

import pytest
from attack_corpus import FORMULA_NAMES, data_attacks, model_dir_attacks, photo_folder_attacks
from labeling_support import color_image, make_photos, tiny_model
from PIL import Image
from tests_support import tiny_model_dir

from captioner.api import Captioner
from captioner.checkpoint import CheckpointError
from captioner.data.coco_captions import load_coco, load_karpathy
from captioner.data.common import DataError
from captioner.data.sources import load_flickr
from captioner.data.tables import load_table
from captioner.decoding import GenerationConfig
from captioner.imageio import ImageLoadError, open_image
from captioner.labeling import LabelEngine, LabelOptions, ScanOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.scan import iter_files
from captioner.labeling.writers import JournalError


@pytest.fixture(scope="module")
def engine():
    options = EngineOptions(backend="torch", generation=GenerationConfig(beam_size=1), top_k=2)
    return LabelEngine(tiny_model(), options)


def rows_of(path: Path) -> dict[str, dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {r["path"]: r for r in map(json.loads, lines)}


def run(folder, engine, **kw):
    kw.setdefault("workers", 0)
    return label_folders([folder], engine, LabelOptions(**kw))


# ---------------------------------------------------------------- photo folders (5, 9, 13-15)
def test_hostile_photo_folder(tmp_path, engine):
    folder, outside = tmp_path / "photos", tmp_path / "outside"
    made = photo_folder_attacks(folder, outside)
    summary = run(folder, engine, formats=("jsonl", "csv", "metadata", "xmp"))
    rows = rows_of(folder / "labels.jsonl")
    # 13: a named pipe (and a link to one) gets an error row saying so, and nothing hangs
    for name, text in made["errors"].items():
        assert text in rows[name]["error"], rows[name]
    assert summary.exit_code == 3
    # 5: the planted link at b.jpg.xmp is not written through; the file outside is intact
    assert made["victim"].read_text() == "precious"
    assert (folder / "b.jpg.xmp").is_symlink() and (folder / "ok.jpg.xmp").is_file()
    # 15: stale temporary files of a killed export are gone; every output has one mode
    assert not [n for n in made["stale"] if (folder / n).exists()]
    modes = {
        stat.S_IMODE((folder / n).stat().st_mode)
        for n in ("labels.jsonl", "labels.csv", "metadata.jsonl", "ok.jpg.xmp")
    }
    assert len(modes) == 1 and modes.pop() & 0o044 == 0o044
    (folder / "labels.jsonl").chmod(0o600)  # made private: the exports follow the journal
    (folder / "labels.csv").chmod(0o644)
    run(folder, engine, formats=("jsonl", "csv", "metadata"))
    for name in ("labels.csv", "metadata.jsonl"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    # 9: formula-like names are quote-prefixed in the CSV (the journal keeps them as they are)
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        paths = [r["path"] for r in csv.DictReader(f)]
    for name in FORMULA_NAMES:
        assert name in rows and "'" + name in paths
    assert not [p for p in paths if p[:1] in "=+-@"]
    assert not list(folder.glob(".*.lock")), "the journal lock is removed at the end"


def test_include_star_never_picks_the_runs_own_outputs(tmp_path, engine):
    make_photos(tmp_path, 3, sub_every=0)
    run(tmp_path, engine, formats=("jsonl", "csv", "metadata", "xmp"))
    picked = list(iter_files(tmp_path, ScanOptions(include=("*",), hidden=True)))
    assert sorted(picked) == ["p000.jpg", "p001.jpg", "p002.jpg"]


def test_journal_link_leading_out_of_the_folder_is_refused(tmp_path, engine):
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    make_photos(folder, 2, sub_every=0)
    elsewhere.mkdir()
    os.symlink(elsewhere / "labels.jsonl", folder / "labels.jsonl")  # dangling
    with pytest.raises(JournalError, match="symbolic link"):
        run(folder, engine)
    assert not (elsewhere / "labels.jsonl").exists()


def test_journal_link_inside_the_folder_is_followed(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    (tmp_path / "real.jsonl").write_text("")
    os.symlink("real.jsonl", tmp_path / "labels.jsonl")
    run(tmp_path, engine)
    assert len(rows_of(tmp_path / "real.jsonl")) == 2 and (tmp_path / "labels.jsonl").is_symlink()


# ---------------------------------------------------------------- model directories (7)
@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("good"))


def test_every_broken_model_dir_is_a_clear_error_naming_the_file(good_model, tmp_path):
    for name, (directory, expected) in model_dir_attacks(good_model, tmp_path).items():
        start = time.perf_counter()
        with pytest.raises(CheckpointError) as info:
            Captioner.from_pretrained(directory, device="cpu", backend="torch")
        assert expected in str(info.value), (name, str(info.value))
        assert str(directory) in str(info.value), name
        assert time.perf_counter() - start < 5, f"{name} took too long"


def test_encoder_weights_file_inside_the_model_dir_is_read_from_there(good_model, tmp_path):
    """A relative encoder.weights means the model directory, never the current one."""
    from safetensors.torch import load_file, save_file

    from captioner.modelcheck import load_model_dir

    target = tmp_path / "m"
    import shutil

    shutil.copytree(good_model, target)
    enc = {
        k[8:]: v
        for k, v in load_file(target / "model.safetensors").items()
        if k.startswith("encoder.")
    }
    save_file(enc, target / "enc.safetensors")
    config = json.loads((target / "config.json").read_text())
    config["encoder"]["weights"] = "enc.safetensors"
    (target / "config.json").write_text(json.dumps(config))
    loaded, _ = load_model_dir(target)
    assert loaded["encoder"]["weights"] == str((target / "enc.safetensors").resolve())


# ---------------------------------------------------------------- caption sources (3, 4, 8)
LOADERS = {
    "load_table": load_table,
    "load_coco": load_coco,
    "load_flickr": load_flickr,
    "load_karpathy": load_karpathy,
}


def test_every_broken_caption_source_names_file_and_line(tmp_path):
    for name, (loader, kwargs, expected) in data_attacks(tmp_path).items():
        with pytest.raises(DataError) as info:
            LOADERS[loader](**kwargs, verify_images=False)
        assert expected in str(info.value), (name, str(info.value))


def test_bom_nul_and_skip_mode(tmp_path):
    data_attacks(tmp_path)
    flickr = load_flickr(tmp_path / "flickr", verify_images=False)
    assert flickr["train"][0]["captions"] == ["caption of im00.png"]  # BOM line kept
    table = load_table(tmp_path / "nul.csv", verify_images=False)
    (caption,) = [c for split in table.values() for row in split for c in row["captions"]]
    assert caption == "a cat on a mat"
    skipped = load_table(tmp_path / "nested.jsonl", verify_images=False, on_error="skip")
    assert skipped.report.num_skipped == 1 and "nested too deeply" in str(skipped.report.skipped[0])


# ---------------------------------------------------------------- image limits (10)
def test_max_pixels_is_the_one_limit_above_pillows(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # Pillow's bomb guard, made tiny
    big = tmp_path / "big.jpg"
    color_image(3, (300, 200)).save(big)  # 60,000 px: 6x Pillow's limit, an error to Pillow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_image(big, max_pixels=100_000).size == (300, 200)
    with pytest.raises(ImageLoadError, match="above the"):
        open_image(big, max_pixels=50_000)
    assert Image.MAX_IMAGE_PIXELS == 10_000  # restored


@pytest.mark.slow
def test_a_102_megapixel_jpeg_loads_under_a_higher_max_pixels(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (12_000, 8_500), (90, 120, 200)).save(path, quality=50)
    img = open_image(path, draft_size=224, max_pixels=500_000_000)
    assert min(img.size) >= 224 and max(img.size) <= 12_000 // 8 * 2
    with pytest.raises(ImageLoadError, match="above the 50 MP limit"):
        open_image(path, max_pixels=50_000_000)


def test_encoder_weights_name_never_reads_the_current_folder(good_model, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "m"
    shutil.copytree(good_model, target)
    config = json.loads((target / "config.json").read_text())
    config["encoder"]["weights"] = "passwd"
    (target / "config.json").write_text(json.dumps(config))
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "passwd").write_text("root:x:0:0")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(CheckpointError, match="current folder"):
        Captioner.from_pretrained(target, device="cpu", backend="torch")


def test_atomic_write_keeps_a_private_files_mode_and_refuses_links_out(tmp_path):
    from captioner.atomic import UnsafePathError, write_bytes_atomic

    private = tmp_path / "labels.csv"
    private.write_text("old")
    private.chmod(0o600)
    write_bytes_atomic(private, b"new", within=tmp_path)
    assert private.read_bytes() == b"new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    (tmp_path / "out.txt").write_text("keep")
    (tmp_path / "folder").mkdir()
    os.symlink(tmp_path / "out.txt", tmp_path / "folder" / "x.csv")
    with pytest.raises(UnsafePathError, match="outside"):
        write_bytes_atomic(tmp_path / "folder" / "x.csv", b"evil", within=tmp_path / "folder")
    assert (tmp_path / "out.txt").read_text() == "keep"
    assert os.listdir(tmp_path / "folder") == ["x.csv"]  # no temporary file left
