"""Label exports: CSV quoting round trip, datasets imagefolder round trip, XMP sidecars."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from labeling_support import WEIRD_NAMES, make_photos, tiny_model
from PIL import Image

from captioner.decoding import GenerationConfig
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions
from captioner.labeling.exports import CSV_COLUMNS, write_csv
from captioner.labeling.xmp import render, sidecar_path

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "x": "adobe:ns:meta/",
}


@pytest.fixture(scope="module")
def engine():
    return LabelEngine(
        tiny_model(),
        EngineOptions(backend="torch", generation=GenerationConfig(beam_size=2), top_k=3),
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_csv_round_trips_any_file_name(tmp_path, engine):
    for i, name in enumerate(WEIRD_NAMES):
        Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(tmp_path / name)
    (tmp_path / 'broken, "bad".jpg').write_bytes(b"\xff\xd8junk")
    label_folders([tmp_path], engine, LabelOptions(formats=("jsonl", "csv"), workers=0))
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    jsonl = {r["path"]: r for r in read_jsonl(tmp_path / "labels.jsonl")}
    assert (
        sorted(r["path"] for r in rows)
        == sorted(jsonl)
        == sorted([*WEIRD_NAMES, 'broken, "bad".jpg'])
    )
    for row in rows:
        ref = jsonl[row["path"]]
        assert (tmp_path / row["path"]).exists()
        assert row["caption"] == (ref["caption"] or "")
        assert row["tags"].split("; ") == (
            [t["label"] for t in ref["tags"]] if ref["tags"] else [""]
        )
        assert row["error"] == (ref["error"] or "")
    assert 'broken, "bad".jpg' in jsonl['broken, "bad".jpg']["error"]


def test_csv_quotes_tags_with_separators(tmp_path):
    rec = {
        "folder": "/x",
        "path": 'a "b",\nc.jpg',
        "caption": 'say "hi", ok',
        "tags": [{"label": "fish & chips, hot", "score": 0.5}],
        "sentiment": {"label": "positive", "score": 0.9},
        "error": None,
        "model": "m",
    }
    write_csv([rec], tmp_path / "x.csv")
    with open(tmp_path / "x.csv", newline="", encoding="utf-8") as f:
        (header, row) = list(csv.reader(f))
    assert row[:5] == ["/x", 'a "b",\nc.jpg', 'say "hi", ok', "fish & chips, hot", "0.5000"]
    assert row[5:7] == ["positive", "0.9000"]


def test_labelled_folder_loads_as_an_imagefolder_dataset(tmp_path, engine):
    datasets = pytest.importorskip("datasets")
    rels = make_photos(tmp_path, 7)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    label_folders([tmp_path], engine, LabelOptions(formats=("jsonl", "metadata"), workers=0))
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path), split="train")
    jsonl = {r["path"]: r for r in read_jsonl(tmp_path / "labels.jsonl")}
    assert len(ds) == len(rels)  # the failed file has no metadata row and is left out
    assert {"image", "caption", "tags", "tag_scores", "sentiment"} <= set(ds.column_names)
    got = sorted(zip(ds["caption"], map(tuple, ds["tags"])))
    want = sorted((jsonl[r]["caption"], tuple(t["label"] for t in jsonl[r]["tags"])) for r in rels)
    assert got == want
    assert ds[0]["image"].size == (40, 30)


def test_foreign_metadata_file_is_kept(tmp_path, engine):
    make_photos(tmp_path, 2, sub_every=0)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "p000.jpg", "label": "mine"}\n')
    label_folders([tmp_path], engine, LabelOptions(formats=("metadata",), workers=0))
    assert "mine" in (tmp_path / "metadata.jsonl.orig").read_text()
    assert len(read_jsonl(tmp_path / "metadata.jsonl")) == 2


def parse_xmp(path: Path) -> tuple[str | None, list[str]]:
    return parse_xmp_bytes(path.read_bytes())


def parse_xmp_bytes(data: bytes) -> tuple[str | None, list[str]]:
    root = ET.fromstring(data)
    desc = root.find(".//dc:description/rdf:Alt/rdf:li", NS)
    tags = [li.text for li in root.findall(".//dc:subject/rdf:Bag/rdf:li", NS)]
    return (desc.text if desc is not None else None), tags


def test_xmp_sidecars_are_valid_and_match_the_labels(tmp_path, engine):
    make_photos(tmp_path, 4)
    Image.new("RGB", (9, 9)).save(tmp_path / "a&b <c>.jpg")
    label_folders([tmp_path], engine, LabelOptions(formats=("xmp",), workers=0))
    records = read_jsonl(tmp_path / "labels.jsonl")
    assert len(records) == 5
    for rec in records:
        caption, tags = parse_xmp(tmp_path / (rec["path"] + ".xmp"))
        assert caption == rec["caption"] and tags == [t["label"] for t in rec["tags"]]
    assert "fish &amp; chips &lt;hot&gt;" in render("x", ["fish & chips <hot>"])
    text = render('a "quoted" <b> & \x01 c', ["fish & chips <hot>", "\x02"])
    assert parse_xmp_bytes(text.encode("utf-8")) == ('a "quoted" <b> &  c', ["fish & chips <hot>"])


def test_xmp_stem_naming_and_foreign_sidecars_left_alone(tmp_path, engine):
    make_photos(tmp_path, 3, sub_every=0)
    Image.new("RGB", (9, 9)).save(tmp_path / "p001.png")  # p001.jpg + p001.png: ambiguous
    foreign = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><!-- Lightroom edits --></x:xmpmeta>"
    (tmp_path / "p002.xmp").write_bytes(foreign)
    opts = LabelOptions(formats=("xmp",), xmp_naming="stem", workers=0)
    label_folders([tmp_path], engine, opts)
    assert sidecar_path(tmp_path / "p000.jpg", "stem") == tmp_path / "p000.xmp"
    assert parse_xmp(tmp_path / "p000.xmp")[0]
    assert not (tmp_path / "p001.xmp").exists()
    assert (tmp_path / "p002.xmp").read_bytes() == foreign
    mtime = (tmp_path / "p000.xmp").stat().st_mtime_ns
    label_folders([tmp_path], engine, opts)  # unchanged sidecars are not rewritten
    assert (tmp_path / "p000.xmp").stat().st_mtime_ns == mtime
