"""The ImageNet class -> caption word table and mention matching."""

import json

import pytest

from captioner import tagwords


@pytest.mark.parametrize(
    ("index", "name"),
    [(285, "cat"), (207, "dog"), (339, "horse"), (967, "coffee"), (293, "cheetah"),
     (671, "bicycle"), (814, "boat"), (817, "car"), (937, "broccoli")],
)  # fmt: skip
def test_everyday_names_of_imagenet_classes(index, name):
    assert tagwords.tag_name(index) == name


def test_the_table_covers_every_class_in_order_with_its_own_words_first():
    table = json.loads(tagwords.TABLE.read_text())
    assert len(table) == 1000
    assert table[0]["wnid"] == "n01440764"  # tench: ImageNet's first class
    assert all(e["name"] and e["words"] for e in table)
    assert tagwords.tag_words(285)[0] == "egyptian cat"
    assert "cat" in tagwords.tag_words(285)  # a hypernym is a caption word too
    assert tagwords.tag_words(207).index("retriever") < tagwords.tag_words(207).index("dog")


@pytest.mark.parametrize(
    ("caption", "words", "expected"),
    [
        ("two dogs run on the beach", "dog", True),
        ("a man rides a bike", ["bicycle", "bike"], True),
        ("a puppy plays", "dog", False),
        ("a cup of coffee on a table", "coffee", True),
        ("a child with a coffee mug", ["coffee mug"], True),
        ("a coffee table", ["coffee mug"], False),
        ("three ponies graze", "pony", True),
        ("a doghouse", "dog", False),
    ],
)
def test_mentions_matches_whole_words_phrases_and_plurals(caption, words, expected):
    assert tagwords.mentions(caption, words) is expected


def test_holdout_drops_training_images_that_name_the_words_and_keeps_the_rest(
    tmp_path, monkeypatch
):
    from PIL import Image

    from captioner.data import load_caption_dataset

    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    images = tmp_path / "Images"
    images.mkdir()
    captions = {
        "a.jpg": "a horse runs in a field",
        "b.jpg": "two men ride bikes",
        "c.jpg": "a dog catches a ball",
        "d.jpg": "a horse jumps a fence",
    }
    lines = []
    for name, caption in captions.items():
        Image.new("RGB", (8, 6), "red").save(images / name)
        lines += [f"{name}#{k}\t{caption} ." for k in range(2)]
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, names in [("train", "a.jpg b.jpg c.jpg"), ("dev", "d.jpg"), ("test", "")]:
        (tmp_path / f"Flickr_8k.{split}Images.txt").write_text(names.replace(" ", "\n") + "\n")
    full = load_caption_dataset(f"flickr8k:{tmp_path}")
    held = load_caption_dataset(f"flickr8k:{tmp_path}?holdout=horse,bicycle,bike")
    assert full["train"]["image_id"] == ["a.jpg", "b.jpg", "c.jpg"]
    assert held["train"]["image_id"] == ["c.jpg"]  # plural "bikes" counts as "bike"
    assert held["validation"]["image_id"] == ["d.jpg"]  # scored on the held-out word later
    kw = load_caption_dataset(f"flickr8k:{tmp_path}", holdout="dog")
    assert kw["train"]["image_id"] == ["a.jpg", "b.jpg"]
