"""Dataset spec strings: one way to name a corpus everywhere (API, CLI, training configs).

Grammar::

    SPEC    := PART ( "+" PART )*              several caption parts: concatenated per split
    PART    := KIND [ ":" ARG [ ":" ARG2 ] ] [ "?" OPTIONS ]
    OPTIONS := KEY "=" VALUE ( "&" KEY "=" VALUE )*

Caption kinds (`load_caption_dataset`):

    scenes                    the synthetic scene world (captioner.data.scenes), default size
    scenes:NUM_TRAIN          ... with NUM_TRAIN training scenes
    scenes:DIR                ... as saved by `python -m captioner.data build scenes --out DIR`
    tuxpaint[:DIR]            Tux Paint stamps (cache / system copy / DIR; fetched if absent)
    flickr8k:DIR              Flickr8k.token.txt + Flickr_8k.*Images.txt + image folder
    flickr30k:DIR             results_20130124.token + dataset_flickr30k.json + image folder
    coco:ANNOTATIONS.json:IMAGE_DIR      COCO captions JSON
    karpathy:JSON:IMAGE_ROOT  Karpathy's dataset_{coco,flickr8k,flickr30k}.json
    csv:FILE / jsonl:FILE     caption tables (image path + caption columns)
    imagefolder:DIR           image folder with metadata.jsonl / metadata.csv
    hf:OWNER/NAME or hf:PATH  a Hugging Face hub dataset or a local copy

Sentiment kinds (`load_sentiment_dataset`): `uci-sentiment[:DIR]`, `sentiment-csv:FILE`,
`sentiment-jsonl:FILE`, `hf:OWNER/NAME` (e.g. hf:stanfordnlp/sst2), `sst2:DIR` (GLUE SST-2
TSV files), `neutral:CAPTIONS` (captions labelled neutral: `flickr8k:DIR`, `scenes[:N]`, FILE,
joined with `+`; see `captioner.data.sentiment_sources`).

Translation kinds (`load_translation_dataset`): `multi30k:DIR` (Multi30k task 1; options
`src`, `tgt`: en | de | fr | cs, e.g. `multi30k:DIR?tgt=fr`; see `captioner.data.multi30k`).

Which kind a spec names (`dataset_kind`, the one rule `captioner eval`, `captioner data info`
and the recipes use): the sentiment kinds above are sentiment; `hf:` is sentiment for the
hub's sentiment corpora (`SENTIMENT_HUB_DATASETS`, e.g. hf:stanfordnlp/sst2) and for a local
copy whose features have `text` and `label` but no `image`, caption otherwise; the option
`?kind=caption|sentiment` overrides the guess for any spec.

`?holdout=WORD,WORD` (any caption spec, or `holdout=` as a keyword): the training split loses
every image one of whose captions names a word (plurals count), as novel-object captioning
holds objects out; validation and test keep them (`captioner.tagwords.drop_mentions`).

Options are keyword arguments of the loader (in a single spec, keyword arguments given to
the function win over those in the string; in a combined spec, a part's own `?options` win
and must be ones that part takes), e.g. `hf:nlphuji/flickr30k?columns=captions:caption&seed=1`,
`coco:ann.json:images?split=validation`, `csv:caps.csv?image_root=/data/img`. Values
`true`/`false`, integers, floats and comma-separated floats are converted. Options every
caption loader understands: `on_error` ("raise" | "skip"), `seed`; a combined spec passes
each part the options its loader accepts.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from captioner.data.common import DataError

CAPTION_KINDS = (
    "scenes",
    "tuxpaint",
    "flickr8k",
    "flickr30k",
    "coco",
    "karpathy",
    "csv",
    "jsonl",
    "imagefolder",
    "hf",
)
SENTIMENT_KINDS = ("uci-sentiment", "sentiment-csv", "sentiment-jsonl", "hf", "sst2", "neutral")
TRANSLATION_KINDS = ("multi30k",)
KINDS = ("caption", "sentiment")
# Sentiment corpora on the Hugging Face hub (`hf:NAME` is a caption corpus otherwise).
SENTIMENT_HUB_DATASETS = frozenset(
    name.lower()
    for name in (
        "stanfordnlp/sst2", "sst2", "SetFit/sst2", "gpt3mix/sst2", "stanfordnlp/imdb", "imdb",
        "cornell-movie-review-data/rotten_tomatoes", "rotten_tomatoes",
        "fancyzhx/yelp_polarity", "yelp_polarity", "fancyzhx/amazon_polarity",
        "amazon_polarity", "mteb/amazon_polarity", "stanfordnlp/sentiment140", "sentiment140",
    )
)  # fmt: skip
_TWO_ARGS = {"coco", "karpathy"}
_NEEDS_ARG = {
    "flickr8k",
    "flickr30k",
    "csv",
    "jsonl",
    "imagefolder",
    "hf",
    "sentiment-csv",
    "sentiment-jsonl",
    "sst2",
    "neutral",
    "multi30k",
}
FORMS = """spec forms:
  captions:  scenes | scenes:NUM_TRAIN | scenes:DIR | tuxpaint | tuxpaint:DIR | flickr8k:DIR |
             flickr30k:DIR | coco:ANNOTATIONS.json:IMAGE_DIR | karpathy:JSON:IMAGE_ROOT |
             csv:FILE | jsonl:FILE | imagefolder:DIR | hf:OWNER/NAME  (join parts with '+',
             e.g. scenes+tuxpaint)
  sentiment: uci-sentiment | uci-sentiment:DIR | sentiment-csv:FILE | sentiment-jsonl:FILE |
             hf:OWNER/NAME | sst2:DIR | neutral:flickr8k:DIR | neutral:scenes:N
  translation: multi30k:DIR (options src=en&tgt=de)
  options:   append ?key=value&key=value (e.g. hf:OWNER/NAME?columns=image:img,captions:sentences)"""


@dataclass
class Spec:
    kind: str
    args: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if re.fullmatch(r"[0-9.eE+-]+(,[0-9.eE+-]+)+", text):
        return tuple(float(x) for x in text.split(","))
    return text


def parse_spec(spec: str, *, kinds: tuple[str, ...] = CAPTION_KINDS) -> list[Spec]:
    """Parse a spec string into its parts; a bad spec is a ValueError listing the forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty dataset spec\n{FORMS}")
    pieces = spec.split("+")
    if len(pieces) > 1 and not all(p.split(":", 1)[0].split("?", 1)[0] in kinds for p in pieces):
        pieces = [spec]  # a '+' inside a path
    parts = []
    for piece in pieces:
        body, _, query = piece.strip().partition("?")
        kind, _, rest = body.partition(":")
        if kind not in kinds:
            raise DataError(f"unknown dataset kind {kind!r} in spec {spec!r}\n{FORMS}")
        if kind in _TWO_ARGS:
            first, sep, second = rest.rpartition(":")
            if not sep or not first or not second:
                raise DataError(
                    f"{kind} needs two arguments, {kind}:FILE:IMAGE_DIR (got {spec!r})\n{FORMS}"
                )
            args: tuple[str, ...] = (first, second)
        elif kind in _NEEDS_ARG and not rest:
            raise DataError(f"{kind} needs an argument, {kind}:PATH (got {spec!r})\n{FORMS}")
        else:
            args = (rest,) if rest else ()
        options = {}
        for item in filter(None, query.split("&")):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise DataError(f"bad option {item!r} in spec {spec!r}: use ?key=value&key=value")
            options[key.strip()] = _value(value.strip())
        if options.pop("kind", "caption") not in KINDS:  # read by dataset_kind, not loaders
            raise DataError(f"bad option kind in spec {spec!r}: use ?kind=caption|sentiment")
        parts.append(Spec(kind, args, options))
    if len(parts) > 1 and any(p.kind not in CAPTION_KINDS for p in parts):
        raise DataError(f"only caption specs can be combined with '+' (got {spec!r})")
    return parts


