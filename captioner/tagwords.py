"""Caption words for the tagger's ImageNet-1k classes: what the one-to-one head sees, in the
words a one-to-many caption would use ("golden retriever" -> dog, "sorrel" -> horse,
"espresso" -> coffee, "cheetah" -> cheetah).

The table `captioner/data/imagenet_words.json` (built from WordNet 3.0 by
`python -m captioner.pipelines.build_tagwords`) holds, per class in the classifier's order, its
WordNet id, an everyday `name` and every caption word that names it, from the class itself up
its hypernyms ("egyptian cat", "domestic cat", "house cat", "cat", ...).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
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


# Object naming (issue 10 part B): the decoder's own object words act as placeholders. A
# caption word that names an ImageNet thing ("dog", "motorcycle", "shirt") but that the tagger
# does not see is replaced by the thing the tagger is confident about and the caption does
# not name yet ("a man rides a motorcycle" + tag "mountain bike 0.8" -> "a man rides a
# bicycle"), so captions name objects no training caption mentioned. Words that captions
# mostly use in another sense ("orange" the colour, "stand", "top") and words for people
# (ImageNet's few person classes) never swap.
NOT_OBJECTS = frozenset(
    "orange area watch light piece fly string case work pick fan shade cover carrier stage "
    "sign bar glass screen monitor mouse crane pitcher disk tank ridge valley cliff shore "
    "mountain pool hay muzzle ear stand top head ride arm course game surface round landing "
    "bank medium can figure patch display board rail beam chest cover mat gear wear store "
    "home house building shop market restaurant paper wood cloth chain string match".split()
)
PEOPLE_MARKERS = ("person", "individual")


@functools.cache
def _naming_index() -> tuple[dict[str, frozenset[int]], dict[str, frozenset[str]]]:
    """(object word -> the classes it names, object word -> the words above it in those
    classes' hypernym chains)."""
    classes: dict[str, set[int]] = {}
    above: dict[str, set[str]] = {}
    for i, entry in enumerate(_table()):
        chain = entry["words"]
        if any(m in chain for m in PEOPLE_MARKERS):
            continue
        for k, word in enumerate(chain):
            if " " in word or word in NOT_OBJECTS:
                continue
            classes.setdefault(word, set()).add(i)
            above.setdefault(word, set()).update(chain[k + 1 :])
        above.setdefault(entry["name"], set()).update(chain[1:])
    return ({w: frozenset(c) for w, c in classes.items()},
            {w: frozenset(a) for w, a in above.items()})  # fmt: skip


def object_word(word: str) -> str | None:
    """The object word a caption token stands for ("bikes" -> "bike"), else None."""
    classes = _naming_index()[0]
    for form in (word, *_singulars(word)):
        if form in classes:
            return form
    return None


def _singulars(word: str) -> list[str]:
    out = [word[:-1]] if word.endswith("s") else []
    if word.endswith("es"):
        out.append(word[:-2])
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    return out


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"


def _ranked_tags(
    class_probs: list[tuple[int, float]], words: list[str], *, skip=(), min_score: float = 0.0
) -> list[str]:
    """Tag names (probabilities summed per name), most probable first, at least `min_score`,
    neither in NOT_OBJECTS nor already named by `words` (`skip`: slot words, not text)."""
    scores: dict[str, float] = {}
    for index, p in class_probs:
        scores[tag_name(index)] = scores.get(tag_name(index), 0.0) + p
    text = " ".join(w for w in words if w not in skip).lower()
    return [n for n, s in sorted(scores.items(), key=lambda kv: -kv[1])
            if s >= min_score and n not in NOT_OBJECTS and not mentions(text, n)]  # fmt: skip


def name_objects(
    words: list[str],
    class_probs: list[tuple[int, float]],
    *,
    min_score: float = 0.3,
    max_support: float = 0.02,
    same_kind: bool = True,
) -> list[str]:
    """`words` of a caption with unseen object words swapped for confident tags.

    class_probs: (ImageNet class index, probability) of the tagger's top classes.
    min_score: a tag name (its classes' probabilities summed) names the image from here.
    max_support: a caption object word whose classes sum to less than this is unseen.
    same_kind: swap only words that share a WordNet hypernym with the tag (dog -> cheetah,
        motorcycle -> bicycle, shirt -> hat; never dog -> coffee).
    """
    classes, above = _naming_index()
    candidates = _ranked_tags(class_probs, words, min_score=min_score)
    probs = dict(class_probs)
    out = list(words)
    for i, word in enumerate(words):
        obj = object_word(word.lower()) if candidates else None
        if obj is None or sum(probs.get(c, 0.0) for c in classes[obj]) >= max_support:
            continue
        kin = [t for t in candidates if not same_kind or above.get(t, set()) & above[obj]]
        if kin:
            candidates.remove(kin[0])
            out[i] = _plural(kin[0]) if obj != word.lower() else kin[0]
    return out


# Object slots (the Decoupled Novel Object Captioner's placeholder): a decoder trained with
# `--object-slots` sees SLOT wherever a training caption named an object, so it learns where
# an object goes without learning which; `fill_slots` puts the tagger's objects there.
SLOT = "xobj"
SLOT_FALLBACK = "object"  # a slot no confident tag can fill


def slot_caption(caption: str) -> str:
    """`caption` tokenised, with every object word replaced by SLOT."""
    return " ".join(SLOT if object_word(t) else t for t in tokenize(caption))


def fill_slots(words: list[str], class_probs: list[tuple[int, float]]) -> list[str]:
    """`words` with each SLOT replaced by the next most probable tag name (probabilities
    summed per name) that the caption does not name yet; SLOT_FALLBACK when none is left."""
    names = _ranked_tags(class_probs, words, skip={SLOT})
    out = []
    for word in words:
        if word == SLOT:
            word = names.pop(0) if names else SLOT_FALLBACK
        out.append(word)
    return out


# Typed slots: one slot word per kind of object, filled only by a tag of the same kind, so
# a garment slot ("a man in a red ___") never gets a tricycle. Kinds come from the WordNet
# hypernyms in the table; the first kind whose markers an object word reaches wins.
KINDS = (
    ("animal", {"animal", "carnivore", "ungulate", "hoofed mammal", "bird", "fish", "reptile",
                "amphibian", "insect", "arthropod", "primate", "rodent", "fauna"}),
    ("vehicle", {"vehicle", "craft", "wheeled vehicle", "conveyance", "boat"}),
    ("clothing", {"clothing", "garment", "headdress", "headgear", "footwear", "wear", "jacket",
                  "coat"}),
    ("equipment", {"game equipment", "sports equipment", "ball", "plaything", "toy",
                   "photographic equipment"}),
)  # fmt: skip
TYPED_SLOTS = {kind: f"x{kind}" for kind in (*(k for k, _ in KINDS), "thing")}
KIND_OF_SLOT = {slot: kind for kind, slot in TYPED_SLOTS.items()}
# what a typed slot says when no tag of its kind is confident: the kind's most common
# caption word in Flickr8k training captions that no held-out experiment uses
TYPED_FALLBACK = {"animal": "dog", "vehicle": "motorcycle", "clothing": "shirt",
                  "equipment": "toy", "thing": "object"}  # fmt: skip
TYPED_MIN_SCORE = 0.05


@functools.cache
def object_kind(word: str) -> str:
    """The kind of an object word or tag name: animal, vehicle, clothing, equipment, thing."""
    if word in PLURAL_ONLY:
        word = object_word(word) or word
    for kind, markers in KINDS:  # the word itself first: "toy" is equipment, not a toy dog
        if word in markers:
            return kind
    reach = _naming_index()[1].get(word, frozenset())
    for kind, markers in KINDS:
        if reach & markers:
            return kind
    return "thing"


def typed_slot_caption(caption: str) -> str:
    """`caption` tokenised, each animal, vehicle, garment or equipment word replaced by the
    slot of its kind; other object words ("bench", "camera") stay, the decoder names those."""
    out = []
    for token in tokenize(caption):
        obj = object_word(token)
        kind = object_kind(obj) if obj else "thing"
        out.append(TYPED_SLOTS[kind] if kind != "thing" else token)  # things keep their word
    return " ".join(out)


def fill_typed_slots(
    words: list[str],
    class_probs: list[tuple[int, float]],
    *,
    detected: list[tuple[str, float]] = (),
) -> list[str]:
    """`words` with each typed slot replaced by the most probable unused tag name of its kind
    (>= TYPED_MIN_SCORE), else the kind's fallback word.

    detected: (object word, probability) of a caption-word detector (a recognizer trained
        with `--caption-objects`); its words come first, most probable first, whatever their
        probability: a slot of a kind takes the detector's best word of that kind."""
    said = [object_word(w.lower()) for w in words if w not in KIND_OF_SLOT]
    ranked = rank_detected(detected)
    ranked += [n for n in _ranked_tags(class_probs, words, skip=KIND_OF_SLOT,
                                       min_score=TYPED_MIN_SCORE) if n not in ranked]  # fmt: skip
    ranked = [n for n in ranked if not any(same_thing(n, w) for w in said if w)]
    out = []
    for word in words:
        kind = KIND_OF_SLOT.get(word)
        if kind is not None:
            pick = next((n for n in ranked if object_kind(n) == kind), None)
            if pick is not None:  # said once: neither it nor a synonym fills another slot
                ranked = [n for n in ranked if not same_thing(n, pick)]
            word = pick or TYPED_FALLBACK[kind]
            if any(w in COUNT_WORDS for w in out[-2:]):  # "two xanimal" -> "two dogs"
                word = plural(word)
        out.append(word)
    return out


# words after which a slot stands for several things: its word goes in the plural
COUNT_WORDS = frozenset({
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "several", "many", "multiple", "both", "these", "those",
})  # fmt: skip
_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "mouse": "mice",
    "goose": "geese", "foot": "feet", "tooth": "teeth", "ox": "oxen", "calf": "calves",
    "wolf": "wolves", "knife": "knives",
}  # fmt: skip
_SAME_PLURALS = frozenset({"sheep", "fish", "deer", "moose", "bison", "cattle", "swine"})


