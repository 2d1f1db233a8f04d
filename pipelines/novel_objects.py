"""Novel-object scores: does a caption name an object the decoder never saw in training?

    captioner train caption --dataset "flickr8k:DIR?holdout=bike,bicycle,ball,hat,car,truck,jeep,camera" \\
        --epochs 4 ... --out runs/heldout          # the held-out decoder (README for the flags)
    python -m captioner.pipelines.novel_objects --model runs/heldout --flickr8k DIR --split test
    python -m captioner.pipelines.novel_objects --model default --flickr8k DIR --split test

Captions every image of the split once (beam 3, the model's own decoding or else the bundled
photo model's trigram blocking, object naming off)
with the top ImageNet classes beside it, then scores the captions as they are, with
`name_objects` (`GenerationConfig.name_objects`), and with naming without the hypernym rule:
per held-out object the F1 of mentioning it (an image is positive when any reference names
it), their mean, BLEU-4 and CIDEr-D. A last row scores the tagger alone (an object is said
when the classes it names sum to >= TAGGER_MIN_SCORE): the ceiling of naming from these tags.
A model without a tagger gets the pretrained ImageNet head of its encoder.

With `--detector` (a caption-word detector), more rows: the typed slots filled with its
words, the captions decoded with `--slot-boost` (GenerationConfig.slot_boost) and with
constrained beam search at `--slot-min-score` (GenerationConfig.slot_min_score), and the
detector alone (a word is said from DETECTOR_MIN_SCORE).
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

log = logging.getLogger(__name__)

# held-out object -> the caption words that name it
OBJECTS = {"bicycle": ["bike", "bicycle"], "ball": ["ball"], "hat": ["hat"],
           "car": ["car", "truck", "jeep"], "camera": ["camera"]}  # fmt: skip
TOP_K = 10
# "the tagger alone" says an object when the ImageNet classes named by its words (tag_name:
# "mountain bike" -> bicycle, "tennis ball" -> ball) sum to this much (chosen on dev among
# 0.02 / 0.05 / 0.1 / 0.2 / 0.3): how far any method that names objects from these tags can go
TAGGER_MIN_SCORE = 0.05
# the caption-word detector alone says a word from this probability (chosen on dev among
# 0.1 / 0.2 / 0.3 / 0.4 / 0.5)
DETECTOR_MIN_SCORE = 0.2
# GenerationConfig.slot_boost of the held-out typed-slot decoder with the detector, chosen on
# dev among 0 / 2 / 3 / 4: the largest that kept BLEU-4 within 0.01 of the unboosted captions
SLOT_BOOST = 2.0
# GenerationConfig.slot_min_score of the same pair (constrained beam search), chosen on dev
# among 0.2 / 0.25 / 0.3 / 0.4 / 0.5 with the same rule
SLOT_MIN_SCORE = 0.2


def mention_f1(references: list[list[str]], captions: list[str], words: list[str]) -> float:
    """F1 of `captions` mentioning `words` against images whose references mention them."""
    from captioner.tagwords import mentions

    return said_f1(references, [mentions(c, words) for c in captions], words)


def said_f1(references: list[list[str]], said: list[bool], words: list[str]) -> float:
    """F1 of saying `words` (one flag per image) against the images whose references mention
    them: the arithmetic every mention F1 here shares."""
    from captioner.tagwords import mentions

    truth = [any(mentions(r, words) for r in refs) for refs in references]
    hits = sum(t and s for t, s in zip(truth, said))
    return 2 * hits / (sum(truth) + sum(said)) if sum(truth) + sum(said) else 0.0


def tagger_alone_f1(references: list[list[str]], tags, words: list[str]) -> float:
    """Mention F1 of the tagger without a caption: `words` are said of an image when the
    classes they name sum to >= TAGGER_MIN_SCORE among its top tags."""
    from captioner.tagwords import mentions, tag_name

    said = [
        sum(p for c, p in image_tags if mentions(tag_name(c), words)) >= TAGGER_MIN_SCORE
        for image_tags in tags
    ]
    return said_f1(references, said, words)


def caption_with_tags(
    model_name: str,
    split,
    batch_size: int = 32,
    detector: str | None = None,
    slot_boost: float = 0.0,
    slot_min_score: float = 0.0,
):
    """Per image: its caption with the ImageNet tagger's objects in its slots (as the API
    fills them; naming off), the top-K (class, probability) of that tagger, and with
    `detector` (a `--caption-objects` recognizer) the caption with the detector's words in its
    slots, the detector's (word, probability) for every word and, with `slot_boost`, the
    caption decoded with that `GenerationConfig.slot_boost` and filled by the detector, and
    with `slot_min_score` the caption of constrained beam search with that
    `GenerationConfig.slot_min_score` (no boost), filled by the detector."""
    from captioner.api import Captioner
    from captioner.decoding import generate
    from captioner.object_slots import name_objects_in
    from captioner.pipelines import photos
    from captioner.recognition import RecognitionHead

    cap = Captioner.from_pretrained(model_name)
    if not cap.generation_defaults:  # a recipe's output: decode like the bundled photo model
        cap.generation_defaults = dict(photos.GENERATION)
    imagenet = cap.recognizer
    if imagenet is None or imagenet.config.caption_objects:
        imagenet = RecognitionHead.from_imagenet(cap.encoder).to(cap.device).eval()
    words = Captioner.from_pretrained(detector).recognizer if detector else None
    if words is not None and not words.config.caption_objects:
        raise ValueError(f"--detector {detector}: not a caption-word detector (train one with "
                         "`captioner train recognizer --caption-objects`)")  # fmt: skip
    cap.use_backend("auto")
    config = cap.generation_config(None, name_objects=False)
    out = {"captions": [], "tags": [], "detector captions": [], "detected": [],
           "boosted captions": [], "constrained captions": []}  # fmt: skip
    part_b = {
        "boosted captions": cap.generation_config(config, slot_boost=slot_boost),
        "constrained captions": cap.generation_config(config, slot_min_score=slot_min_score),
    }
    part_b = {key: cfg for key, cfg in part_b.items() if cfg.slot_boost or cfg.slot_min_score}
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            grid, pooled = cap.encoder(cap.preprocess(split[start : start + batch_size]["image"]))
            step, state = cap.decoder.start(grid, pooled)
            raw = [
                cap.vocab.decode(t) for t in generate(step, state, cap.special_ids, config).tokens
            ]
            cap.recognizer = imagenet
            out["captions"] += name_objects_in(raw, pooled, imagenet, swap=False)
            values, indices = imagenet.probabilities(pooled).topk(TOP_K, dim=-1)
            out["tags"] += [list(zip(i.tolist(), v.tolist())) for i, v in zip(indices, values)]
            if words is not None:
                cap.recognizer = words
                out["detector captions"] += name_objects_in(raw, pooled, words, swap=False)
                out["detected"] += words.predict(pooled, top_k=None)
                for key, cfg in part_b.items():  # decode again, guided by the detector
                    found = cap.describe_features(grid, pooled, generation=cfg, tags=0,
                                                  sentiment=False)  # fmt: skip
                    out[key] += [d.caption for d in found]
    return out


def detector_alone_f1(references: list[list[str]], detected, words: list[str]) -> float:
    """Mention F1 of the caption-word detector without a caption: `words` are said of an
    image when one of them reaches DETECTOR_MIN_SCORE."""
    from captioner.tagwords import mentions

    said = [any(mentions(w, words) and p >= DETECTOR_MIN_SCORE for w, p in found)
            for found in detected]  # fmt: skip
    return said_f1(references, said, words)


def score_rows(references, decoded: dict) -> dict[str, dict[str, float]]:
    from captioner.evaluation import caption_scores
    from captioner.tagwords import name_objects

    captions, tags = decoded["captions"], decoded["tags"]

    def named(same_kind: bool) -> list[str]:
        return [" ".join(name_objects(c.split(" "), t, min_score=0.2, same_kind=same_kind))
                for c, t in zip(captions, tags)]  # fmt: skip

    variants = [("as decoded", captions)]
    if decoded.get("detector captions"):
        variants.append(("slots filled by the caption-word detector", decoded["detector captions"]))
    if decoded.get("boosted captions"):
        variants.append((f"+ slot boost {decoded['slot boost']:g}", decoded["boosted captions"]))
    if decoded.get("constrained captions"):
        variants.append((f"+ constrained beam search, slot_min_score {decoded['slot min score']:g}",
                         decoded["constrained captions"]))  # fmt: skip
    variants += [("name_objects", named(True)),
                 ("naming without the hypernym rule", named(False))]  # fmt: skip
    rows = {}
    for label, caps in variants:
        row = {name: mention_f1(references, caps, words) for name, words in OBJECTS.items()}
        row["mean F1"] = sum(row.values()) / len(OBJECTS)
        scores = caption_scores(references, caps, meteor=False)
        row.update({"BLEU-4": scores["BLEU-4"], "CIDEr-D": scores["CIDEr-D"]})
        rows[label] = row
    alone = {name: tagger_alone_f1(references, tags, words) for name, words in OBJECTS.items()}
    rows["the tagger alone (no caption)"] = {**alone, "mean F1": sum(alone.values()) / len(alone)}
    if decoded.get("detected"):
        alone = {name: detector_alone_f1(references, decoded["detected"], words)
                 for name, words in OBJECTS.items()}  # fmt: skip
        rows["the caption-word detector alone (no caption)"] = {
            **alone,
            "mean F1": sum(alone.values()) / len(alone),
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    from captioner.data import load_caption_dataset

    p = argparse.ArgumentParser(prog="python -m captioner.pipelines.novel_objects",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--model", default="default", help="model name or directory (default: default)")
    p.add_argument("--flickr8k", required=True, help="Flickr8k folder")
    p.add_argument("--split", default="validation", help="validation | test (default: validation)")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--detector", default=None,
                   help="a caption-word detector (`captioner train recognizer --caption-objects"
                        "`) to fill the typed slots with, scored beside the ImageNet tagger")  # fmt: skip
    p.add_argument("--slot-boost", type=float, default=None,
                   help="with --detector: also score captions decoded with this "
                        f"GenerationConfig.slot_boost; 0 = skip (default: {SLOT_BOOST:g})")  # fmt: skip
    p.add_argument("--slot-min-score", type=float, default=None,
                   help="with --detector: also score captions of constrained beam search with "
                        "this GenerationConfig.slot_min_score; 0 = skip (default: "
                        f"{SLOT_MIN_SCORE:g})")  # fmt: skip
    p.add_argument("--examples", type=int, default=0, metavar="N",
                   help="also print the captions of the first N images whose references name "
                        "a held-out object")  # fmt: skip
    args = p.parse_args(argv)
    if args.slot_boost and not args.detector:
        p.error("--slot-boost needs --detector")
    if args.slot_min_score and not args.detector:
        p.error("--slot-min-score needs --detector")
    if args.slot_min_score is not None and not 0 <= args.slot_min_score <= 1:
        p.error(f"--slot-min-score must be between 0 and 1, got {args.slot_min_score:g}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    split = load_caption_dataset(f"flickr8k:{args.flickr8k}")[args.split]
    if args.limit:
        split = split.select(range(min(args.limit, len(split))))
    on = bool(args.detector)  # the defaults need a detector
    boost = SLOT_BOOST * on if args.slot_boost is None else args.slot_boost
    min_score = SLOT_MIN_SCORE * on if args.slot_min_score is None else args.slot_min_score
    decoded = caption_with_tags(args.model, split, detector=args.detector, slot_boost=boost,
                                slot_min_score=min_score)  # fmt: skip
    decoded["slot boost"], decoded["slot min score"] = boost, min_score
    rows = score_rows(split["captions"], decoded)
    keys = [*OBJECTS, "mean F1", "BLEU-4", "CIDEr-D"]
    print(f"| {args.model}, Flickr8k {args.split} ({len(split)}) | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for label, row in rows.items():
        print(f"| {label} | " + " | ".join(f"{row[k]:.3f}" if k in row else "-" for k in keys)
              + " |")  # fmt: skip
    for line in example_lines(split, decoded, args.examples):
        print(line)
    return 0


def example_lines(split, decoded: dict, n: int) -> list[str]:
    """Markdown rows: the first `n` images whose references name a held-out object, with
    each caption variant."""
    from captioner.tagwords import mentions

    names = [("as decoded", "captions"), ("detector", "detector captions"),
             (f"slot boost {decoded.get('slot boost', 0):g}", "boosted captions"),
             (f"slot_min_score {decoded.get('slot min score', 0):g}", "constrained captions")]  # fmt: skip
    names = [(label, key) for label, key in names if decoded.get(key)]
    lines = []
    for i, refs in enumerate(split["captions"]):
        if len(lines) == n:
            break
        held = [name for name, words in OBJECTS.items() if any(mentions(r, words) for r in refs)]
        if held:
            lines.append(f"| {split[i]['image_id']} ({', '.join(held)}) | "
                         + " | ".join(decoded[key][i] for _, key in names) + " |")  # fmt: skip
    if lines:
        lines.insert(0, "| image (held-out objects its references name) | "
                     + " | ".join(label for label, _ in names) + " |")  # fmt: skip
        lines.insert(1, "|---" * (len(names) + 1) + "|")
    return lines


if __name__ == "__main__":
    sys.exit(main())
