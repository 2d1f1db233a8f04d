"""Text-only caption corpora (`captioner.data.text_corpora`), on tiny files of the real layouts."""

import json

import pytest

from captioner.data.common import DataError
from captioner.data.text_corpora import load_text_captions, read_text_captions


@pytest.fixture()
def corpora(tmp_path):
    coco = tmp_path / "val2017_text.jsonl"
    coco.write_text(
        json.dumps({"image_id": 17379, "captions": ["a tv in a bathroom mirror", " A cat. "]})
        + "\n\n"
        + json.dumps({"image_id": 5, "captions": ["a pizza on a plate"]})
        + "\n",
        encoding="utf-8",
    )
    f30k = tmp_path / "captions.jsonl"
    f30k.write_text(
        json.dumps({"image": "1000092795.jpg", "split": "train", "captions": ["two men", ""]})
        + "\n",
        encoding="utf-8",
    )
    cc = tmp_path / "captions.txt"
    cc.write_text("an angler fishes river on a snowy day .\n\nactor attends the premiere\n")
    return coco, f30k, cc


def test_each_layout_reads_to_captions_and_ids(corpora):
    coco, f30k, cc = corpora
    assert read_text_captions(coco, kind="coco-text") == [
        ("coco-text:17379", ["a tv in a bathroom mirror", "A cat."]),
        ("coco-text:5", ["a pizza on a plate"]),
    ]
    assert read_text_captions(f30k, kind="flickr30k-text") == [
        ("flickr30k-text:1000092795.jpg", ["two men"])  # the empty caption is dropped
    ]
    assert read_text_captions(cc, kind="cc-text") == [
        ("cc-text:1", ["an angler fishes river on a snowy day ."]),
        ("cc-text:3", ["actor attends the premiere"]),
    ]


def test_spec_joins_parts_into_one_dataset(corpora):
    coco, f30k, cc = corpora
    ds = load_text_captions(f"coco-text:{coco}+flickr30k-text:{f30k}+cc-text:{cc}")
    assert ds.column_names == ["captions", "image_id"]
    assert len(ds) == 5
    assert ds[2] == {"captions": ["two men"], "image_id": "flickr30k-text:1000092795.jpg"}


def test_bad_specs_and_files_name_the_problem(corpora, tmp_path):
    coco, _, _ = corpora
    with pytest.raises(DataError, match="bad text corpus spec"):
        load_text_captions(f"coco:{coco}")
    with pytest.raises(DataError, match="not a file"):
        load_text_captions(f"text:{tmp_path / 'missing.jsonl'}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"captions": "not a list"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: expected a JSON object"):
        load_text_captions(f"text:{bad}")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="holds no caption"):
        load_text_captions(f"text:{empty}")