def plural(word: str) -> str:
    """The plural of an object word ("dog" -> "dogs", "bus" -> "buses", "puppy" ->
    "puppies", "sheep" -> "sheep"); garments named in the plural only stay as they are."""
    if word in PLURAL_ONLY or word in _SAME_PLURALS:
        return word
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


# words that name a kind of thing rather than a thing: a detector's superordinate yields its
# rank to a word for the same thing with fewer ImageNet classes ("car" for "vehicle") that
# is at least SPECIFIC_SHARE as probable; basic words keep theirs ("dog" before "retriever")
SUPERORDINATES = frozenset({"animal", "vehicle", "machine", "clothing", "clothes", "attire"})
SPECIFIC_SHARE = 0.5


def rank_detected(detected: Sequence[tuple[str, float]]) -> list[str]:
    """A caption-word detector's words, most probable first, except that a superordinate
    ("vehicle") is preceded by the most probable narrower word for the same thing that
    reaches SPECIFIC_SHARE of its probability ("vehicle" 0.9 and "car" 0.85 -> car, vehicle;
    "dog" 0.88 and "retriever" 0.73 stay in that order)."""
    order = sorted(detected, key=lambda wp: -wp[1])
    out: list[str] = []
    for i, (word, p) in enumerate(order):
        if word in SUPERORDINATES:  # the most probable narrower word goes first
            narrower = [v for v, q in order[i + 1 :] if v not in out and q >= SPECIFIC_SHARE * p
                        and _n_classes(v) < _n_classes(word) and same_thing(v, word)]  # fmt: skip
            out.extend(narrower[:1])
        if word not in out:
            out.append(word)
    return out


