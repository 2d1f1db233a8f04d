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
