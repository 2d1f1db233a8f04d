"""Tokenizer and vocabulary.

The tokenizer is nltk's Treebank tokenizer (pure regular expressions, no `nltk.download`),
lower-cased, with punctuation tokens dropped: the same normalisation the COCO caption
tools apply before scoring.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from nltk.tokenize import TreebankWordTokenizer

PAD, BOS, EOS, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)

_treebank = TreebankWordTokenizer()
_punct = re.compile(r"^[^\w]+$")
# Typographic punctuation -> ASCII, so "tux—the" splits and “fuji” loses its quotes.
_TYPOGRAPHIC = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": " - ",
        "\u2014": " - ",
        "\u2026": "...",
        "\u00a0": " ",
    }
)


# Clitics the Treebank tokenizer splits off ("toy's" -> "toy 's", "can't" -> "ca n't");
# `detokenize` glues them back for display.
_CLITICS = frozenset({"'s", "'re", "'ll", "'m", "'d", "'ve", "n't"})
_STEM_FIXES = {("ca", "n't"): "can't", ("wo", "n't"): "won't", ("gon", "na"): "gonna",
               ("wan", "na"): "wanna", ("got", "ta"): "gotta"}  # fmt: skip


# Words a finished English caption does not end with (determiners, prepositions,
# conjunctions, possessives): "a dog runs on the" is cut short. Decoding refuses `<end>`
# after them; `captioner eval` counts captions that still end with one. Particles that end
# good captions ("jumps up", "falls down", "looks around") are not on the list.
DANGLING_WORDS = frozenset(
    "a an the this that these those his her its their my your our some any another each "
    "of in on at with to from by for into onto over under near behind beside between "
    "through across toward towards against and or but while as than 's".split()
)


def detokenize(tokens: Sequence[str]) -> str:
    """Word tokens -> a sentence for people: clitics rejoin their word ("a toy 's" -> "a
    toy's", "ca n't" -> "can't"). `tokenize` splits the result into the same tokens again, so
    scores computed on it are unchanged."""
    words: list[str] = []
    for tok in tokens:
        if words and (words[-1], tok) in _STEM_FIXES:
            words[-1] = _STEM_FIXES[(words[-1], tok)]
        elif words and tok in _CLITICS:
            words[-1] += tok
        else:
            words.append(tok)
    return " ".join(words)


def tokenize(text: str) -> list[str]:
    """Lower-case `text` and split it into word tokens, dropping punctuation."""
    text = text.translate(_TYPOGRAPHIC).lower()
    return [t for t in _treebank.tokenize(text) if not _punct.match(t)]


class Vocabulary:
    """Maps tokens to ids. Ids 0..3 are `<pad>`, `<start>`, `<end>`, `<unk>`."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIALS}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat a token")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    @classmethod
    def build(
        cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Build from raw texts: tokens seen at least `min_count` times, most frequent first."""
        counts = Counter(tok for text in texts for tok in tokenize(text))
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in SPECIALS),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, text: str | Sequence[str], *, add_special: bool = True) -> list[int]:
        """Text (or pre-split tokens) -> ids, with `<start>` / `<end>` around when asked."""
        tokens = tokenize(text) if isinstance(text, str) else text
        ids = [self.stoi.get(t, self.unk_id) for t in tokens]
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> detokenised text; stops at `<end>`, skips `<pad>` and `<start>`."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return detokenize(words)

    def to_json(self) -> dict:
        return {"tokens": self.itos}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(self.to_json(), ensure_ascii=False, indent=0), encoding="utf-8"
        )

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tokens = data["tokens"]
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file not found: {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(f"malformed vocabulary file {path}: {e}") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(
                f"malformed vocabulary file {path}: 'tokens' must be a list of strings"
            )
        return cls(tokens)