def _n_classes(word: str) -> int:
    return len(_naming_index()[0].get(object_word(word) or word, ()))


def same_thing(a: str, b: str) -> bool:
    """Whether two object words name the same thing: equal, or naming a common ImageNet
    class ("bike" and "bicycle", "cap" and "hat" do not: a cap is not every hat)."""
    a, b = object_word(a) or a, object_word(b) or b  # "jeans" and "jean" are one thing
    if a == b:
        return True
    classes = _naming_index()[0]
    return bool(classes.get(a, frozenset()) & classes.get(b, frozenset()))


# garments named in the plural only: a detector label and a filled slot keep the plural
# ("a man in blue jeans", never "a man in a blue jean")
PLURAL_ONLY = frozenset({"jeans", "pants", "trousers", "pajamas"})


def agree_articles(words: list[str]) -> list[str]:
    """`words` with each "a" / "an" fitting the word after it, as a filled slot or a swapped
    object needs ("a xclothing" -> "an apron", "a xanimal" -> "an elephant"), and none
    before a garment named in the plural only ("a blue xclothing" -> "blue jeans")."""
    out: list[str] = []
    for i, word in enumerate(words):
        if word in ("a", "an") and i + 1 < len(words):
            after = words[i + 1 : i + 3]
            if after[0] in PLURAL_ONLY or (len(after) == 2 and after[1] in PLURAL_ONLY
                                           and after[0] not in ("pair", "of")):  # fmt: skip
                continue
            if after[0].isalpha():
                word = "an" if _vowel_sound(after[0]) else "a"
        out.append(word)
    return out


def _vowel_sound(word: str) -> bool:
    if word.startswith(("hour", "honest", "honor", "heir")):
        return True
    return word[0] in "aeiou" and not word.startswith(("uni", "use", "usu", "uk", "eu", "one"))


def caption_objects(captions: list[str]) -> list[str]:
    """The object words of a kind a typed slot holds (animal, vehicle, clothing, equipment)
    that any of `captions` names, singular but for PLURAL_ONLY garments, sorted ("A dog
    chases two balls in jeans" -> ball, dog, jeans):
    the labels of a caption-word detector (`captioner train recognizer --caption-objects`),
    learnt from images whose captions a decoder may never see, as DCC and NOC train theirs."""
    found = set()
    for caption in captions:
        for token in tokenize(caption):
            obj = object_word(token)
            if obj is not None and object_kind(obj) != "thing":
                found.add(token if token in PLURAL_ONLY else obj)
    return sorted(found)