def dataset_kind(spec: str) -> str:
    """ "caption", "sentiment" or "translation": the kind of corpus `spec` names (see the
    module docstring).

    Args:
        spec: a dataset spec string.
    """
    body, _, query = spec.strip().partition("?")
    explicit = re.search(r"(?:^|&)kind=(\w+)", query)
    if explicit:
        if explicit.group(1) not in KINDS:
            raise DataError(f"bad option kind in spec {spec!r}: use ?kind=caption|sentiment")
        return explicit.group(1)
    kind, _, rest = body.partition(":")
    kind = kind.strip().lower()
    if kind in TRANSLATION_KINDS:
        return "translation"
    if kind in SENTIMENT_KINDS and kind not in CAPTION_KINDS:
        return "sentiment"
    if kind == "hf" and (rest.strip().lower() in SENTIMENT_HUB_DATASETS or _text_only(rest)):
        return "sentiment"
    return "caption"


def _text_only(path: str) -> bool:
    """Whether a local dataset folder (save_to_disk) has `text` and `label`, no `image`."""
    import json

    for info in (*Path(path).glob("dataset_info.json"), *Path(path).glob("*/dataset_info.json")):
        try:
            features = set(json.loads(info.read_text(encoding="utf-8")).get("features") or {})
        except (OSError, ValueError):
            continue
        return {"text", "label"} <= features and "image" not in features
    return False


