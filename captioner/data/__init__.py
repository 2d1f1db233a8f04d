"""The data layer: every corpus -> one schema, named by a spec string.

Caption corpora -> `DatasetDict` (train / validation / test [/ test_novel]) with `image`
(datasets.Image), `captions` (list of str), `image_id` (str); sentiment corpora -> `text`,
`label` (ClassLabel negative / positive [/ neutral]). Start with:

    from captioner.data import load_caption_dataset, load_sentiment_dataset
    ds = load_caption_dataset("scenes+tuxpaint")
    sst = load_sentiment_dataset("uci-sentiment")

Modules: `spec` (the spec grammar), `sources` (Flickr8k/30k), `coco_captions` (COCO,
Karpathy), `tables` (CSV / JSONL / image folders), `hf_datasets` (Hugging Face datasets),
`tuxpaint`, `sentiment_corpora` (+ `sentiment_tables`, `sentiment_sources`: SST-2 TSV, neutral
captions), `combine` (`scenes+tuxpaint`), `fetch` (registries), `features` (encoder feature
cache), `caption_dataset` (torch Dataset, collate, buckets);
`common` holds `DataError` and the bad-record report; `scenes` is the synthetic world.
Names are imported lazily so `import captioner.data` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_caption_dataset": "spec",
    "load_sentiment_dataset": "spec",
    "load_translation_dataset": "spec",
    "parse_spec": "spec",
    "DataError": "common",
    "DataReport": "common",
    "Problem": "common",
    "fetch_tuxpaint": "tuxpaint",
    "load_tuxpaint": "tuxpaint",
    "fetch_uci_sentiment": "sentiment_corpora",
    "load_uci_sentiment": "sentiment_corpora",
    "FetchError": "fetch",
    "compute_features": "features",
    "build_vocabulary": "caption_dataset",
    "CaptionDataset": "caption_dataset",
    "collate_captions": "caption_dataset",
    "LengthBucketSampler": "caption_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"captioner.data.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'captioner.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
