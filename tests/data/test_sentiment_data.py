"""Sentiment corpora: UCI sentences from a fake npm tarball with the real layout, CSV / JSONL
tables, hub-style local copies; labels, stratified seeded splits, bad records."""

import json

import pytest
from tests_support import npm_tarball

from captioner.data import DataError, load_sentiment_dataset
from captioner.data.fetch import FetchError
from captioner.data.sentiment_corpora import fetch_uci_sentiment, label_name


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))


def uci_records(source, n=20):
    recs = [
        {"text": f"{source} sentence {i} was {'good' if i % 2 else 'bad'}.  ", "class": i % 2}
        for i in range(n)
    ]
    return [*recs, {"text": "", "class": None}]  # the package's files end with this record


def make_tarball(tmp_path, records=None):
    """sentiment-5.0.2.tgz as `npm pack` writes it: everything under package/."""
    files = {
        "package.json": json.dumps({"name": "sentiment", "version": "5.0.2"}),
        "lib/index.js": "module.exports = {};\n",
    }
    for source in ("amazon", "imdb", "yelp"):
        recs = (records or {}).get(source, uci_records(source))
        files[f"test/fixtures/{source}.json"] = json.dumps(recs)
    return npm_tarball(tmp_path / "sentiment-5.0.2.tgz", files)


def test_uci_fetch_and_stratified_split(tmp_path):
    folder = fetch_uci_sentiment(tarball=make_tarball(tmp_path))
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "amazon.json",
        "imdb.json",
        "yelp.json",
    ]
    dsd = load_sentiment_dataset("uci-sentiment")
    assert dsd["train"].features["label"].names == ["negative", "positive"]
    assert [len(dsd[s]) for s in ("train", "validation", "test")] == [48, 6, 6]
    for split in ("validation", "test"):  # one of each (source, label) stratum
        pairs = sorted(zip(dsd[split]["source"], dsd[split]["label"], strict=True))
        assert pairs == sorted((s, y) for s in ("amazon", "imdb", "yelp") for y in (0, 1))
    row = dsd["train"][0]
    assert row["text"] == row["text"].strip() and row["label"] == int("good" in row["text"])
    assert "trailing empty record" in " ".join(dsd.report.notes)
    same = load_sentiment_dataset("uci-sentiment")
    other = load_sentiment_dataset("uci-sentiment?seed=1")
    assert list(same["test"]["text"]) == list(dsd["test"]["text"])
    assert list(other["test"]["text"]) != list(dsd["test"]["text"])


def test_uci_bad_record(tmp_path):
    recs = uci_records("imdb")
    recs[3] = {"text": "Fine.", "class": 7}
    recs[5] = {"text": "   ", "class": 1}
    folder = fetch_uci_sentiment(
        tarball=make_tarball(tmp_path, {"imdb": recs}), cache_dir=tmp_path / "u"
    )
    with pytest.raises(DataError, match=r"imdb\.json:\[3\]: malformed line"):
        load_sentiment_dataset(f"uci-sentiment:{folder}")
    dsd = load_sentiment_dataset(f"uci-sentiment:{folder}", on_error="skip")
    assert dsd.report.counts() == {"malformed line": 1, "empty caption": 1}
    assert sum(len(d) for d in dsd.values()) == 58