def _scenes(arg: str | None = None, **options):
    if arg and not arg.isdigit():
        from datasets import load_from_disk

        if not Path(arg).is_dir():
            raise DataError(
                f"scenes:{arg}: not a number of training scenes nor a saved dataset folder"
            )
        return load_from_disk(arg)
    from captioner.data.scene_cache import cached_scene_dataset

    if arg:
        from captioner.data.scenes import MAX_SCENES

        if not 1 <= int(arg) <= MAX_SCENES:
            raise DataError(f"scenes:{arg}: the number of training scenes must be from 1 to "
                            f"{MAX_SCENES:,}")  # fmt: skip
        options["num_train"] = int(arg)
    # rows are pure functions of (seed, split, index): worker processes give the same bytes
    options.setdefault("num_proc", _cpus())
    return cached_scene_dataset(**options)


def _cpus() -> int:
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # macOS, Windows
        return max(1, min(8, os.cpu_count() or 1))


def _caption_loader(kind: str):
    """(loader, fixed keyword arguments, the function whose signature lists its options)."""
    from captioner.data import coco_captions, hf_datasets, sources, tables, tuxpaint

    if kind == "scenes":
        try:
            from captioner.data.scene_cache import cached_scene_dataset
        except ImportError:
            cached_scene_dataset = None
        return _scenes, {}, cached_scene_dataset
    loader, fixed = {
        "tuxpaint": (tuxpaint.load_tuxpaint, {}),
        "flickr8k": (sources.load_flickr, {}),
        "flickr30k": (sources.load_flickr, {"variant": "flickr30k"}),
        "coco": (coco_captions.load_coco, {}),
        "karpathy": (coco_captions.load_karpathy, {}),
        "csv": (tables.load_table, {"fmt": "csv"}),
        "jsonl": (tables.load_table, {"fmt": "jsonl"}),
        "imagefolder": (tables.load_imagefolder, {}),
        "hf": (hf_datasets.load_hf_captions, {}),
    }[kind]
    return loader, fixed, loader


# Options any caption loader may be given; a loader without them (the generated scene world)
# ignores them rather than failing, so a combined spec can pass them to every part.
_GLOBAL = {"on_error", "verify_images", "show_progress"}


def _accepted(entry) -> set[str] | None:
    """The keyword options a loader takes (None: any, it has **kwargs)."""
    _, fixed, signature_of = entry
    if signature_of is None:
        return set()
    params = inspect.signature(signature_of).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is p.KEYWORD_ONLY} - set(fixed)


