"""Fine-tune a trained captioner with self-critical sequence training (CIDEr-D reward).

    captioner train scst --init models/scenes --dataset scenes --out models/scenes-scst

The model in `--init` (trained with `captioner train caption`) is the starting policy; its
vocabulary and encoder are kept. The encoder stays frozen and its features are cached, so
only the decoder trains, with dropout off (the sampled policy and the scored one must be the
same). The reward and loss are in `captioner.pipelines.scst`. The best model by validation
`--monitor` goes to `--out`; when no epoch beats the initial model, `--out` holds that one.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import datasets

from captioner.data.caption_dataset import collate_captions
from captioner.pipelines.config import opt, run_recipe, to_dict
from captioner.pipelines.runstate import broadcast
from captioner.pipelines.scst import CiderD, scst_loss_fn
from captioner.pipelines.train_captioner import (
    CaptionModel,
    CaptionRunConfig,
    export,
    prepare,
    validate,
)
from captioner.pipelines.trainer import FitResult, Trainer, barrier, param_groups, setup

log = logging.getLogger(__name__)


@dataclass
class ScstTrainConfig(CaptionRunConfig):
    init: str = opt("", "model directory to fine-tune (a trained captioner)", required=True)
    lr: float = opt(5e-5, "peak learning rate (AdamW)")
    trainable_blocks: int = opt(0, "must be 0: SCST trains the decoder on cached features")
    samples: int = opt(5, "sampled captions per image")
    baseline: str = opt(
        "greedy", "reward baseline: the greedy caption, or the mean of the other samples",
        choices=("greedy", "mean"),
    )  # fmt: skip
    candidates: str = opt(
        "sample", "the captions scored per image: --samples sampled ones, or the --samples "
        "best of a beam search as wide (the captions inference returns)",
        choices=("sample", "beam"),
    )  # fmt: skip


def check(cfg: ScstTrainConfig) -> str | None:
    """The settings SCST cannot run with (one line), or None."""
    if cfg.trainable_blocks:
        return (f"--trainable-blocks {cfg.trainable_blocks}: SCST keeps the encoder frozen "
                "(its features are cached); train encoder blocks with `captioner train caption`")  # fmt: skip
    if cfg.samples < 1 or (
        (cfg.baseline == "mean" or cfg.candidates == "beam") and cfg.samples < 2
    ):
        return (
            f"--samples {cfg.samples}: need at least 1 (2 with --baseline mean or "
            "--candidates beam)"
        )
    return None


def train(cfg: ScstTrainConfig, *, dataset: datasets.DatasetDict | None = None) -> FitResult:
    """Fine-tune the model in `cfg.init` with SCST; the best (validation `cfg.monitor`) goes
    to `cfg.out`. `dataset` overrides `cfg.dataset`."""
    from captioner.api import Captioner

    problem = check(cfg)
    if problem:
        raise ValueError(problem)
    dist = setup(cfg)
    init = Captioner.from_pretrained(cfg.init, device=dist.device, backend="torch")  # trained
    if init.decoder is None:
        raise ValueError(f"{cfg.init}: the model has no caption decoder to fine-tune")
    out = Path(cfg.out)
    # An encoder with trained weights is not identified by its cache key: keep its
    # features inside this run.
    trained_encoder = getattr(init.encoder, "trainable_blocks", 0) > 0
    cache_dir = out / "run" / "features" if trained_encoder else None
    init.encoder.set_trainable_blocks(0)
    if not dist.is_main:
        barrier(dist)
    prep = prepare(cfg, dist.device, dataset, vocab=init.vocab, encoder=init.encoder,
                   cache_dir=cache_dir)  # fmt: skip
    if dist.is_main:
        barrier(dist)
    decoder = init.decoder
    decoder.drop.p = 0.0  # the sampled policy and the scored one must be the same
    model = CaptionModel(decoder)
    start_score = None
    if dist.is_main and not (cfg.resume and (out / "run" / "checkpoints").is_dir()):
        start_score = validate(prep, model, dist.device)[cfg.monitor]  # the model to beat
        log.info("initial model: %s %.4f", cfg.monitor, start_score)
        export(prep, model, out, dist.device)
    start_score = broadcast(start_score, dist)  # every rank must agree on early stopping
    loss_fn = scst_loss_fn(CiderD(prep.train["captions"]), prep.vocab, samples=cfg.samples,
                           max_length=cfg.max_length, baseline=cfg.baseline,
                           candidates=cfg.candidates)  # fmt: skip
    trainer = Trainer(
        model=model,
        config=cfg,
        train_dataset=prep.pairs("sample"),  # one item per image (its grid and index)
        collate_fn=functools.partial(collate_captions, pad_id=prep.vocab.pad_id),
        loss_fn=loss_fn,
        evaluate_fn=lambda m, epoch: validate(prep, m, dist.device),
        monitor=cfg.monitor,
        mode="max",
        on_best=lambda m, scores, epoch: export(prep, m, out, dist.device),
        run_dir=out / "run",
        param_groups=param_groups(model, cfg),
        run_config={"recipe": "caption-scst", **to_dict(cfg)},
        dist=dist,
        score_to_beat=start_score,
    )
    result = trainer.fit()
    if result.best_epoch is None:
        log.info("SCST: no epoch beat the initial model's %s (%s); %s holds the initial model",
                 cfg.monitor, result.best_score, out)  # fmt: skip
    else:
        log.info("SCST best %s %.4f at epoch %d; model in %s", cfg.monitor,
                 result.best_score, result.best_epoch, out)  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    return run_recipe(
        ScstTrainConfig,
        train,
        argv,
        prog="captioner train scst",
        description=__doc__.split("\n\n")[0],
        check=check,
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