def test_uci_missing_files_and_failing_fetch(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="fetch uci-sentiment"):
        load_sentiment_dataset(f"uci-sentiment:{tmp_path}")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    with pytest.raises(FetchError, match="npm"):
        fetch_uci_sentiment(cache_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(FetchError, match="bad.tgz"):
        fetch_uci_sentiment(cache_dir=tmp_path / "y", tarball=bad)


def test_label_names():
    assert [label_name(v) for v in (0, 1, "0", " 1 ", "neg", "POSITIVE", "neutral")] == [
        "negative",
        "positive",
        "negative",
        "positive",
        "negative",
        "positive",
        "neutral",
    ]
    assert label_name(2, 3) == "positive" and label_name(1, 3) == "neutral"
    assert [label_name(v) for v in (2, -1, "great", None, True, 0.5)] == [None] * 6


def test_sentiment_csv_with_split_column_and_carved_test(tmp_path):
    rows = ["review,stars,split"] + [
        f'"Text {i}, ok",{"pos" if i % 2 else "neg"},{"train" if i < 16 else "dev"}'
        for i in range(20)
    ]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    dsd = load_sentiment_dataset(
        f"sentiment-csv:{tmp_path / 's.csv'}", columns="text:review,label:stars"
    )
    assert len(dsd["validation"]) == 4 and len(dsd["train"]) + len(dsd["test"]) == 16
    assert len(dsd["test"]) == 2 and sorted(dsd["test"]["label"]) == [0, 1]
    assert dsd["train"][0]["text"].startswith("Text ") and "," in dsd["train"][0]["text"]


def test_sentiment_jsonl_three_classes(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(30)]
    (tmp_path / "s.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    dsd = load_sentiment_dataset(f"sentiment-jsonl:{tmp_path / 's.jsonl'}")
    assert dsd["train"].features["label"].names == ["negative", "neutral", "positive"]
    assert [len(dsd[s]) for s in ("train", "validation", "test")] == [24, 3, 3]
    assert {r["text"]: r["label"] for r in dsd["test"]} == {
        r["text"]: r["label"] for r in rows if r["text"] in dsd["test"]["text"]
    }


@pytest.mark.parametrize(
    "fmt,text,where",
    [
        ("csv", "text,label\nok,1\nbad,maybe\n", "s.csv:3"),  # line 1 is the header
        ("jsonl", '{"text": "ok", "label": 1}\n{"text": "bad", "label": "maybe"}\n', "s.jsonl:2"),
        ("jsonl", '{"text": "ok", "label": 1}\n{"text": "bad", "label"\n', "s.jsonl:2"),
    ],
)
def test_sentiment_table_bad_line(tmp_path, fmt, text, where):
    path = tmp_path / f"s.{fmt}"
    path.write_text(text)
    with pytest.raises(DataError, match=where.replace(".", r"\.") + ": malformed line"):
        load_sentiment_dataset(f"sentiment-{fmt}:{path}")
    dsd = load_sentiment_dataset(f"sentiment-{fmt}:{path}", on_error="skip")
    assert dsd.report.num_skipped == 1 and sum(len(d) for d in dsd.values()) == 1


def test_hf_local_copy_sst2_and_imdb_style(tmp_path):
    import datasets

    sst = datasets.Features(
        {
            "idx": datasets.Value("int32"),
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    make = lambda n, labels: datasets.Dataset.from_dict(  # noqa: E731
        {"idx": list(range(n)), "sentence": [f"s{i} " for i in range(n)], "label": labels},
        features=sst,
    )
    datasets.DatasetDict(
        train=make(20, [i % 2 for i in range(20)]),
        validation=make(4, [0, 1, 0, 1]),
        test=make(3, [-1, -1, -1]),
    ).save_to_disk(str(tmp_path / "sst2"))
    dsd = load_sentiment_dataset(f"hf:{tmp_path / 'sst2'}")
    assert len(dsd["validation"]) == 4 and len(dsd["test"]) == 2 and len(dsd["train"]) == 18
    notes = " ".join(dsd.report.notes)
    assert "dropped 3 unlabelled" in notes and "carved test out of train" in notes
    imdb = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    datasets.Dataset.from_dict(
        {"text": ["Awful.", "Great!"] * 10, "label": [0, 1] * 10}, features=imdb
    ).to_parquet(str(tmp_path / "imdb" / "train.parquet"))
    dsd = load_sentiment_dataset(f"hf:{tmp_path / 'imdb'}", cache_dir=str(tmp_path / "hf"))
    assert dsd["train"].features["label"].names == ["negative", "positive"]
    assert all(
        (t == "Great!") == bool(y) for d in dsd.values() for t, y in zip(d["text"], d["label"])
    )


def test_bad_sentiment_spec():
    with pytest.raises(ValueError, match="sentiment-csv:FILE"):
        load_sentiment_dataset("flickr8k:/x")
