"""The language of the synthetic scene world: scene graphs, captions, parser and scorer.

Scene graph. A scene is a list of object *groups*; a group is `count` identical objects (same
shape, colour and size) drawn close together, and no two groups share (size, colour, shape).
Groups are kept in reading order (top row first, then left to right). Relations are geometric
facts between groups, stored normalised: `Relation(i, "left", j)` means every instance of
group i lies strictly left of every instance of group j; `Relation(i, "above", j)` likewise
vertically. "right of" / "below" are the same facts with subject and object swapped.

Caption grammar (what `scene_captions` writes and `parse_caption` reads; tokens as
`captioner.text.tokenize` gives them, so commas do not matter):

    caption := [prefix] item ("and"? item)* [suffix]  prefix := "there is" | "there are" | "an image of"
    suffix  := "in the picture" (one-group scenes only; states nothing)
    item    := np [("is" | "are")] rel np  |  np     np := count size colour shape
    count   := "a" | "one" | "two" | "three"          size := "small" | "little" | "large" | "big"
    rel     := ["to the" | "on the"] ("left" | "right") "of" | "above" | "over" | "below" | "under" | "beneath"

A relation binds the noun phrase just before it to the one just after it. Every caption
written by `scene_captions` mentions every group once, with count, size, colour and shape,
and states exactly one true relation when the scene has two or more groups.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from captioner.text import tokenize

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black")
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross")
SIZES = ("small", "large")
PLURALS = {s: s + ("es" if s.endswith("s") else "s") for s in SHAPES}
COUNT_WORDS = {1: ("a", "one"), 2: ("two",), 3: ("three",)}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
REL_WORDS = {
    "left": ("left of", "to the left of", "on the left of"),
    "right": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
# A stated predicate -> (normalised predicate, whether subject and object swap).
_NORMAL = {"left": ("left", False), "right": ("left", True), "above": ("above", False),
           "below": ("above", True)}  # fmt: skip
_INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}


@dataclass
class Instance:
    x: float  # centre, fraction of the image width
    y: float  # centre, fraction of the image height
    r: float  # circumradius, fraction of the image side
    angle: float = 0.0  # rotation in degrees


@dataclass
class ObjectGroup:
    shape: str | None = None
    color: str | None = None
    size: str | None = None
    count: int | None = None
    instances: list[Instance] = field(default_factory=list)  # empty in parsed graphs


@dataclass
class Relation:
    subject: int  # index into SceneGraph.objects
    predicate: str  # "left" or "above" (normalised)
    object: int


@dataclass
class SceneGraph:
    objects: list[ObjectGroup] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    background: str = ""

    def holds(self, i: int, predicate: str, j: int) -> bool:
        """Whether `objects[i] <predicate> objects[j]` ("left", "right", "above", "below")."""
        norm, swap = _NORMAL[predicate]
        a, b = (j, i) if swap else (i, j)
        return any(r.subject == a and r.predicate == norm and r.object == b for r in self.relations)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SceneGraph:
        try:
            d = json.loads(text)
            objects = [
                ObjectGroup(**{**o, "instances": [Instance(**i) for i in o.get("instances", [])]})
                for o in d["objects"]
            ]
            relations = [Relation(**r) for r in d.get("relations", [])]
            return cls(objects, relations, d.get("background", ""))
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as e:
            raise ValueError(f"malformed scene graph JSON ({e!r}): {str(text)[:80]!r}") from None


# ----------------------------------------------------------------------------- writing


def caption_relation(scene: SceneGraph) -> tuple[int, str, int] | None:
    """The relation captions state: between the first two groups (reading order) if they are
    related ("above" preferred, then "left"), else the first related pair; None if none."""
    n = len(scene.objects)
    for i in range(n):
        for j in range(i + 1, n):
            for pred in ("above", "left", "below", "right"):
                if scene.holds(i, pred, j):
                    return i, pred, j
    return None


def _write(scene: SceneGraph, pick) -> str:
    """One caption; `pick(options, probs)` chooses every wording (the canonical one is first)."""
    groups = scene.objects

    def np_(i: int) -> str:
        g = groups[i]
        count = pick(COUNT_WORDS[g.count], (0.8, 0.2)[: len(COUNT_WORDS[g.count])])
        size = pick(SIZE_WORDS[g.size], (0.8, 0.2))
        shape = g.shape if g.count == 1 else PLURALS[g.shape]
        return f"{count} {size} {g.color} {shape}"

    rel = caption_relation(scene)
    first = rel[0] if rel else 0
    single = len(groups) == 1
    prefix = pick(("", "there", "image"), (0.7, 0.2, 0.1) if single else (0.6, 0.25, 0.15))
    items: list[str] = []
    if rel is None:
        items = [np_(i) for i in range(len(groups))]
        if single and prefix != "image" and pick((False, True), (0.75, 0.25)):
            items[0] += " in the picture"  # more wordings for the few that one group has
    else:
        a, pred, b = rel
        if pick((False, True), (0.75, 0.25)):  # the inverse: "b right of a"
            a, pred, b = b, _INVERSE[pred], a
        first = a
        copula = "" if prefix else pick(("", "be"), (0.8, 0.2))
        if copula:
            copula = "is " if groups[a].count == 1 else "are "
        rel_words = REL_WORDS[pred]
        core = f"{np_(a)} {copula}{pick(rel_words, (0.5, 0.3, 0.2)[: len(rel_words)])} {np_(b)}"
        rest = [np_(i) for i in range(len(groups)) if i not in rel[::2]]
        if rest and pick((False, True), (0.8, 0.2)):  # the other groups first
            first = [i for i in range(len(groups)) if i not in rel[::2]][0]
            items = [*rest, core]
        else:
            items = [core, *rest]
    body = items[0] if len(items) == 1 else " , ".join(items[:-1]) + " and " + items[-1]
    if prefix == "there":
        return ("there is " if groups[first].count == 1 else "there are ") + body
    return ("an image of " if prefix == "image" else "") + body


def canonical_caption(scene: SceneGraph) -> str:
    """The caption with every canonical wording: the most probable one for the scene."""
    return _write(scene, lambda options, probs: options[0])


def _paraphrase(scene: SceneGraph, rng: np.random.Generator, weights: np.ndarray) -> str:
    """The canonical caption with one or two wordings changed: the decisions to change are
    drawn in proportion to how often they are not canonical (`weights`)."""
    flips = set(rng.choice(len(weights), size=min(1 + int(rng.random() < 0.4), int((weights > 0).sum())),
                           replace=False, p=weights))  # fmt: skip
    index = iter(range(10**6))

    def pick(options, probs):
        if next(index) not in flips or len(options) == 1:
            return options[0]
        rest = np.asarray(probs[1:], np.float64)
        return options[1 + int(rng.choice(len(rest), p=rest / rest.sum()))]

    return _write(scene, pick)


def scene_captions(scene: SceneGraph, rng: np.random.Generator, n: int = 5) -> list[str]:
    """`n` reference captions: the canonical one first, then distinct paraphrases that each
    change one or two of its wordings (repeats only when there are fewer than `n` wordings).
    Every decision is canonical in most references, so the canonical caption is the most
    probable one word by word, and a decoder trained on the references can learn it."""
    if not scene.objects:
        raise ValueError("cannot caption a scene without objects")
    for i, g in enumerate(scene.objects):
        if (
            g.count not in COUNT_WORDS
            or g.size not in SIZES
            or g.color not in COLORS
            or g.shape not in SHAPES
        ):
            raise ValueError(f"cannot caption group {i} ({g.count}, {g.size}, {g.color}, {g.shape}): "
                             f"counts are 1-3, sizes {SIZES}, colours {COLORS}, shapes {SHAPES}")  # fmt: skip
    deviation: list[float] = []

    def record(options, probs):
        deviation.append(1 - probs[0] / sum(probs) if len(options) > 1 else 0.0)
        return options[0]

    captions = [_write(scene, record)]
    weights = np.asarray(deviation) / sum(deviation)
    for _ in range(40 * n):
        if len(captions) == n:
            break
        caption = _paraphrase(scene, rng, weights)
        if caption not in captions:
            captions.append(caption)
    while len(captions) < n:
        captions.append(_paraphrase(scene, rng, weights))
    return captions


# ----------------------------------------------------------------------------- parsing

_COUNTS = {w: c for c, words in COUNT_WORDS.items() for w in words}
_SIZES = {w: s for s, words in SIZE_WORDS.items() for w in words}
_SHAPES = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
_RELS = sorted(((tuple(w.split()), p) for p, ws in REL_WORDS.items() for w in ws),
               key=lambda t: -len(t[0]))  # fmt: skip


def _parse_np(tokens: list[str], i: int) -> tuple[ObjectGroup, int] | None:
    """count? size? colour? shape starting at i -> (group, next index), or None."""
    g, j = ObjectGroup(), i
    if j < len(tokens) and tokens[j] in _COUNTS:
        g.count, j = _COUNTS[tokens[j]], j + 1
    if j < len(tokens) and tokens[j] in _SIZES:
        g.size, j = _SIZES[tokens[j]], j + 1
    if j < len(tokens) and tokens[j] in COLORS:
        g.color, j = tokens[j], j + 1
    if j < len(tokens) and tokens[j] in _SHAPES:
        g.shape = _SHAPES[tokens[j]]
        if g.count is None and tokens[j] == g.shape:
            g.count = 1  # a bare singular noun ("red circle") is one object
        return g, j + 1
    return None


def _parse_rel(tokens: list[str], i: int) -> tuple[str, int] | None:
    for words, pred in _RELS:
        if tuple(tokens[i : i + len(words)]) == words:
            return pred, i + len(words)
    return None


def parse_caption(text: str) -> SceneGraph | None:
    """Caption -> the (partial) scene graph it states, or None when it names no object.

    Noun phrases become groups (count/size/colour may be None when left out); a relation
    phrase between two noun phrases (optionally after "is"/"are") becomes a normalised
    relation. Words outside the grammar are skipped, so this never raises on text.
    """
    if not isinstance(text, str):
        return None
    tokens = tokenize(text)
    scene, i = SceneGraph(), 0
    pending: tuple[int, str, int] | None = None  # (subject, predicate, index the object starts)
    last_np_end = -1
    while i < len(tokens):
        parsed = _parse_np(tokens, i)
        if parsed is not None:
            scene.objects.append(parsed[0])
            if pending is not None and pending[2] == i:
                norm, swap = _NORMAL[pending[1]]
                a, b = pending[0], len(scene.objects) - 1
                scene.relations.append(Relation(*((b, norm, a) if swap else (a, norm, b))))
            pending, i = None, parsed[1]
            last_np_end = i
            continue
        if i == last_np_end:
            rel = _parse_rel(tokens, i + 1 if tokens[i] in ("is", "are") else i)
            if rel is not None:
                pending, i = (len(scene.objects) - 1, rel[0], rel[1]), rel[1]
                continue
        pending, i = None, i + 1
    return scene if scene.objects else None


# ----------------------------------------------------------------------------- scoring

KINDS = ("object", "color", "size", "count", "relation")
_ATTR = {"object": "shape", "color": "color", "size": "size", "count": "count"}


def _match(pred: list[ObjectGroup], true: list[ObjectGroup]) -> dict[int, int]:
    """One-to-one predicted -> true groups maximising agreeing attributes (exact, DP over
    subsets of true groups); pairs that agree on nothing stay unmatched."""
    agree = [[sum(getattr(p, a) is not None and getattr(p, a) == getattr(t, a)
                  for a in _ATTR.values()) for t in true] for p in pred]  # fmt: skip
    memo: dict[tuple[int, int], tuple[int, dict[int, int]]] = {}

    def best(k: int, used: int) -> tuple[int, dict[int, int]]:
        if k == len(pred):
            return 0, {}
        if (k, used) not in memo:
            options = [best(k + 1, used)]
            for t in range(len(true)):
                if not used >> t & 1 and agree[k][t] > 0:
                    score, m = best(k + 1, used | 1 << t)
                    options.append((score + agree[k][t], {**m, k: t}))
            memo[k, used] = max(options, key=lambda o: o[0])
        return memo[k, used]

    return best(0, 0)[1]


def _prf(tp_p: int, n_pred: int, tp_r: int, n_gold: int) -> tuple[float, float, float]:
    p = tp_p / n_pred if n_pred else float(n_gold == 0)
    r = tp_r / n_gold if n_gold else float(n_pred == 0)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def scene_score(scenes: list[str | SceneGraph], captions: list[str]) -> dict[str, float]:
    """Precision / recall / F1 of the facts that captions state about their true scenes.

    Each caption is parsed (`parse_caption`) and its noun phrases are matched one-to-one to the
    true groups, maximising the number of agreeing attributes. Facts, per kind:
      - object:   a group exists with its shape (gold: one per true group; stated: one per
                  parsed noun phrase; true when the matched group has that shape);
      - color / size / count: a group's colour / size / count (stated only when the phrase
                  gives it; true when the matched group has that value);
      - relation: a stated relation between two phrases is true when both are matched and the
                  relation holds between their groups in the true scene. Captions state at most
                  one relation, so gold is one relation fact per scene that has any relation,
                  recalled when the caption states at least one true relation.
    An unparsable caption states nothing. Counts are summed over all captions (micro average):
    a caption that leaves a group out loses recall, a wrong colour loses colour precision (and
    recall). Returns `scene_precision`, `scene_recall`, `scene_f1` over all facts,
    `<kind>_precision` / `_recall` / `_f1` for each kind, and `parse_rate`.
    """
    if len(scenes) != len(captions):
        raise ValueError(f"scene_score got {len(scenes)} scenes but {len(captions)} captions")
    tally = {k: [0, 0, 0, 0] for k in KINDS}  # tp for precision, stated, tp for recall, gold
    parsed_count = 0
    for scene, caption in zip(scenes, captions, strict=True):
        true = scene if isinstance(scene, SceneGraph) else SceneGraph.from_json(scene)
        parsed = parse_caption(caption) or SceneGraph()
        parsed_count += bool(parsed.objects)
        m = _match(parsed.objects, true.objects)
        for kind, attr in _ATTR.items():
            t = tally[kind]
            t[3] += sum(getattr(g, attr) is not None for g in true.objects)
            for k, g in enumerate(parsed.objects):
                value = getattr(g, attr)
                if value is not None:
                    t[1] += 1
                    hit = k in m and getattr(true.objects[m[k]], attr) == value
                    t[0] += hit
                    t[2] += hit
        hits = sum(r.subject in m and r.object in m
                   and true.holds(m[r.subject], r.predicate, m[r.object])
                   for r in parsed.relations)  # fmt: skip
        gold = int(bool(true.relations))
        t = tally["relation"]
        t[0], t[1], t[2], t[3] = (
            t[0] + hits,
            t[1] + len(parsed.relations),
            t[2] + min(hits, gold),
            t[3] + gold,
        )
    out: dict[str, float] = {}
    for kind, (tp_p, n_pred, tp_r, n_gold) in tally.items():
        out[f"{kind}_precision"], out[f"{kind}_recall"], out[f"{kind}_f1"] = _prf(
            tp_p, n_pred, tp_r, n_gold
        )
    total = [sum(t[i] for t in tally.values()) for i in range(4)]
    out["scene_precision"], out["scene_recall"], out["scene_f1"] = _prf(*total)
    out["parse_rate"] = parsed_count / len(captions) if captions else 0.0
    return out
