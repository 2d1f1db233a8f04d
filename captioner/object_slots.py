"""A captioner's object slots at decoding time (the novel-object helpers of `Captioner`).

A decoder trained with object slots writes "xobj" (or a typed slot: "xanimal", "xvehicle",
...) where an object word goes; the recognizer then says which word. Before the search, the
caption-word detector's words become a bias toward the slots of their kinds
(`GenerationConfig.slot_boost`) or constrained beam search's required slots
(`GenerationConfig.slot_min_score`); after it, `name_objects_in` fills the slots in and,
when asked, swaps unseen object words. The word tables and rules are in `captioner.tagwords`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captioner.tagwords import SLOT, TYPED_SLOTS
from captioner.text import Vocabulary

IMAGENET_CLASSES = 1000  # the tagger whose classes captioner.tagwords knows
NAMING_TOP_K = 10  # tagger classes object naming looks at

Detected = list[list[tuple[str, float]]]


def has_slots(vocab: Vocabulary) -> bool:
    """Whether a decoder with this vocabulary writes object slots."""
    return any(s in vocab for s in (SLOT, *TYPED_SLOTS.values()))


def detected_words(recognizer: Any, pooled: Tensor) -> Detected | None:
    """Per image, every word of the caption-word detector with its probability, most
    probable first; None when the recognizer is not such a detector."""
    if recognizer is None or not recognizer.config.caption_objects:
        return None
    return recognizer.predict(pooled, top_k=None)


def typed_slot_ids(vocab: Vocabulary) -> dict[str, int]:
    """{kind: token id} of the typed slots in the vocabulary ({} for a model without)."""
    return {kind: vocab.stoi[slot] for kind, slot in TYPED_SLOTS.items() if slot in vocab.stoi}


def slot_bias(
    vocab: Vocabulary, detected: Detected | None, boost: float, device: torch.device
) -> Tensor | None:
    """`GenerationConfig.slot_boost` as a (B, V) log-probability bonus: each typed slot
    gets boost x the caption-word detector's best probability for a word of its kind
    (`detected`: `detected_words`). None when off, or without typed slots or a detector."""
    from captioner.tagwords import object_kind

    slot_ids = typed_slot_ids(vocab) if boost and detected is not None else {}
    if not slot_ids:
        return None
    bias = torch.zeros(len(detected), len(vocab))
    for row, found in enumerate(detected):
        best: dict[int, float] = {}
        for word, p in found:  # most probable first: the first word of a kind is its best
            slot_id = slot_ids.get(object_kind(word))
            if slot_id is not None:
                best.setdefault(slot_id, p)
        for slot_id, p in best.items():
            bias[row, slot_id] = boost * p
    return bias.to(device)


def slot_constraints(
    vocab: Vocabulary, detected: Detected | None, min_score: float
) -> list[list[int]] | None:
    """`GenerationConfig.slot_min_score` as constrained beam search's constraints: per
    image, the slot token of each caption-word detector word reaching min_score (most
    probable first, synonyms once, at most MAX_SLOT_CONSTRAINTS). None when off, or
    without typed slots or a detector."""
    from captioner.decoding import MAX_SLOT_CONSTRAINTS
    from captioner.tagwords import object_kind, rank_detected, same_thing

    slot_ids = typed_slot_ids(vocab) if min_score and detected is not None else {}
    if not slot_ids:
        return None
    out = []
    for found in detected:
        seen: list[str] = []
        confident = [(w, p) for w, p in found if p >= min_score]
        for word in rank_detected(confident):  # most probable first, the specific first
            if object_kind(word) in slot_ids and not any(same_thing(word, w) for w in seen):
                seen.append(word)
        out.append([slot_ids[object_kind(w)] for w in seen[:MAX_SLOT_CONSTRAINTS]])
    return out


def name_objects_in(
    captions: list[str],
    pooled: Tensor,
    recognizer: Any,
    *,
    swap: bool,
    detected: Detected | None = None,
) -> list[str]:
    """Captions naming the ImageNet tagger's objects: the object slots of a decoder
    trained with `--object-slots` filled, and with `swap` (`GenerationConfig.name_objects`)
    unseen object words swapped. A recognizer trained on caption words (`captioner train
    recognizer --caption-objects`) fills typed slots with its words instead. Without
    either, slots say their kind's common word ("object" for untyped slots). Articles
    then agree with the words put in ("an apron", "blue jeans"). `detected`: the
    detector's words when the caller already has them (`detected_words`)."""
    from captioner.tagwords import agree_articles, fill_slots, fill_typed_slots, name_objects

    found = detected if detected is not None else detected_words(recognizer, pooled)
    if found is not None:  # a caption-word detector
        filled = [fill_typed_slots(fill_slots(c.split(" "), []), [], detected=d)
                  for c, d in zip(captions, found)]  # fmt: skip
    elif recognizer is None or len(recognizer.config.labels) != IMAGENET_CLASSES:
        filled = [fill_typed_slots(fill_slots(c.split(" "), []), []) for c in captions]
    else:
        values, indices = recognizer.probabilities(pooled).topk(NAMING_TOP_K, dim=-1)
        filled = []
        for caption, v, i in zip(captions, values, indices):
            tags = list(zip(i.tolist(), v.tolist()))
            words = fill_typed_slots(fill_slots(caption.split(" "), tags), tags)
            filled.append(name_objects(words, tags) if swap else words)
    return [" ".join(agree_articles(words)) for words in filled]
