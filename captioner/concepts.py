"""Concepts: the bridge between what the tagger sees and what captions say.

A concept is a caption word that names ImageNet classes ("cat" for tabby, Egyptian cat,
lion...; "coffee" for espresso; "bus" for trolleybus and school bus). The one-to-one head
(the ImageNet tagger) gives a photo's concepts; the words a caption mentions give a text-only
caption's. A decoder that reads concepts beside the image can learn its language from every
caption, photo or not (`captioner.pipelines.train_everyday`).

Everything about concepts lives here, used alike by training, inference and evaluation:
- `ConceptSet`: the concept words and the (classes x concepts) membership matrix;
- `build_concept_set(counts)`: choose the concept words from the ImageNet word table and
  caption word counts;
- `ConceptSet.from_text(tokens)`: the concepts a caption mentions, with their hypernym concepts
  ("lion" -> lion, cat);
- `ConceptSet.from_probs(probs)`: a photo's concepts, from the tagger's class probabilities:
  per concept the summed probability of its classes, the most probable first.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

TABLE = Path(__file__).parent / "data" / "imagenet_words.json"
# How far up a class's hypernym chain concept words are taken from ("lion, king of beasts,
# panthera leo, big cat, cat, feline, ..."): far enough for the everyday word (cat for tabby),
# not so far that every animal becomes "animal".
CHAIN_DEPTH = 8
# Words that name ImageNet classes but that captions use for other things, or too generally
# to help ("top" of a shirt, "course" of a meal, "drink" the verb, people's roles).
STOPWORDS = frozenset(
    """top course drink dish home structure device object thing equipment instrument
    covering container commodity article system unit part piece support material line
    sign base board stand shop store player diver groom food meal animal vehicle
    craft conveyance machine implement tool gear case set protective cover seat place
    spot area view point way person individual participant contestant athlete runner
    racer boxer painter pirate orange game head work works ride match round wear site
    design cell post produce fixing surface circle figure control pick spring level hip
    staff drop grand file press upright peer jack slot litter key scope mount seal wing
    comfort blind brace stage light bar can display patch shape mini pattern fly bank
    shade string sheet chest beam wind bars saw fan roll rubber iron landing barrier
    meter tank pole stick paper arm wood cream ear fencing horn nail hook dressing feed
    spike cycle vertical weight punch signal sweet protection establishment apparatus
    tin safe kit mail grain residence weapon trap dip seed ray ware orang sunglass pant
    jean watch pool clothing attire outfit garb garment apparel liquid beverage fabric
    cloth wrap wrapping package carrier vessel basin""".split()
)


# Everyday caption words that the WordNet chains of the ImageNet classes never reach: a rail
# "passenger car" is a train in a caption, a "toilet seat" a toilet, a "washbasin" a sink.
# Word -> the ImageNet class names (`backbones.imagenet_categories()`) it also names; a
# stop-listed word here names only these classes ("sign": the street sign).
ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("bullet train", "electric locomotive", "steam locomotive", "passenger car",
              "freight car", "streetcar"),
    "cow": ("ox",),
    "toilet": ("toilet seat",),
    "sink": ("washbasin",),
    "book": ("book jacket", "bookcase", "bookshop", "comic book"),
    "bed": ("four-poster", "quilt", "studio couch"),
    "phone": ("cellular telephone",),
    "tv": ("television", "screen"),
    "sign": ("street sign",),
}  # fmt: skip


def _imagenet_chains() -> list[list[str]]:
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    return [row["words"][:CHAIN_DEPTH] for row in table]


def _single(words: Iterable[str]) -> list[str]:
    """The one-token words of a chain; "teddy bear" gives "teddy" (what captions tokenise)."""
    out = []
    for w in words:
        parts = w.split()
        if len(parts) == 1 and parts[0].isalpha():
            out.append(parts[0])
    return out


@dataclass
class ConceptSet:
    """The concept words and which ImageNet classes each one names."""

    words: list[str]
    classes: list[list[int]]  # per concept word, the class indices it names

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def matrix(self, num_classes: int = 1000) -> Tensor:
        """(num_classes, num_concepts) 0/1: class c names concept k."""
        m = torch.zeros(num_classes, len(self.words))
        for k, cls in enumerate(self.classes):
            m[cls, k] = 1.0
        return m

    def hypernyms(self) -> dict[str, set[str]]:
        """concept -> the concepts above it in some chain that names it ("lion" -> {"cat"})."""
        chains = _imagenet_chains()
        known = set(self.words)
        up: dict[str, set[str]] = {w: set() for w in self.words}
        for chain in chains:
            singles = [w for w in _single(chain) if w in known]
            for i, w in enumerate(singles):
                up[w].update(singles[i + 1 :])
        return up

    def from_text(self, tokens: Sequence[str], hypernyms: dict[str, set[str]]) -> list[str]:
        """The concepts caption `tokens` mention (plural -s / -es / -ies counted), each
        followed by its hypernym concepts, in order of first mention, without repeats."""
        known = self.index
        out: list[str] = []
        for tok in tokens:
            word = singular(tok, known)
            if word is None:
                continue
            for w in (word, *sorted(hypernyms.get(word, ()))):
                if w not in out:
                    out.append(w)
        return out

    def from_probs(
        self, probs: Tensor, *, top_k: int = 5, threshold: float = 0.1
    ) -> list[list[tuple[str, float]]]:
        """probs (B, classes) -> per image the concepts whose summed class probability is at
        least `threshold`, most probable first, at most `top_k`."""
        scores = probs.float() @ self.matrix(probs.size(1)).to(probs.device)  # (B, K)
        values, idx = scores.topk(min(top_k, scores.size(1)), dim=1)
        return [
            [(self.words[i], float(v)) for v, i in zip(vs, ix) if v >= threshold]
            for vs, ix in zip(values.tolist(), idx.tolist())
        ]

    def to_json(self) -> dict:
        return {"words": self.words, "classes": self.classes}

    @classmethod
    def from_json(cls, data: dict) -> ConceptSet:
        words, classes = data.get("words"), data.get("classes")
        if (
            not isinstance(words, list)
            or not isinstance(classes, list)
            or len(words) != len(classes)
        ):
            raise ValueError("concepts: expected 'words' and 'classes' lists of one length")
        return cls([str(w) for w in words], [[int(c) for c in cl] for cl in classes])


def singular(token: str, known: dict[str, int] | set[str]) -> str | None:
    """`token` or its singular if that is a known concept word, else None."""
    if token in known:
        return token
    for cut, add in (("ies", "y"), ("es", ""), ("s", "")):
        if token.endswith(cut) and len(token) > len(cut) + 1:
            stem = token[: -len(cut)] + add
            if stem in known:
                return stem
    return None


def build_concept_set(counts: Counter, *, min_count: int = 20) -> ConceptSet:
    """The concept words: one-token words of the ImageNet classes' hypernym chains (first
    `CHAIN_DEPTH` entries) that captions use at least `min_count` times (`counts`: caption
    token counts, plurals folded into singulars by the caller or not), less `STOPWORDS`, plus
    the `ALIASES` captions use that often."""
    from captioner.backbones import imagenet_categories

    def common(w: str) -> bool:
        return counts.get(w, 0) + counts.get(w + "s", 0) + counts.get(w + "es", 0) >= min_count

    names: dict[str, list[int]] = {}
    for c, chain in enumerate(_imagenet_chains()):
        for w in _single(chain):
            if w not in STOPWORDS and len(w) >= 3 and common(w) and c not in names.get(w, ()):
                names.setdefault(w, []).append(c)
    index = {name: i for i, name in enumerate(imagenet_categories())}
    for w, classes in ALIASES.items():
        if common(w):
            names.setdefault(w, [])
            names[w].extend(index[c] for c in classes if index[c] not in names[w])
    words = sorted(names)
    return ConceptSet(words, [names[w] for w in words])