def _call(kind: str, entry, args, options: dict, *, strict: bool):
    """Call a loader with the options its signature accepts; unknown options are an error
    (with `strict`) or left to the other parts of a combined spec."""
    loader, fixed, _ = entry
    accepted = _accepted(entry)
    if accepted is not None:
        unknown = set(options) - accepted - _GLOBAL
        if unknown and strict:
            raise DataError(
                f"{kind} does not take option(s) {sorted(unknown)}; it takes {sorted(accepted)}"
            )
        options = {k: v for k, v in options.items() if k in accepted}
    return loader(*args, **fixed, **options)


def load_caption_dataset(spec: str, **options):
    """A caption corpus named by `spec` -> DatasetDict(train/validation/test[, test_novel])
    with `image`, `captions`, `image_id` (see the module docstring for the grammar)."""
    parts = parse_spec(spec, kinds=CAPTION_KINDS)
    holdout = [options.pop("holdout", None), *(p.options.pop("holdout", None) for p in parts)]
    words = [w.strip() for h in holdout if h for w in str(h).split(",") if w.strip()]
    dsd = _load_caption_parts(spec, parts, options)
    if words:  # ?holdout=horse,bike: train without the images whose captions name them
        from captioner.tagwords import drop_mentions

        dsd = drop_mentions(dsd, words)
    return dsd


def _load_caption_parts(spec: str, parts: list[Spec], options: dict):
    if len(parts) == 1:
        p = parts[0]
        return _call(p.kind, _caption_loader(p.kind), p.args, {**p.options, **options}, strict=True)
    # A part's own ?options must suit that part; keyword options go to every part that takes them.
    takers = [_accepted(_caption_loader(p.kind)) for p in parts]
    nobody = set(options) - _GLOBAL - set().union(*(t for t in takers if t))
    if nobody and all(t is not None for t in takers):
        raise DataError(f"no part of {spec!r} takes option(s) {sorted(nobody)}")
    loaded = []
    for p, takes in zip(parts, takers, strict=True):
        unknown = set(p.options) - _GLOBAL - (takes if takes is not None else set(p.options))
        if unknown:
            raise DataError(
                f"{p.kind} does not take option(s) {sorted(unknown)}; it takes {sorted(takes)}"
            )
        shared = {k: v for k, v in options.items() if takes is None or k in takes or k in _GLOBAL}
        entry = _caption_loader(p.kind)
        loaded.append((p.kind, _call(p.kind, entry, p.args, {**shared, **p.options}, strict=False)))
    from captioner.data.combine import concatenate_caption_dicts

    return concatenate_caption_dicts(loaded, name=spec)


def load_sentiment_dataset(spec: str, **options):
    """A sentiment corpus named by `spec` -> DatasetDict(train/validation/test) with `text`,
    `label` (ClassLabel negative/positive[/neutral])."""
    from captioner.data import sentiment_corpora, sentiment_sources, sentiment_tables

    (p,) = parse_spec(spec, kinds=SENTIMENT_KINDS)
    loader, fixed = {
        "uci-sentiment": (sentiment_corpora.load_uci_sentiment, {}),
        "sentiment-csv": (sentiment_tables.load_sentiment_table, {"fmt": "csv"}),
        "sentiment-jsonl": (sentiment_tables.load_sentiment_table, {"fmt": "jsonl"}),
        "hf": (sentiment_tables.load_hf_sentiment, {}),
        "sst2": (sentiment_sources.load_sst2, {}),
        "neutral": (sentiment_sources.load_neutral_captions, {}),
    }[p.kind]
    return _call(p.kind, (loader, fixed, loader), p.args, {**p.options, **options}, strict=True)


def load_translation_dataset(spec: str, **options):
    """A parallel corpus named by `spec` -> DatasetDict(train/validation/test[, ...]) with
    `source`, `target`, `id` (options: `src`, `tgt`, `limit`)."""
    from captioner.data.multi30k import load_multi30k

    (p,) = parse_spec(spec, kinds=TRANSLATION_KINDS)
    entry = (load_multi30k, {}, load_multi30k)
    return _call(p.kind, entry, p.args, {**p.options, **options}, strict=True)
