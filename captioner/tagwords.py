"""Caption words for the tagger's ImageNet-1k classes: what the one-to-one head sees, in the
words a one-to-many caption would use ("golden retriever" -> dog, "sorrel" -> horse,
"espresso" -> coffee, "cheetah" -> cheetah).

The table `captioner/data/imagenet_words.json` (built from WordNet 3.0 by
`python -m captioner.pipelines.tagwords`) holds, per class in the classifier's order, its
WordNet id, an everyday `name` and every caption word that names it, from the class itself up
its hypernyms ("egyptian cat", "domestic cat", "house cat", "cat", ...).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from captioner.text import tokenize

TABLE = Path(__file__).parent / "data" / "imagenet_words.json"
log = logging.getLogger(__name__)


@functools.cache
def _table() -> tuple[dict, ...]:
    return tuple(json.loads(TABLE.read_text(encoding="utf-8")))


def tag_name(class_index: int) -> str:
    """The everyday caption word for ImageNet class `class_index` (0-999)."""
    return _table()[class_index]["name"]


def tag_words(class_index: int) -> list[str]:
    """Every caption word or phrase naming class `class_index`, most specific first."""
    return list(_table()[class_index]["words"])


def mentions(caption: str, words: list[str] | str) -> bool:
    """Whether `caption` names one of `words` (a word or phrase; plural -s / -es counted)."""
    tokens = tokenize(caption)
    for phrase in [words] if isinstance(words, str) else words:
        target = tokenize(phrase)
        n = len(target)
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            if window[:-1] == target[:-1] and window[-1] in _forms(target[-1]):
                return True
    return False


def _forms(word: str) -> set[str]:
    forms = {word, word + "s", word + "es"}
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    return forms


def drop_mentions(dsd, words: list[str]):
    """`dsd` (a caption DatasetDict) without the *training* images any of whose captions
    names one of `words`: the held-out-object setting of novel-object captioning (the
    validation and test splits keep them, so a model can be scored on objects it never saw
    in a caption)."""
    train = dsd["train"]
    kept = train.filter(
        lambda caps: not any(mentions(c, words) for c in caps), input_columns="captions"
    )
    log.info(
        "held out %s: %d of %d training images dropped", words, len(train) - len(kept), len(train)
    )
    dsd["train"] = kept
    return dsd
