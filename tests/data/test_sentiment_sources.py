"""`sst2:DIR` (GLUE SST-2 TSV layout) and `neutral:CAPTIONS` sentiment specs."""

from pathlib import Path

import pytest

from captioner.data import DataError, load_sentiment_dataset
from captioner.data.sentiment_sources import caption_texts

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def write_sst2(folder: Path, *, glue_order: bool = True, test_labels: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [("a charming and affecting journey", 1), ("contains no wit , only labored gags", 0),
            ("the best film of the year", 1)]  # fmt: skip
    if glue_order:  # GLUE: sentence<TAB>label
        body = "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows)
    else:  # the copy in ../shared/data: label<TAB>sentence / label<TAB>content
        body = "label\tcontent\n" + "".join(f"{y}\t{t}\n" for t, y in rows)
    (folder / "train.tsv").write_text(body)
    (folder / "dev.tsv").write_text(body)
    test = "label\tsentence\n1\tgreat\n" if test_labels else "index\tsentence\n0\tgreat\n"
    (folder / "test.tsv").write_text(test)
    return folder


@pytest.mark.parametrize("glue_order", [True, False])
def test_sst2_layouts_and_hidden_test_labels(tmp_path, glue_order):
    dsd = load_sentiment_dataset(f"sst2:{write_sst2(tmp_path / 'sst2', glue_order=glue_order)}")
    assert dsd["train"].features["label"].names == ["negative", "positive"]
    assert dsd["train"]["text"][1] == "contains no wit , only labored gags"
    assert dsd["train"]["label"] == [1, 0, 1] and len(dsd["validation"]) == 3
    assert len(dsd["test"]) == 0  # GLUE's test.tsv has no labels
    assert any("no label column" in n for n in dsd.report.notes)
    labelled = load_sentiment_dataset(f"sst2:{write_sst2(tmp_path / 'l', test_labels=True)}")
    assert labelled["test"]["text"] == ["great"]


def test_sst2_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.tsv / dev.tsv"):
        load_sentiment_dataset(f"sst2:{tmp_path}")
    folder = write_sst2(tmp_path / "bad")
    (folder / "train.tsv").write_text("sentence\tlabel\ngood film\t7\n")
    with pytest.raises(DataError, match=r"train.tsv:2: .*label must be 0 or 1"):
        load_sentiment_dataset(f"sst2:{folder}")
    skipped = load_sentiment_dataset(f"sst2:{folder}?on_error=skip")
    assert len(skipped["train"]) == 0 and len(skipped.report.skipped) == 1
    (folder / "train.tsv").write_text("words\tlabel\ngood film\t1\n")
    with pytest.raises(DataError, match="header naming a text column"):
        load_sentiment_dataset(f"sst2:{folder}")


def write_flickr8k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        lines += [f"{name}#{k}\t{name[0]} caption number {k} ." for k in range(2)]
    (folder / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, name in (("train", "a.jpg"), ("dev", "b.jpg"), ("test", "c.jpg")):
        (folder / f"Flickr_8k.{split}Images.txt").write_text(name + "\n")
    return folder


def test_neutral_captions_per_split(tmp_path):
    root = write_flickr8k(tmp_path / "f8k")
    assert caption_texts(f"flickr8k:{root}", "test") == [
        "c caption number 0 .",
        "c caption number 1 .",
    ]
    dsd = load_sentiment_dataset(f"neutral:flickr8k:{root}+scenes:5")
    assert dsd["train"].features["label"].names == ["negative", "neutral", "positive"]
    assert set(dsd["train"]["label"]) == {1}
    assert len(dsd["train"]) == 2 + 5 and len(dsd["validation"]) == 2 + 5
    assert set(dsd["train"]["text"][:2]).isdisjoint(dsd["validation"]["text"])
    assert dsd["validation"]["text"][2:] != dsd["train"]["text"][2:7]  # a seed per split
    with pytest.raises(FileNotFoundError, match="no such file"):
        caption_texts(str(tmp_path / "missing.txt"))


@pytest.mark.skipif(not (SHARED / "sst2" / "dev.tsv").is_file(), reason="no ../shared/data/sst2")
def test_real_sst2_counts():
    dsd = load_sentiment_dataset(f"sst2:{SHARED / 'sst2'}")
    assert (len(dsd["train"]), len(dsd["validation"])) == (67349, 872)
    assert sum(dsd["validation"]["label"]) == 444  # positive dev sentences
