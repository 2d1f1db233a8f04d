"""Tokenizer and vocabulary.

The tokenizer follows the Penn Treebank conventions of nltk's `TreebankWordTokenizer`
(punctuation split off, clitics such as "n't" and "'s" separated), lower-cased, with
punctuation tokens dropped: the same normalisation the COCO caption tools apply before
scoring. It is written here with the standard `re` module rather than imported from nltk,
whose package import costs about a second of every command's start-up; `tests/core/test_text.py`
checks it gives nltk's tokens on a few hundred sentences.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)

# Penn Treebank word splitting as (pattern, replacement) passes over the text, in order;
# the result is split on whitespace. Passes that only add spaces around a token keep the
# token; quotes become `` (opening) and '' (closing).
# \s as nltk's `regex` engine reads it: str.isspace() less the separators \x1c-\x1f
_WS = r"[^\S\x1c-\x1f]"
_TREEBANK_PASSES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        # opening quotes: a double quote first in the text or after a space or an opening
        # bracket ('' counts as a double quote)
        (r'^"', "``"),
        (r"(``)", r" \1 "),
        (r"""([ ([{<])("|'')""", r"\1 `` "),
        # colons and commas unless a digit follows (3,000 and 10:30 stay whole)
        (r"([:,])([^\d])", r" \1 \2"),
        (r"([:,])$", r" \1 "),
        (r"\.\.\.", " ... "),
        (r"[;@#$%&]", r" \g<0> "),
        # a period ends the text only (optionally before closing brackets and quotes)
        (r"""([^.])(\.)([\])}>"']*)""" + _WS + "*$", r"\1 \2\3 "),
        (r"[?!]", r" \g<0> "),
        (r"([^'])' ", r"\1 ' "),
        (r"[\][(){}<>]", r" \g<0> "),
        (r"--", " -- "),
    )
)
_CLOSING_PASSES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"''", " '' "),
        (r'"', " '' "),
        (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "),
        (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
        # words split in two: cannot, d'ye, gimme, gonna, gotta, lemme, more'n, wanna
        (r"(?i)\b(?:(can)(not)|(d)('ye)|(gim)(me)|(gon)(na)|(got)(ta)|(lem)(me)|(more)('n))\b"
         r"|\b(wan)(na)(?=\s)", ""),  # "" = _two_parts
        (r"(?i) ('t)(is|was)\b", r" \1 \2 "),
    )
)  # fmt: skip


def _two_parts(match: re.Match) -> str:
    first, second = (g for g in match.groups() if g is not None)
    return f" {first} {second} "


def treebank_tokens(text: str) -> list[str]:
    """`text` split into Penn Treebank tokens, case kept (nltk's `TreebankWordTokenizer`)."""
    for pattern, repl in _TREEBANK_PASSES:
        text = pattern.sub(repl, text)
    text = f" {text} "
    for pattern, repl in _CLOSING_PASSES:
        text = pattern.sub(repl or _two_parts, text)
    return text.split()


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
    return [t for t in treebank_tokens(text) if not _punct.match(t)]


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
