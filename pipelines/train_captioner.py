"""Train a CNN encoder + RNN decoder captioner.

    captioner train caption --dataset scenes --out models/scenes --epochs 10
    python -m captioner.pipelines.train_captioner --config caption.toml --resume
    torchrun --nproc-per-node 4 -m captioner.pipelines.train_captioner --dataset ... --out ...

With `--trainable-blocks 0` (default) the encoder is frozen: its features are computed once
and cached, and only the decoder trains. With K > 0 the last K encoder blocks train end to end
on images at `--encoder-lr`. Every epoch the validation split is captioned by real greedy /
beam decoding and scored (CIDEr-D by default); the best model is written to `--out` as a
model directory (`Captioner.from_pretrained(OUT)`), run files to `OUT/run/`.
Self-critical fine-tuning of a trained model is its own recipe: `captioner train scst`.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import Tensor, nn

from captioner.data.caption_dataset import CaptionDataset, collate_captions
from captioner.decoders import CaptionDecoder, DecoderConfig, caption_loss
from captioner.evaluation import caption_scores, decode_grids
from captioner.pipelines import caption_data as cdata
from captioner.pipelines.config import opt, run_recipe, to_dict
from captioner.pipelines.selection import export_model
from captioner.pipelines.trainer import (
    FitResult,
    TrainConfig,
    Trainer,
    barrier,
    param_groups,
    setup,
)
from captioner.text import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class CaptionRunConfig(TrainConfig):
    """Settings both caption recipes (cross-entropy and SCST) share: data, validation, export."""

    dataset: str = opt("", "caption dataset spec, e.g. scenes, tuxpaint", required=True)
    out: str = opt("", "output model directory (run files go to OUT/run/)", required=True)
    trainable_blocks: int = opt(0, "train the encoder's last K blocks (0 = frozen, cached)")
    max_length: int = opt(20, "longest caption in words (training and decoding)")
    limit: int | None = opt(None, "use only the first N training images")
    eval_limit: int | None = opt(500, "validate on the first N validation images")
    val_split: str = opt("validation", "split used for validation / model selection")
    beam_size: int = opt(3, "validation decoding beam (1 = greedy)")
    monitor: str = opt("CIDEr-D", "validation score that selects the best model")
    feature_batch_size: int = opt(64, "batch size of feature extraction / validation")
    name: str = opt("", "model name stored in config.json (default: OUT's folder name)")


@dataclass
class CaptionTrainConfig(CaptionRunConfig):
    encoder: str = opt("efficientnet_lite0", "CNN encoder name")
    encoder_weights: str | None = opt("default", "encoder weights: default | none | file")
    cell: str = opt("lstm", "recurrent cell", choices=("lstm", "gru", "rnn"))
    attention: str = opt("soft", "attention over the image grid", choices=("soft", "none"))
    embed_dim: int = opt(256, "word embedding size")
    hidden_dim: int = opt(512, "recurrent state size")
    attention_dim: int = opt(256, "attention size")
    dropout: float = opt(0.3, "dropout before the output layer")
    alpha_c: float = opt(1.0, "doubly stochastic attention regulariser weight")
    label_smoothing: float = opt(0.0, "label smoothing of the word loss")
    min_count: int = opt(1, "keep words seen at least this often in train captions")
    object_slots: bool = opt(
        False,
        "train with object words replaced by a slot that decoding fills from the "
        "ImageNet tagger (novel objects; captioner.tagwords.fill_slots)",
    )
    typed_slots: bool = opt(
        False,
        "like --object-slots with one slot per kind of object (animal, vehicle, clothing, "
        "equipment, thing), each filled only by a tag of its kind",
    )
    max_vocab: int | None = opt(None, "keep at most this many words")


class CaptionModel(nn.Module):
    """The trained modules: decoder, plus the encoder when it trains end to end."""

    def __init__(self, decoder: CaptionDecoder, encoder: nn.Module | None = None):
        super().__init__()
        self.decoder, self.encoder = decoder, encoder

    def features(self, batch: dict[str, Tensor]) -> Tensor:
        if "grid" in batch:
            return batch["grid"].float()  # (B, N, C) cached
        grid, _ = self.encoder(batch["image"])  # (B, N, C)
        return grid

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        grid = self.features(batch)
        return self.decoder(grid, grid.mean(dim=1), batch["captions"])  # (B, T-1, V), alphas


@dataclass
class Prepared:
    """Everything a caption trainer (cross-entropy or SCST) needs, built once."""

    config: CaptionRunConfig
    dsd: datasets.DatasetDict
    train: datasets.Dataset
    val: datasets.Dataset
    vocab: Vocabulary
    encoder: Any
    train_features: datasets.Dataset | None  # train split with grid/pooled (frozen encoder)
    val_grids: Tensor | None  # (n, N, C) float16 (frozen encoder)

    def pairs(self, mode: str = "all", *, preload_gib: float = 4.0) -> CaptionDataset:
        """Training items (grid or image, caption ids): one per reference caption ("all") or
        one per image with a reference drawn per epoch ("sample")."""
        cfg = self.config
        ids_max = cfg.max_length + 2  # <start> ... <end>
        if self.train_features is None:
            return CaptionDataset(self.train, self.vocab, mode=mode, max_length=ids_max,
                                  transform=self.encoder.transform, seed=cfg.seed)  # fmt: skip
        feats = self.train_features
        size = len(feats) * (feats.features["grid"].shape[0] * feats.features["grid"].shape[1]) * 2
        return CaptionDataset(feats, self.vocab, mode=mode, max_length=ids_max, seed=cfg.seed,
                              preload=size < preload_gib * 2**30)  # fmt: skip


def prepare(
    cfg: CaptionRunConfig,
    device: torch.device,
    dsd: datasets.DatasetDict | None = None,
    *,
    vocab: Vocabulary | None = None,
    encoder: Any = None,
    cache_dir: Path | None = None,
) -> Prepared:
    """Load the dataset, build (or take) the vocabulary and the encoder, cache features.
    The vocabulary and encoder are built from a `CaptionTrainConfig`'s settings when not
    given. In a process group call it on rank 0 first (it writes the feature cache)."""
    from captioner.encoders import build_encoder

    dsd = dsd if dsd is not None else cdata.load_caption_dataset(cfg.dataset)
    for split in ("train", cfg.val_split):
        if split not in dsd or len(dsd[split]) == 0:
            raise ValueError(f"dataset {cfg.dataset!r} has no (or an empty) {split!r} split")
    train = cdata.take(dsd["train"], cfg.limit)
    val = cdata.take(dsd[cfg.val_split], cfg.eval_limit)
    if vocab is None:
        texts = [c for caps in train["captions"] for c in caps]
        vocab = Vocabulary.build(texts, min_count=cfg.min_count, max_size=cfg.max_vocab)
    log.info("%d train / %d %s images, vocabulary %d words",
             len(train), len(val), cfg.val_split, len(vocab))  # fmt: skip
    if encoder is None:
        weights = None if str(cfg.encoder_weights).lower() == "none" else cfg.encoder_weights
        encoder = build_encoder(cfg.encoder, weights=weights, trainable_blocks=cfg.trainable_blocks)
    train_feats = val_grids = None
    if cfg.trainable_blocks == 0:
        kw = {"device": device, "batch_size": cfg.feature_batch_size, "cache_dir": cache_dir}
        train_feats = cdata.encode_features(train, encoder, desc="train features", **kw)
        val_feats = cdata.encode_features(val, encoder, desc=f"{cfg.val_split} features", **kw)
        val_grids = cdata.grid_tensor(val_feats, encoder.out_channels)
    return Prepared(cfg, dsd, train, val, vocab, encoder, train_feats, val_grids)


def build_decoder(cfg: CaptionTrainConfig, vocab: Vocabulary, feature_dim: int) -> CaptionDecoder:
    return CaptionDecoder(DecoderConfig(
        vocab_size=len(vocab), feature_dim=feature_dim, embed_dim=cfg.embed_dim,
        hidden_dim=cfg.hidden_dim, attention_dim=cfg.attention_dim, cell=cfg.cell,
        attention=cfg.attention, dropout=cfg.dropout,
    ))  # fmt: skip


def validate(prep: Prepared, model: CaptionModel, device: torch.device) -> dict[str, float]:
    """Decode the validation images for real and score the captions (no METEOR: speed)."""
    cfg = prep.config
    if prep.val_grids is not None:
        grids = prep.val_grids
    else:
        model.encoder.eval()
        loader = torch.utils.data.DataLoader(
            cdata.ImageColumn(prep.val, prep.encoder.transform), batch_size=cfg.feature_batch_size
        )
        grids = torch.cat([model.encoder(x.to(device))[0].cpu() for x in loader])
    hyps = decode_grids(model.decoder, prep.vocab, grids, beam_size=cfg.beam_size,
                        max_length=cfg.max_length, batch_size=cfg.feature_batch_size,
                        device=device)  # fmt: skip
    scenes = prep.val["scene"] if "scene" in prep.val.column_names else None
    scores = caption_scores(prep.val["captions"], hyps, meteor=False, scenes=scenes)
    log.info("validation sample: %r", hyps[:3])
    return scores


def export(prep: Prepared, model: CaptionModel, out: Path, device: torch.device) -> None:
    """Write the model as a directory into `out` (beside `out/run/`)."""
    cfg = prep.config
    encoder = model.encoder if model.encoder is not None else prep.encoder
    export_model(model, out / "run" / "best", out, data=cfg.dataset, encoder=encoder,
                 decoder=model.decoder, vocab=prep.vocab, device=device,
                 name=cfg.name or out.resolve().name, max_length=cfg.max_length)  # fmt: skip


def caption_loss_fn(cfg: CaptionTrainConfig, pad_id: int):
    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits, alphas = model(batch)
        return caption_loss(logits, batch["captions"], alphas, pad_id=pad_id,
                            alpha_c=cfg.alpha_c, label_smoothing=cfg.label_smoothing)  # fmt: skip

    return loss_fn


def slot_training_captions(
    dsd: datasets.DatasetDict, *, typed: bool = False
) -> datasets.DatasetDict:
    """`dsd` with every object word of the *training* captions replaced by the object slot
    (of its kind when `typed`); validation and test keep their references."""
    from captioner.tagwords import slot_caption, typed_slot_caption

    rewrite = typed_slot_caption if typed else slot_caption
    dsd["train"] = dsd["train"].map(
        lambda caps: {"captions": [rewrite(c) for c in caps]}, input_columns="captions"
    )
    return dsd


def train(cfg: CaptionTrainConfig, *, dataset: datasets.DatasetDict | None = None) -> FitResult:
    """Train a captioner with cross-entropy; `dataset` overrides `cfg.dataset`."""
    dist = setup(cfg)
    if cfg.object_slots or cfg.typed_slots:
        dataset = slot_training_captions(
            dataset if dataset is not None else cdata.load_caption_dataset(cfg.dataset),
            typed=cfg.typed_slots,
        )
    if not dist.is_main:
        barrier(dist)  # rank 0 computes and caches the features first, the others read them
    prep = prepare(cfg, dist.device, dataset)
    if dist.is_main:
        barrier(dist)
    encoder = None
    if cfg.trainable_blocks > 0:
        encoder = prep.encoder
    model = CaptionModel(build_decoder(cfg, prep.vocab, prep.encoder.out_channels), encoder)
    pairs = prep.pairs("all")
    collate = functools.partial(collate_captions, pad_id=prep.vocab.pad_id)
    out = Path(cfg.out)
    trainer = Trainer(
        model=model,
        config=cfg,
        train_dataset=pairs,
        collate_fn=collate,
        loss_fn=caption_loss_fn(cfg, prep.vocab.pad_id),
        evaluate_fn=lambda m, epoch: validate(prep, m, dist.device),
        monitor=cfg.monitor,
        mode="max",
        on_best=lambda m, scores, epoch: export(prep, m, out, dist.device),
        run_dir=out / "run",
        param_groups=param_groups(model, cfg),
        run_config={"recipe": "caption", **to_dict(cfg)},
        dist=dist,
    )
    result = trainer.fit()
    log.info("best %s %.4f at epoch %s; model in %s", cfg.monitor, result.best_score or 0.0,
             result.best_epoch, out)  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    return run_recipe(
        CaptionTrainConfig,
        train,
        argv,
        prog="captioner train caption",
        description=__doc__.split("\n\n")[0],
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
