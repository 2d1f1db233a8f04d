"""`python -m captioner.data`: build / fetch / info on local fixtures (no registry needed)."""

import subprocess
import sys

import pytest
from test_sentiment_data import make_tarball
from test_tuxpaint_data import make_deb, make_stamps

from captioner.cli import run_command
from captioner.data import load_caption_dataset


def main(argv: list[str]) -> int:
    return run_command("data", argv)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))


def test_fetch_uci_from_tarball_then_info(tmp_path, capsys):
    assert main(["fetch", "uci-sentiment", "--tarball", str(make_tarball(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "uci-sentiment: 60 items" in out and "negative 24, positive 24" in out
    assert (tmp_path / "cache" / "uci-sentiment" / "yelp.json").is_file()
    assert main(["info", "uci-sentiment"]) == 0
    assert "validation        6 rows, negative 3, positive 3" in capsys.readouterr().out


def test_fetch_tuxpaint_from_deb(tmp_path, capsys):
    deb = make_deb(tmp_path, make_stamps(tmp_path / "src"))
    target = tmp_path / "tp"
    assert main(["fetch", "tuxpaint", "--deb", str(deb), "--cache-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert "tuxpaint: " in out and str(target) in out and "mirror image(s)" in out
    assert (target / "usr/share/tuxpaint/stamps/animals/cat.png").is_file()


def test_info_csv_with_options_and_errors(tmp_path, capsys):
    (tmp_path / "caps.csv").write_text("image,caption\nmissing.png,A cat.\n")
    assert main(["info", f"csv:{tmp_path / 'caps.csv'}"]) == 2
    err = capsys.readouterr().err
    assert "caps.csv:2: missing image" in err and "on_error='skip'" in err
    assert main(["info", f"csv:{tmp_path / 'caps.csv'}", "-o", "on_error=skip"]) == 0
    assert "skipped 1 bad record(s); missing image: 1" in capsys.readouterr().out
    assert main(["info", "nonsense:x"]) == 2
    assert "flickr8k:DIR" in capsys.readouterr().err
    assert main(["info", "csv:x", "-o", "novalue"]) == 2
    assert "captioner data: error: bad option 'novalue'" in capsys.readouterr().err
    assert main(["fetch", "something-else"]) == 2


def test_build_scenes_then_combined_spec(tmp_path, capsys):
    out = tmp_path / "scenes"
    args = [
        "build",
        "scenes",
        "--out",
        str(out),
        "--num-train",
        "4",
        "--num-eval",
        "2",
        "--image-size",
        "32",
    ]
    assert main(args) == 0
    assert "train             4 rows, 20 captions" in capsys.readouterr().out
    assert main(["info", f"scenes:{out}"]) == 0
    assert "test_novel        2 rows" in capsys.readouterr().out
    stamps = make_stamps(tmp_path / "stamps")
    both = load_caption_dataset(f"scenes:{out}+tuxpaint:{stamps}", render_svg=False)
    assert list(both) == ["train", "validation", "test", "test_novel"]
    assert sum(len(ds) for ds in both.values()) == 10 + 5
    assert set(both["train"].column_names) == {"image", "captions", "image_id", "source", "scene"}
    rows = [r for ds in both.values() for r in ds]
    assert {r["source"] for r in rows} == {"scenes", "tuxpaint"}
    assert all((r["scene"] is None) == (r["source"] == "tuxpaint") for r in rows)
    assert all(r["image_id"].startswith(r["source"] + "/") for r in rows)
    assert "mirror image(s)" in " ".join(both.report.notes)
    with pytest.raises(ValueError, match="no part of"):
        load_caption_dataset(f"scenes:{out}+tuxpaint:{stamps}", colour="red")
    with pytest.raises(ValueError, match=r"tuxpaint does not take option\(s\) \['num_eval'\]"):
        load_caption_dataset(f"scenes:{out}+tuxpaint:{stamps}?num_eval=3")


@pytest.mark.slow
def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "captioner.data", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "fetch" in result.stdout and "info" in result.stdout


def test_one_rule_names_the_kind_of_a_spec(tmp_path):
    from datasets import Dataset

    from captioner.data.spec import dataset_kind

    sentiment = ["uci-sentiment", "sentiment-csv:x.csv", "sst2:DIR", "neutral:scenes:5"]
    sentiment += ["neutral:flickr8k:DIR"]
    sentiment += ["hf:stanfordnlp/sst2", "hf:imdb?split=test", "hf:any/thing?kind=sentiment"]
    caption = ["scenes", "scenes+tuxpaint", "flickr8k:DIR", "hf:nlphuji/flickr30k", "csv:c.csv"]
    assert [dataset_kind(s) for s in sentiment] == ["sentiment"] * len(sentiment)
    assert [dataset_kind(s) for s in caption] == ["caption"] * len(caption)
    Dataset.from_dict({"text": ["fine"], "label": [1]}).save_to_disk(tmp_path / "local")
    assert dataset_kind(f"hf:{tmp_path / 'local'}") == "sentiment"
    with pytest.raises(ValueError, match="kind=caption"):
        dataset_kind("hf:x/y?kind=poem")


def test_eval_routes_hub_sst2_to_the_sentiment_loader(monkeypatch, capsys):
    """`hf:stanfordnlp/sst2` went to the caption loader; it must reach the sentiment one."""
    import captioner.data as data

    seen = []

    def fake_sentiment(spec, **kw):
        seen.append(spec)
        raise data.DataError(f"{spec}: offline test stand-in")

    monkeypatch.setattr(data, "load_sentiment_dataset", fake_sentiment)
    monkeypatch.setattr(data, "load_caption_dataset", lambda *a, **k: pytest.fail("caption"))
    code = run_command("eval", ["--dataset", "hf:stanfordnlp/sst2", "--model", "default"])
    assert code == 2 and seen == ["hf:stanfordnlp/sst2"]
    assert "offline test stand-in" in capsys.readouterr().err
