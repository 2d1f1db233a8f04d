import json

import pytest

from captioner.text import SPECIALS, Vocabulary, detokenize, tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A Dog, running -- on the beach!") == [
        "a",
        "dog",
        "running",
        "on",
        "the",
        "beach",
    ]


def test_tokenize_normalises_typographic_punctuation():
    assert tokenize("Tux\u2014the \u201cFuji\u201d penguin\u2019s hat") == [
        "tux",
        "the",
        "fuji",
        "penguin",
        "'s",
        "hat",
    ]


def test_tokenize_splits_contractions_like_treebank():
    toks = tokenize("The dog isn't happy.")
    assert toks == ["the", "dog", "is", "n't", "happy"]


def test_build_applies_min_count_and_orders_by_frequency():
    vocab = Vocabulary.build(["a cat", "a dog", "a cat sits", "zebra"], min_count=2)
    assert vocab.itos[: len(SPECIALS)] == list(SPECIALS)
    assert vocab.itos[4:] == ["a", "cat"]
    assert "zebra" not in vocab


def test_encode_decode_round_trip_and_unknown_words():
    vocab = Vocabulary.build(["a red circle", "a blue square"])
    ids = vocab.encode("A red square!")
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == "a red square"
    assert vocab.encode("purple", add_special=False) == [vocab.unk_id]
    # decoding stops at <end> and skips padding
    assert vocab.decode([vocab.bos_id, vocab.stoi["a"], vocab.eos_id, vocab.stoi["red"]]) == "a"
    assert vocab.decode([vocab.stoi["a"], vocab.pad_id, vocab.stoi["red"]]) == "a red"


def test_save_load(tmp_path):
    vocab = Vocabulary.build(["un café très chaud"])
    vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(tmp_path / "vocab.json")
    assert again.itos == vocab.itos


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "malformed vocabulary file"),
        (json.dumps({"words": []}), "malformed vocabulary file"),
        (json.dumps({"tokens": ["a", "b"]}), "special tokens"),
        (json.dumps({"tokens": [*SPECIALS, "a", "a"]}), "repeat"),
    ],
)
def test_load_malformed_names_the_problem(tmp_path, content, match):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        Vocabulary.load(path)


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Vocabulary.load(tmp_path / "vocab.json")


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        (["a", "toy", "'s", "ball"], "a toy's ball"),
        (["he", "ca", "n't", "swim"], "he can't swim"),
        (["they", "'re", "gon", "na", "jump"], "they're gonna jump"),
        (["it", "wo", "n't", "stop"], "it won't stop"),
        (["'s", "start"], "'s start"),  # a clitic with no word before it stays as it is
    ],
)
def test_detokenize_rejoins_clitics(tokens, text):
    assert detokenize(tokens) == text


def test_detokenize_round_trips_through_tokenize():
    for sentence in ["a dog's ball is in the boy's hand", "she can't see what they're doing"]:
        tokens = tokenize(sentence)
        assert tokenize(detokenize(tokens)) == tokens


def test_vocabulary_decode_is_detokenised():
    vocab = Vocabulary.build(["a toy's ball", "the dog can't jump"])
    ids = vocab.encode("the toy's ball")
    assert vocab.decode(ids) == "the toy's ball"
