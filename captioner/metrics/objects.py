"""Main-object naming: does a caption name the thing the photo is about?

A photo's *main objects* are the COCO object kinds (the 80 categories of Lin et al. 2014, each
with the words captions use for it) that at least `min_refs` of its reference captions
mention. A caption *names the main object* when it mentions one of them. `main_object_named`
gives the share of photos with a main object whose caption names one, the number
`captioner eval` reports beside BLEU and CIDEr-D for datasets with 5 references.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from captioner.text import tokenize

# COCO's 80 object kinds -> the words captions use for them (singular; plurals are matched).
COCO_OBJECTS: dict[str, tuple[str, ...]] = {
    "person": ("person", "man", "woman", "people", "boy", "girl", "child", "kid", "men",
               "women", "children", "player", "lady", "guy", "skier", "surfer", "skateboarder",
               "baby", "rider", "crowd", "snowboarder", "adult", "teenager", "toddler"),
    "bicycle": ("bicycle", "bike", "cyclist"),
    "car": ("car", "automobile", "sedan", "taxi", "cab", "suv"),
    "motorcycle": ("motorcycle", "motorbike", "scooter", "moped", "motorcyclist"),
    "airplane": ("airplane", "plane", "jet", "aircraft", "airliner", "jetliner"),
    "bus": ("bus", "trolleybus"),
    "train": ("train", "locomotive", "tram", "subway"),
    "truck": ("truck", "pickup", "lorry"),
    "boat": ("boat", "ship", "sailboat", "canoe", "kayak", "yacht", "ferry"),
    "traffic light": ("traffic light", "stoplight", "traffic signal"),
    "fire hydrant": ("hydrant", "fire hydrant"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter", "meter"),
    "bench": ("bench",),
    "bird": ("bird", "seagull", "gull", "duck", "pigeon", "parrot", "swan", "goose", "owl",
             "eagle", "penguin"),
    "cat": ("cat", "kitten", "kitty"),
    "dog": ("dog", "puppy", "pup"),
    "horse": ("horse", "pony", "foal"),
    "sheep": ("sheep", "lamb", "ram"),
    "cow": ("cow", "cattle", "bull", "calf", "ox"),
    "elephant": ("elephant",),
    "bear": ("bear", "teddy", "grizzly"),
    "zebra": ("zebra",),
    "giraffe": ("giraffe",),
    "backpack": ("backpack",),
    "umbrella": ("umbrella", "parasol"),
    "handbag": ("handbag", "purse", "bag"),
    "tie": ("tie", "necktie"),
    "suitcase": ("suitcase", "luggage", "baggage"),
    "frisbee": ("frisbee",),
    "skis": ("ski", "skis"),
    "snowboard": ("snowboard",),
    "sports ball": ("ball", "baseball", "football", "soccer ball", "tennis ball"),
    "kite": ("kite",),
    "baseball bat": ("bat", "baseball bat"),
    "baseball glove": ("glove", "mitt"),
    "skateboard": ("skateboard",),
    "surfboard": ("surfboard", "surf board"),
    "tennis racket": ("racket", "racquet"),
    "bottle": ("bottle",),
    "wine glass": ("wine glass", "glass"),
    "cup": ("cup", "mug"),
    "fork": ("fork",),
    "knife": ("knife",),
    "spoon": ("spoon",),
    "bowl": ("bowl",),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "hamburger", "sub"),
    "orange": ("orange",),
    "broccoli": ("broccoli",),
    "carrot": ("carrot",),
    "hot dog": ("hot dog", "hotdog"),
    "pizza": ("pizza",),
    "donut": ("donut", "doughnut"),
    "cake": ("cake", "cupcake"),
    "chair": ("chair",),
    "couch": ("couch", "sofa"),
    "potted plant": ("plant", "potted plant", "houseplant"),
    "bed": ("bed",),
    "dining table": ("table", "dining table", "desk"),
    "toilet": ("toilet",),
    "tv": ("tv", "television"),
    "laptop": ("laptop", "computer", "notebook"),
    "mouse": ("mouse",),
    "remote": ("remote", "controller"),
    "keyboard": ("keyboard",),
    "cell phone": ("phone", "cellphone", "cell phone", "smartphone"),
    "microwave": ("microwave",),
    "oven": ("oven", "stove"),
    "toaster": ("toaster",),
    "sink": ("sink",),
    "refrigerator": ("refrigerator", "fridge"),
    "book": ("book",),
    "clock": ("clock",),
    "vase": ("vase",),
    "scissors": ("scissors",),
    "teddy bear": ("teddy", "teddy bear"),
    "hair drier": ("hair drier", "hair dryer", "blow dryer"),
    "toothbrush": ("toothbrush",),
}  # fmt: skip


@functools.cache
def _phrases() -> dict[tuple[str, ...], frozenset[str]]:
    """token tuple (singular) -> the object kinds it names."""
    out: dict[tuple[str, ...], set[str]] = {}
    for kind, words in COCO_OBJECTS.items():
        for w in words:
            out.setdefault(tuple(w.split()), set()).add(kind)
    return {k: frozenset(v) for k, v in out.items()}


def _singular(token: str) -> str:
    for cut, add in (("ies", "y"), ("es", ""), ("s", "")):
        if token.endswith(cut) and len(token) > len(cut) + 2:
            return token[: -len(cut)] + add
    return token


def objects_named(caption: str) -> set[str]:
    """The COCO object kinds `caption` mentions (plurals count: "two dogs" names dog)."""
    tokens = tokenize(caption)
    forms = [{t, _singular(t)} for t in tokens]
    found: set[str] = set()
    for phrase, kinds in _phrases().items():
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if all(phrase[j] in forms[i + j] for j in range(n)):
                found |= kinds
                break
    return found


def main_objects(references: Sequence[str], *, min_refs: int = 3) -> set[str]:
    """The object kinds at least `min_refs` of `references` mention."""
    counts: dict[str, int] = {}
    for ref in references:
        for kind in objects_named(ref):
            counts[kind] = counts.get(kind, 0) + 1
    return {k for k, n in counts.items() if n >= min_refs}


def main_object_named(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str], *, min_refs: int = 3
) -> dict[str, float]:
    """Share of photos with a main object (besides "person") whose caption names one, and
    how many photos have one. People are left out: nearly every caption says "a man" and
    that is not what the measure is for (the objects a photo is about beside its people)."""
    have = named = 0
    for refs, hyp in zip(references, hypotheses):
        wanted = main_objects(refs, min_refs=min_refs) - {"person"}
        if not wanted:
            continue
        have += 1
        named += bool(wanted & objects_named(hyp))
    return {"main_object_named": named / have if have else 0.0, "main_object_photos": have}
