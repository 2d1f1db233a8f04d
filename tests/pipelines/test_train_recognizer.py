"""The recognizer recipe: own labels over cached features of a small random encoder."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from PIL import Image

from captioner import Captioner
from captioner.data.common import DataError
from captioner.pipelines import recognizer_data as rd
from captioner.pipelines import train_recognizer as tr
from captioner.pipelines.runstate import read_metrics

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def solid(colour: str, seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour], dtype=np.int16)
    pixels = base + rng.integers(-25, 26, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def halves(left: str, right: str, seed: int, size: int = 64) -> Image.Image:
    a, b = np.asarray(solid(left, seed, size)), np.asarray(solid(right, seed + 1, size))
    return Image.fromarray(np.concatenate([a[:, : size // 2], b[:, size // 2 :]], axis=1))


def class_folder(root, per_class: int = 8):
    for colour in COLOURS:
        (root / colour).mkdir(parents=True)
        for i in range(per_class):
            solid(colour, seed=100 * list(COLOURS).index(colour) + i).save(
                root / colour / f"{i:02d}.png"
            )
    return root


def tiny_config(tmp_path, dataset: str, **kw) -> tr.RecognizerTrainConfig:
    settings = dict(
        dataset=dataset,
        out=str(tmp_path / "model"),
        encoder="resnet18",
        encoder_weights="none",
        epochs=6,
        batch_size=8,
        lr=5e-2,
        warmup=0.0,
        patience=0,
        dropout=0.0,
        device="cpu",
        cache_dir=str(tmp_path / "features"),
        plot_every=0,
    )
    settings.update(kw)
    return tr.RecognizerTrainConfig(**settings)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A class folder shared by the tests of this module, with one feature cache."""
    root = tmp_path_factory.mktemp("shared")
    return class_folder(root / "photos", per_class=6), root / "features"


@pytest.mark.slow
def test_single_label_image_folder(tmp_path, photos):
    root, features = photos
    cfg = tiny_config(tmp_path, f"imagefolder:{root}", cache_dir=str(features))
    report = tr.train(cfg)
    assert report["validation"]["accuracy"] == 1.0 and report["test"]["accuracy"] == 1.0
    epochs = [r for r in read_metrics(tmp_path / "model" / "run" / "metrics.jsonl")
              if r["type"] == "epoch"]  # fmt: skip
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert len(list(features.glob("resnet18-*.arrow"))) == 3  # train/validation/test cached

    cap = Captioner.from_pretrained(tmp_path / "model", device="cpu")
    assert cap.recognizer.labels == ["blue", "green", "red"]
    assert cap.decoder is None and cap.sentiment_model is None
    fresh = [solid("red", 90_001), solid("blue", 90_002), solid("green", 90_003)]
    tags = cap.tag(fresh, top_k=3, min_score=0)  # all three
    assert [t[0][0] for t in tags] == ["red", "blue", "green"]
    assert all(abs(sum(s for _, s in t) - 1.0) < 1e-4 for t in tags)  # softmax over 3


@pytest.mark.slow
def test_cli_main_reads_cached_features_and_is_deterministic(tmp_path, photos):
    root, features = photos
    out = tmp_path / "cli"
    argv = ["--dataset", str(root), "--out", str(out), "--encoder", "resnet18",
            "--encoder-weights", "none", "--epochs", "6", "--lr", "0.05", "--warmup", "0",
            "--dropout", "0", "--batch-size", "8", "--device", "cpu",
            "--cache-dir", str(features), "--plot-every", "0"]  # fmt: skip
    assert tr.main(argv) == 0
    config = json.loads((out / "run" / "config.json").read_text())
    assert config["recipe"] == "recognizer" and config["labels"] == ["blue", "green", "red"]
    assert (out / "labels.json").is_file()
    assert len(list(features.glob("resnet18-*.arrow"))) == 3  # no new cache files
    # the same settings as test_single_label_image_folder through flags: the same scores
    report = json.loads((out / "run" / "test_metrics.json").read_text())
    again = tr.train(tiny_config(tmp_path, f"imagefolder:{root}", cache_dir=str(features)))
    assert again == report


COMBOS = [("red", "blue"), ("red", "green"), ("green", "blue"), ("red", "red"),
          ("green", "green"), ("blue", "blue")]  # fmt: skip


def two_colour_images(root, fields):
    """18 two-colour images (12 train, 6 validation) in `root` with a metadata.jsonl whose
    rows also hold `fields(i, left, right)`."""
    root.mkdir()
    rows = []
    for i in range(18):
        left, right = COMBOS[i % len(COMBOS)]
        name = f"{i:03d}.png"
        halves(left, right, seed=i * 7).save(root / name)
        split = "train" if i < 12 else "validation"
        rows.append({"file_name": name, "split": split, **fields(i, left, right)})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.slow
def test_multi_label_from_metadata_tags(tmp_path):
    root = two_colour_images(tmp_path / "tagged", lambda i, a, b: {"tags": sorted({a, b})})
    cfg = tiny_config(tmp_path, f"imagefolder:{root}", multi_label=True, label_column="tags",
                      epochs=12, test_split="")  # fmt: skip
    report = tr.train(cfg)
    assert report["validation"]["f1"] >= 0.9
    assert "test" not in report

    cap = Captioner.from_pretrained(tmp_path / "model", device="cpu")
    assert cap.recognizer.config.multi_label
    (tags,) = cap.tag([halves("red", "blue", seed=5_000)], top_k=3, min_score=0)
    assert {tags[0][0], tags[1][0]} == {"blue", "red"}
    assert tags[0][1] > 0.5 and tags[1][1] > 0.5 and tags[2][1] < 0.5


