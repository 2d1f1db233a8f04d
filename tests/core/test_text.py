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


# ---------------------------------------------------------------- the Treebank tokenizer
TRICKY = [
    'He said, "I can\'t go -- not now..." (really) [maybe] {no} <yes>.',
    "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.",
    "They'll save and invest more. I'm sure she'd've won; we're 100% @home #1 & more'n that",
    "cannot gonna gotta gimme lemme wanna d'ye 'tis 'twas CANNOT Gonna WANNA",
    "a dog's ball, the dogs' bone: 10:30, 3,000 people; ''quoted'' ``quoted'' 'single' ",
    "Is it? Yes! No!! What?! ...and then.",
    "a man in a red shirt .",
    '"Hello," she said.\x1c',
    "ends with a period.)\"'  ",
    "a\u00a0non-breaking space.\u00a0",
    "",
    "   ",
]


def _sentences() -> list[str]:
    """TRICKY, a few hundred seeded random strings over Treebank's special characters and
    the captions of Flickr8k when ../shared/data has them."""
    import random
    from pathlib import Path

    rng = random.Random(0)
    parts = list("abXY 09.,:;'\"`()[]{}<>!?-@#$%&\n\t") + [
        "n't", "'s", "'ll", "'re", "cannot", "gonna", "wanna ", " 'tis", "d'ye", "''", "``",
        "...", "--", "\u00a0", "\x1c", "é",
    ]  # fmt: skip
    out = TRICKY + [
        "".join(rng.choice(parts) for _ in range(rng.randint(1, 20))) for _ in range(600)
    ]
    flickr = Path(__file__).resolve().parents[3] / "shared/data/flickr8k/Flickr8k.token.txt"
    if flickr.is_file():
        lines = flickr.read_text(encoding="utf-8").splitlines()
        out += [line.split("\t", 1)[-1] for line in lines[::40]]
    return out


@pytest.mark.slow
def test_treebank_tokens_are_nltks():
    nltk_treebank = pytest.importorskip("nltk.tokenize.treebank")
    from captioner.text import treebank_tokens

    reference = nltk_treebank.TreebankWordTokenizer()
    sentences = _sentences()
    assert len(sentences) >= 600
    for text in sentences:
        for variant in (text, text.lower()):
            assert treebank_tokens(variant) == reference.tokenize(variant), repr(variant)


def test_the_tokenizer_does_not_import_nltk():
    import subprocess
    import sys

    code = "import sys, captioner.text; print('nltk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
