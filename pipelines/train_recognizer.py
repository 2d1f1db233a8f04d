"""Train a recognition (tagging) head on your own labels, over a frozen CNN encoder.

    captioner train recognizer --dataset imagefolder:photos/ --out models/pets
    captioner train recognizer --dataset imagefolder:photos/ --multi-label --out models/tags
    captioner train recognizer --dataset jsonl:tags.jsonl --label-column tags --multi-label ...
    captioner train recognizer --dataset flickr8k:DIR --caption-objects --out models/words

Labels come from one of
- class subfolders, as torchvision's ImageFolder reads them: `DIR/<label>/*.jpg` (optionally
  under split folders `DIR/train/<label>/...`, `DIR/val/<label>/...`); one label per image;
- `hf:NAME` (hub id or local `save_to_disk` copy): the ClassLabel, list-of-ClassLabel or text
  column `--label-column` (default `label`);
- a column of any caption dataset spec (`imagefolder:DIR` with metadata.jsonl, `jsonl:FILE`,
  `csv:FILE`, ...): `--label-column tags` reads a string (one label) or a list of strings
  (several labels, with `--multi-label`) per image;
- the captions of any caption dataset, `--caption-objects`: the object words they name
  (animal, vehicle, clothing, equipment: "a dog chases a ball" -> ball, dog), a caption-word
  detector that fills the typed slots of a `--typed-slots` captioner (README, novel objects).
See `captioner.pipelines.recognizer_data`.

Single-label heads use softmax + cross-entropy, multi-label heads sigmoid + binary
cross-entropy. The encoder's pooled features are computed once and cached
(`captioner.data.features`), so training takes seconds. The best head by validation
accuracy (single-label) or micro-F1 at `--threshold` (multi-label), ties broken by the lower
validation loss, is written with the encoder reference to `--out`:
`Captioner.from_pretrained(OUT).tag(images)`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from captioner.checkpoint import write_json_atomic
from captioner.data.common import DataError
from captioner.pipelines.config import opt, run_recipe, to_dict
from captioner.pipelines.recognizer_data import (
    label_set,
    load_caption_objects,
    load_labelled,
    targets,
)
from captioner.pipelines.selection import export_model, selection_score
from captioner.pipelines.trainer import (
    DistInfo,
    TrainConfig,
    Trainer,
    barrier,
    param_groups,
    setup,
)
from captioner.recognition import RecognitionConfig, RecognitionHead

log = logging.getLogger(__name__)


@dataclass
class RecognizerTrainConfig(TrainConfig):
    dataset: str = opt("", "imagefolder:DIR (class subfolders) or a dataset spec", required=True)
    out: str = opt("", "output model directory (run files go to OUT/run/)", required=True)
    multi_label: bool = opt(False, "several labels per image (sigmoid) instead of one (softmax)")
    label_column: str = opt("", "dataset column holding the label(s) (not for class folders)")
    caption_objects: bool = opt(
        False,
        "labels are the object words (animal, vehicle, clothing, equipment) an image's "
        "captions name, from any caption dataset (implies --multi-label): a word detector "
        "that fills the typed slots of a --typed-slots captioner",
    )
    min_label_images: int = opt(1, "drop labels of fewer training images than this")
    encoder: str = opt("efficientnet_lite0", "CNN encoder name")
    encoder_weights: str | None = opt("default", "encoder weights: default | none | file")
    hidden_dim: int | None = opt(None, "hidden layer size (none = a linear head)")
    dropout: float = opt(0.2, "dropout on the pooled features")
    label_smoothing: float = opt(0.0, "single-label: label smoothing of the loss")
    threshold: float = opt(0.5, "multi-label: probability above which a tag counts")
    seed_split: int = opt(0, "seed of the train/validation/test split of class folders")
    limit: int | None = opt(None, "train on a random (seeded) subset of N images")
    test_split: str = opt("test", "held-out split scored at the end ('' = none)")
    feature_batch_size: int = opt(64, "batch size of feature extraction")
    cache_dir: str | None = opt(None, "feature cache folder (default: ~/.cache/captioner)")
    name: str = opt("", "model name stored in config.json (default: OUT's folder name)")
    epochs: int = opt(30, "number of training epochs")
    lr: float = opt(3e-3, "peak learning rate (AdamW)")
    patience: int = opt(8, "early stopping: epochs without improvement (0 = off)")


def pooled_tensor(feats: datasets.Dataset) -> Tensor:
    return torch.from_numpy(np.asarray(feats.with_format("numpy")["pooled"], dtype=np.float32))


# ---------------------------------------------------------------------- training
def loss_of(cfg: RecognizerTrainConfig, logits: Tensor, y: Tensor) -> Tensor:
    if cfg.multi_label:
        return F.binary_cross_entropy_with_logits(logits, y)
    return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing, ignore_index=-100)


def scores_of(cfg: RecognizerTrainConfig, logits: Tensor, y: Tensor) -> dict[str, float]:
    if not cfg.multi_label:
        keep = y != -100
        hit = (logits.argmax(-1) == y)[keep].float()
        return {"accuracy": float(hit.mean()) if len(hit) else 0.0,
                "loss": float(loss_of(cfg, logits, y))}  # fmt: skip
    pred = torch.sigmoid(logits) >= cfg.threshold
    truth = y > 0.5
    tp = float((pred & truth).sum())
    precision = tp / max(1.0, float(pred.sum()))
    recall = tp / max(1.0, float(truth.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    exact = float((pred == truth).all(dim=-1).float().mean())
    return {"f1": f1, "precision": precision, "recall": recall, "exact_match": exact,
            "loss": float(loss_of(cfg, logits, y))}  # fmt: skip


def prepare(
    cfg: RecognizerTrainConfig, dsd: datasets.DatasetDict, dist: DistInfo
) -> tuple[Any, list[str], dict[str, Tensor], dict[str, Tensor]]:
    """Check and subset the splits, build the encoder, compute (or read the cached) pooled
    features: (encoder, labels, {split: (n, C) features}, {split: targets})."""
    from captioner.data.features import compute_features
    from captioner.encoders import build_encoder

    for split in ("train", "validation"):
        if split not in dsd or len(dsd[split]) == 0:
            raise DataError(f"dataset {cfg.dataset!r} has no (or an empty) {split!r} split")
    if cfg.limit:  # a random subset: class folders are ordered by label
        n = min(cfg.limit, len(dsd["train"]))
        dsd["train"] = dsd["train"].shuffle(seed=cfg.seed).select(range(n))
    labels = label_set(dsd["train"], multi_label=cfg.multi_label, min_images=cfg.min_label_images)
    weights = None if str(cfg.encoder_weights).lower() == "none" else cfg.encoder_weights
    encoder = build_encoder(cfg.encoder, weights=weights)
    splits = [s for s in ("train", "validation", cfg.test_split) if s and len(dsd.get(s, []))]
    if not dist.is_main:
        barrier(dist)  # rank 0 computes and caches the features first, the others read them
    kw = {
        "batch_size": cfg.feature_batch_size,
        "device": str(dist.device),
        "cache_dir": cfg.cache_dir,
    }
    feats = {s: compute_features(dsd[s], encoder, **kw) for s in splits}
    if dist.is_main:
        barrier(dist)
    x = {s: pooled_tensor(f) for s, f in feats.items()}  # (n, C) each
    y = {s: targets(dsd[s]["labels"], labels, multi_label=cfg.multi_label) for s in splits}
    log.info("%s labels %s; %s images", "multi" if cfg.multi_label else "single",
             labels[:10], {s: len(v) for s, v in x.items()})  # fmt: skip
    return encoder, labels, x, y


def train(cfg: RecognizerTrainConfig, *, dataset: datasets.DatasetDict | None = None) -> dict:
    """Train and export a recognition head; returns the final scores (also in run/)."""
    dist = setup(cfg)
    if cfg.caption_objects:
        if cfg.label_column:
            raise ValueError("--caption-objects takes its labels from the captions; "
                             "drop --label-column")  # fmt: skip
        cfg.multi_label = True
    if dataset is not None:
        dsd = dataset
    elif cfg.caption_objects:
        dsd = load_caption_objects(cfg.dataset)
    else:
        dsd = load_labelled(cfg.dataset, label_column=cfg.label_column, seed=cfg.seed_split)
    encoder, labels, x, y = prepare(cfg, dsd, dist)
    head = RecognitionHead(RecognitionConfig(
        in_dim=encoder.out_channels, labels=labels, multi_label=cfg.multi_label,
        dropout=cfg.dropout, hidden_dim=cfg.hidden_dim, caption_objects=cfg.caption_objects,
    ))  # fmt: skip
    out = Path(cfg.out)
    name = cfg.name or out.resolve().name
    monitor = "f1" if cfg.multi_label else "accuracy"

    def evaluate(split: str) -> dict[str, float]:
        head.eval()
        with torch.no_grad():
            logits = head(x[split].to(dist.device)).float().cpu()
        scores = scores_of(cfg, logits, y[split])
        return {**scores, "selection": selection_score(scores[monitor], scores["loss"])}

    def on_best(m: nn.Module, scores: dict[str, float], epoch: int) -> None:
        export_model(m, out / "run" / "best", out, encoder=encoder, recognizer=m, name=name)

    trainer = Trainer(
        model=head,
        config=cfg,
        train_dataset=TensorDataset(x["train"], y["train"]),
        loss_fn=lambda m, batch: loss_of(cfg, m(batch[0]), batch[1]),
        evaluate_fn=lambda m, epoch: evaluate("validation"),
        monitor="selection",  # accuracy / F1, ties broken by the lower loss
        mode="max",
        on_best=on_best,
        run_dir=out / "run",
        param_groups=param_groups(head, cfg),
        run_config={"recipe": "recognizer", **to_dict(cfg), "labels": labels},
        dist=dist,
    )
    result = trainer.fit()
    if not dist.is_main:
        return {}
    from captioner.api import Captioner

    best = Captioner.from_pretrained(out / "run" / "best", device="cpu", backend="torch")
    best = best.recognizer
    head.load_state_dict(best.state_dict())  # score the exported best head, not the last
    report: dict = {"best_epoch": result.best_epoch, "validation": evaluate("validation")}
    if cfg.test_split in x:
        report["test"] = evaluate(cfg.test_split)
    write_json_atomic(out / "run" / "test_metrics.json", report)
    log.info("recognizer (%d labels) in %s: %s", len(labels), out, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return run_recipe(
        RecognizerTrainConfig,
        train,
        argv,
        prog="captioner train recognizer",
        description=__doc__.split("\n\n")[0],
    )


if __name__ == "__main__":
    sys.exit(main())