def test_split_folders(tmp_path):
    root = tmp_path / "split"
    class_folder(root / "train", per_class=2)
    class_folder(root / "val", per_class=1)
    dsd = rd.load_class_folder(root)
    assert len(dsd["train"]) == 6 and len(dsd["validation"]) == 3 and len(dsd["test"]) == 0
    assert sorted(r[0] for r in dsd["validation"]["labels"]) == ["blue", "green", "red"]
    assert dsd["validation"]["image_id"][0].startswith("val/")


def test_load_class_folder_splits_every_class(tmp_path):
    dsd = rd.load_class_folder(class_folder(tmp_path / "p", per_class=10), seed=0)
    for split, n in (("train", 8), ("validation", 1), ("test", 1)):
        labels = [row[0] for row in dsd[split]["labels"]]
        assert sorted(labels) == sorted(list(COLOURS) * n)
    ids = [i for s in dsd.values() for i in s["image_id"]]
    assert len(ids) == len(set(ids)) == 30 and ids[0].count("/") == 1


def test_hub_dataset_with_class_labels(tmp_path):
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "fine": datasets.ClassLabel(names=list(COLOURS)),
            "tags": datasets.List(datasets.ClassLabel(names=["bright", "dark", "cold"])),
        }
    )
    rows = {"img": [solid(c, i) for i in range(10) for c in COLOURS],
            "fine": [k for _ in range(10) for k in range(3)],
            "tags": [[0, 2] if k == 2 else [k] for _ in range(10) for k in range(3)]}  # fmt: skip
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "hub"))

    single = rd.load_labelled(f"hf:{tmp_path / 'hub'}?columns=image:img", label_column="fine")
    assert sum(len(s) for s in single.values()) == 30 and len(single["validation"]) > 0
    assert {r[0] for s in single.values() for r in s["labels"]} == set(COLOURS)
    assert single["train"].features["image"] == datasets.Image()
    first = single["train"][0]
    assert first["image"].size == (64, 64) and first["image_id"].startswith("train/")

    multi = rd.load_labelled(f"hf:{tmp_path / 'hub'}", label_column="tags")
    blues = [r for s in multi.values() for r in s["labels"] if "cold" in r]
    assert blues and all(r == ["bright", "cold"] for r in blues)

    with pytest.raises(DataError, match="nope"):
        rd.load_labelled(f"hf:{tmp_path / 'hub'}", label_column="nope")


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    (empty / "cats" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        rd.load_class_folder(empty)

    with pytest.raises(ValueError, match="--label-column"):
        rd.load_labelled(f"jsonl:{tmp_path / 'x.jsonl'}")

    two = datasets.Dataset.from_dict({"labels": [["a"], ["a", "b"]], "image_id": ["x", "y.png"]})
    with pytest.raises(DataError, match=r"y\.png.*--multi-label"):
        rd.label_set(two, multi_label=False)

    assert tr.main(["--dataset", str(empty), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "no images" in capsys.readouterr().err


@pytest.mark.slow
def test_caption_objects_labels_are_the_object_words_of_the_captions(tmp_path):
    """--caption-objects: labels are the object words of the captions (singular, rare words
    dropped), learnt well enough to tell the images apart."""
    from captioner import tagwords

    said = {"red": "a dog runs", "blue": "a man rides two bikes", "green": "a boy in a hat"}

    def captions(i, left, right):
        found = [f"{said[left]} .", f"{said[right]} near a bench"]
        # one image only: below --min-label-images
        return {"captions": found + (["a cat sleeps"] if i == 0 else [])}

    root = two_colour_images(tmp_path / "captioned", captions)
    cfg = tiny_config(tmp_path, f"imagefolder:{root}", caption_objects=True,
                      min_label_images=2, epochs=12, test_split="")  # fmt: skip
    report = tr.train(cfg)
    assert report["validation"]["f1"] >= 0.9

    detector = Captioner.from_pretrained(tmp_path / "model", device="cpu").recognizer
    assert detector.labels == ["bike", "dog", "hat"]  # no bench (a thing), no cat (1 image)
    assert detector.config.caption_objects and detector.config.multi_label

    assert tagwords.caption_objects(["Two dogs chase a ball .", "a man poses for the camera"]) == [
        "ball", "camera", "dog"
    ]  # fmt: skip


def test_caption_objects_errors(tmp_path):
    with pytest.raises(ValueError, match="--caption-objects takes its labels from the captions"):
        tr.train(tiny_config(tmp_path, "imagefolder:x", caption_objects=True, label_column="tags"))
    train = datasets.Dataset.from_dict({"labels": [["dog"], ["dog", "hat"]], "image_id": [0, 1]})
    assert rd.label_set(train, multi_label=True, min_images=2) == ["dog"]
    with pytest.raises(DataError, match="no label is held by 3 or more training images"):
        rd.label_set(train, multi_label=True, min_images=3)
