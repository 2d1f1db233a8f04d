"""Pure-Python twin of the tokenisation the COCO caption evaluation applies.

pycocoevalcap writes every caption on its own line, runs Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` (Java) over the file and then drops the
tokens in `PUNCTUATIONS`. This module reproduces that with a longest-match lexer whose
rules mirror the JFlex rules of that release, so scores need no Java.

Quirks kept on purpose, because the reference has them:
- brackets become ``-lrb-`` / ``-rrb-`` / ``-lsb-`` ...; the punctuation list names the
  upper-case forms, so after lower-casing they survive as tokens;
- abbreviations keep their period ("mr.", "etc.", "u.s."), a single letter before a
  sentence-opening word such as "The" loses it, and that look-ahead crosses into the next
  caption (so `tokenize_captions` lexes all captions as one stream, like the reference);
- fractions and phone numbers keep a no-break space inside the token ("3\\xa01/2").
Characters beyond the Basic Multilingual Plane (emoji) are dropped unless part of a URL or
e-mail address, as Java (which sees them as surrogate pairs) does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import NamedTuple

import regex

from captioner.metrics.ptb_rules import ABBREV1, ABBREV4, LINE, RULES, SKIP

PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-"]
    + [".", "?", "!", ",", ":", "-", "--", "...", ";"]
)


class _Rule(NamedTuple):
    pattern: regex.Pattern
    action: object
    pushback: int


def _caseless(source: str) -> str:
    """Rewrite `(?i:...)` groups as explicit `[xX]` letters (JFlex caseless, minus classes).

    The `regex` module mis-matches some scoped case-insensitive groups beside negated
    classes, and JFlex leaves character classes case-sensitive anyway.
    """
    out, stack, i = [], [False], 0
    while i < len(source):
        ch = source[i]
        if source.startswith("(?i:", i):
            stack.append(True)
            out.append("(?:")
            i += 4
            continue
        if ch == "\\":
            m = re.match(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|p\{\w+\}|.)", source[i:], re.S)
            out.append(m.group())
            i += len(m.group())
            continue
        if ch == "[":
            m = re.match(r"\[\^?\]?(?:\\.|[^\]\\])*\]", source[i:], re.S)
            out.append(m.group())
            i += len(m.group())
            continue
        if ch == "(":
            stack.append(stack[-1])
        elif ch == ")":
            stack.pop()
        out.append(
            f"[{ch.lower()}{ch.upper()}]" if stack[-1] and ch.isascii() and ch.isalpha() else ch
        )
        i += 1
    return "".join(out)


@functools.cache
def _compile() -> tuple[list[_Rule], regex.Pattern]:
    """The rules, compiled once on first use, and the abbreviation test of the fast path."""
    rules = []
    for tok, ctx, action, pushback in RULES:
        source = _caseless(f"(?P<t>{tok})" + (f"(?:{ctx})" if ctx else ""))
        # POSIX: leftmost-longest inside each rule, as a JFlex DFA matches
        rules.append(_Rule(regex.compile(source, regex.POSIX), action, pushback))
    abbreviation = regex.compile(
        _caseless(rf"{ABBREV1}|(?:{ABBREV4})\.|(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\."),
        regex.POSIX,
    )
    return rules, abbreviation


# Fast path: an ASCII word alone, or before [,;:] / a sentence period, is its own token
# unless it is split ("cannot") or may be an abbreviation ("Mr.", "B.").
_PLAIN = re.compile(r"([A-Za-z]+)(?:[,;:]?(?=[ \t\n]|$)|(\.)(?=[ \t\n]|$))")
_SPACES = re.compile(r"[ \t]+")
_ASSIMILATED = frozenset({"cannot", "gonna", "gotta", "lemme", "gimme", "wanna"})


@functools.cache  # at most one entry per distinct character
def _candidates(ch: str) -> list[_Rule]:
    """The rules that can match text starting with `ch` (JFlex's DFA does this for free)."""
    return [r for r in _compile()[0] if r.pattern.match(ch, partial=True)]


@functools.lru_cache(maxsize=8192)
def _plain_token(word: str, before_period: bool) -> bool:
    if word.lower() in _ASSIMILATED:
        return False
    return not (before_period and _compile()[1].fullmatch(word + "."))


_WINDOW = 2000  # no token plus trailing context is longer than this
_INNER_BREAKS = re.compile("\r\n|[\r\n\u2028\u2029\x0b\x0c]")


def _lex(text: str) -> list[list[str]]:
    """Raw PTB tokens (original case) of `text`, one list per line."""
    lines: list[list[str]] = [[]]
    pos, end = 0, len(text)
    while pos < end:
        code = ord(text[pos])
        if code < 128:
            if code == 32 or code == 9:
                pos = _SPACES.match(text, pos).end()
                continue
            plain = _PLAIN.match(text, pos)
            if plain and _plain_token(plain.group(1), plain.group(2) is not None):
                lines[-1].append(plain.group(1))
                pos = plain.end(1)
                continue
        best, best_len = None, 0
        window = pos + _WINDOW  # bounds the regex engine's look-ahead for required literals
        for rule in _candidates(text[pos]):
            m = rule.pattern.match(text, pos, window)
            if m is not None and m.end() - pos > best_len:
                best, best_len, token_end = rule, m.end() - pos, m.end("t")
        if best is None:  # untokenizable character: deleted
            pos += 1
            continue
        token_end -= best.pushback
        token = text[pos:token_end]
        pos = token_end
        if best.action == LINE:
            lines.append([])
        elif best.action != SKIP:
            token = best.action(token)
            if token:  # a lone soft hyphen leaves nothing
                lines[-1].append(token)
    return lines


def _lex_java_chars(text: str) -> list[list[str]]:
    """`_lex` on text where characters beyond the BMP act like Java's surrogate pairs.

    Java sees such a character as two surrogates: negated classes (URLs, e-mails) take
    them, nothing else does, and alone they are dropped. A private-use stand-in behaves
    the same here; it is swapped back in the tokens.
    """
    wide = sorted({ch for ch in text if ord(ch) > 0xFFFF})
    if not wide:
        return _lex(text)
    free = (chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)
    there = {ch: next(free) for ch in wide}
    back = str.maketrans({v: k for k, v in there.items()})
    lines = _lex(text.translate(str.maketrans(there)))
    return [[tok.translate(back) for tok in line] for line in lines]


def tokenize_captions(captions: Sequence[str]) -> list[str]:
    """Tokenise captions exactly as pycocoevalcap's PTBTokenizer does a batch of them.

    Returns one space-joined, lower-cased string per caption, punctuation removed. The
    captions are lexed as one stream (one per line), because the reference's look-ahead
    crosses line ends; line breaks inside a caption count as spaces.
    """
    if not captions:
        return []
    text = "\n".join(_INNER_BREAKS.sub(" ", c) for c in captions)
    lines = _lex_java_chars(text)
    if len(lines) != len(captions):  # pragma: no cover - guarded by construction
        raise RuntimeError(f"tokeniser produced {len(lines)} lines for {len(captions)} captions")
    # the reference prints each line, then keeps `line.rstrip().split(" ")` minus punctuation
    printed = (" ".join(line).lower().rstrip().split(" ") for line in lines)
    return [" ".join(t for t in words if t not in PUNCTUATIONS) for words in printed]


def ptb_tokenize(text: str) -> list[str]:
    """One caption -> its COCO-evaluation tokens (lower case, punctuation dropped)."""
    joined = tokenize_captions([text])[0]
    return joined.split(" ") if joined else []
