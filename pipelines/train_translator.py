"""Train the many-to-many translator (bi-RNN encoder, attentive RNN decoder) on Multi30k.

    captioner train translate --dataset multi30k:DIR --src en --tgt de --out translate-en-de

A joint SentencePiece model (`--vocab-size`, learnt from the training split of both
languages) becomes `subwords.model` in the model directory. Each epoch the validation split
is translated (greedy, `--val-beam`) and scored with BLEU (sacrebleu, detokenised); the best
model is kept (early stopping with `--patience`). At the end the best model translates the
test split with beam `--beam-size` and its BLEU is written to `OUT/run/test_metrics.json`,
both on the tokenised `tok/` references (as the published scores) and detokenised. The
engine gives resume, AMP, DDP (`torchrun -m captioner.pipelines.train_translator ...`) and
curves; run files go to `OUT/run/`. With `--average-last K` the mean of the last K epoch
checkpoints is validated too and replaces the best epoch when its validation BLEU is higher
(`test_metrics.json` says which was kept under `averaged`).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from captioner.atomic import write_bytes_atomic
from captioner.checkpoint import write_json_atomic
from captioner.decoding import GenerationConfig
from captioner.pipelines.batching import length_batches
from captioner.pipelines.config import opt, run_recipe, to_dict
from captioner.pipelines.trainer import (
    TrainConfig,
    Trainer,
    param_groups,
    publish_model_dir,
    setup,
)
from captioner.pipelines.translate_eval import DETOK, evaluate_translator
from captioner.subwords import FILENAME as SUBWORDS_FILE
from captioner.subwords import MODEL_TYPES, Subwords
from captioner.translation import DEFAULT_GENERATION, LANGUAGES, TranslationModel
from captioner.translator_net import (
    ATTENTIONS,
    BOS_ID,
    DECODER_CELLS,
    ENCODER_CELLS,
    EOS_ID,
    Translator,
    TranslatorConfig,
    translation_loss,
)

log = logging.getLogger(__name__)
LANGS = tuple(LANGUAGES)


@dataclass
class TranslateTrainConfig(TrainConfig):
    dataset: str = opt("", "parallel corpus spec: multi30k:DIR", required=True)
    out: str = opt("", "output model directory (run files go to OUT/run/)", required=True)
    src: str = opt("en", "source language", choices=LANGS)
    tgt: str = opt("de", "target language", choices=LANGS)
    vocab_size: int = opt(8000, "joint subword vocabulary size (a ceiling for small corpora)")
    subword_model: str = opt("bpe", "SentencePiece model type", choices=MODEL_TYPES)
    encoder_cell: str = opt("gru", "encoder RNN (bidirectional)", choices=ENCODER_CELLS)
    decoder_cell: str = opt("gru", "decoder RNN cell", choices=DECODER_CELLS)
    attention: str = opt("bahdanau", "attention over the source", choices=ATTENTIONS)
    embed_dim: int = opt(256, "subword embedding size")
    hidden_dim: int = opt(256, "decoder state size (and each encoder direction's)")
    attention_dim: int = opt(256, "Bahdanau scoring layer size")
    encoder_layers: int = opt(1, "stacked encoder layers")
    dropout: float = opt(0.3, "dropout on embeddings and before the output layer")
    tie_embeddings: bool = opt(True, "the output layer reuses the target embedding")
    share_embeddings: bool = opt(True, "source and target share one embedding table")
    label_smoothing: float = opt(0.1, "label smoothing of the training loss")
    max_length: int = opt(80, "longest sentence in subwords (longer ones are cut)")
    limit: int | None = opt(None, "train on the first N pairs only")
    eval_limit: int | None = opt(None, "validate on the first N validation pairs")
    val_split: str = opt("validation", "split for model selection")
    test_split: str = opt("test", "split scored at the end ('' = none); test = test_2016_flickr")
    val_beam: int = opt(1, "validation beam (1 = greedy)")
    beam_size: int = opt(4, "test beam")
    save_dtype: str = opt("float32", "weights stored as", choices=("float32", "float16"))
    name: str = opt("", "model name stored in config.json (default: OUT's folder name)")
    epochs: int = opt(15, "number of training epochs")
    batch_size: int = opt(64, "batch size per process")
    lr: float = opt(2e-3, "peak learning rate (AdamW)")
    patience: int = opt(4, "early stopping: epochs without improvement (0 = off)")
    length_pool: int = opt(
        100, "batches of similar length: sort each pool of N batches' sentences by length "
        "before cutting it into batches (less padding, faster epochs; 0 = random batches)"
    )  # fmt: skip
    average_last: int = opt(
        0, "after training, average the weights of the last K epoch checkpoints and keep "
        "the average when its validation BLEU beats the best epoch's (0 = off; keeps at "
        "least K checkpoints)"
    )  # fmt: skip


class Pairs(Dataset):
    """Encoded (source ids + </s>, <s> + target ids + </s>) pairs."""

    def __init__(self, subwords: Subwords, sources, targets, max_length: int):
        self.src = [s[: max_length - 1] + [EOS_ID] for s in subwords.encode(sources)]
        self.tgt = [[BOS_ID, *t[: max_length - 2], EOS_ID] for t in subwords.encode(targets)]

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        return self.src[i], self.tgt[i]


def _pad(seqs: list[list[int]]) -> Tensor:
    out = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


def collate(items: list[tuple[list[int], list[int]]]) -> dict[str, Tensor]:
    src, tgt = zip(*items)
    return {"src": _pad(src), "lengths": torch.tensor([len(s) for s in src]), "tgt": _pad(tgt)}


def loss_fn_of(cfg: TranslateTrainConfig):
    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["src"], batch["lengths"], batch["tgt"])
        return translation_loss(logits, batch["tgt"], label_smoothing=cfg.label_smoothing)

    return loss_fn


def build_model(cfg: TranslateTrainConfig, vocab_size: int) -> Translator:
    return Translator(TranslatorConfig(
        vocab_size=vocab_size, src_lang=cfg.src, tgt_lang=cfg.tgt, embed_dim=cfg.embed_dim,
        hidden_dim=cfg.hidden_dim, attention_dim=cfg.attention_dim,
        encoder_cell=cfg.encoder_cell, decoder_cell=cfg.decoder_cell, attention=cfg.attention,
        encoder_layers=cfg.encoder_layers, dropout=cfg.dropout,
        tie_embeddings=cfg.tie_embeddings, share_embeddings=cfg.share_embeddings,
        max_source_length=cfg.max_length,
    ))  # fmt: skip


def run_subwords(cfg: TranslateTrainConfig, path: Path, texts: list[str], main: bool) -> Subwords:
    """The run's subword model: learnt once and kept in the run folder, so `--resume`
    continues with the very ids the checkpoint was trained on."""
    if cfg.resume and path.is_file():
        log.info("resuming with the subwords of %s", path)
        return Subwords(path.read_bytes(), source=str(path))
    subwords = Subwords.train(texts, vocab_size=cfg.vocab_size, model_type=cfg.subword_model)
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, subwords.to_bytes())
    return subwords


def optimizer_groups(model: Translator, cfg: TranslateTrainConfig) -> list[dict]:
    """AdamW groups: every parameter at --lr (the shared `param_groups` would give modules
    named `encoder.` the pretrained-CNN rate --encoder-lr; this RNN encoder learns from
    scratch), weight decay on matrices only."""
    return param_groups(model, cfg, encoder_prefix="(no pretrained encoder)")


def _split(dsd, name: str, flag: str):
    if name not in dsd or len(dsd[name]) == 0:
        raise ValueError(f"the dataset has no (or an empty) {name!r} split ({flag})")
    return dsd[name]


def train(cfg: TranslateTrainConfig, *, dataset=None) -> dict:
    """Learn subwords, train, select on validation BLEU, score the test split, export."""
    from captioner.data.spec import load_translation_dataset

    if cfg.src == cfg.tgt:
        raise ValueError(f"--src and --tgt are both {cfg.src!r}")
    if cfg.average_last > cfg.keep_checkpoints:  # the checkpoints to average must be kept
        cfg = dataclasses.replace(cfg, keep_checkpoints=cfg.average_last)
    dist = setup(cfg)
    dsd = dataset if dataset is not None else load_translation_dataset(
        cfg.dataset, src=cfg.src, tgt=cfg.tgt
    )  # fmt: skip
    train_split = _split(dsd, "train", "training")
    if cfg.limit:
        train_split = train_split.select(range(min(cfg.limit, len(train_split))))
    val = _split(dsd, cfg.val_split, "--val-split")
    if cfg.eval_limit:
        val = val.select(range(min(cfg.eval_limit, len(val))))
    sources, targets = list(train_split["source"]), list(train_split["target"])
    out = Path(cfg.out)
    subwords = run_subwords(cfg, out / "run" / SUBWORDS_FILE, sources + targets, dist.is_main)
    data = Pairs(subwords, sources, targets, cfg.max_length)
    model = build_model(cfg, len(subwords))
    log.info("%d training pairs %s->%s, %d subwords, %.1fM parameters", len(data), cfg.src,
             cfg.tgt, len(subwords), sum(p.numel() for p in model.parameters()) / 1e6)  # fmt: skip
    name = cfg.name or out.resolve().name
    staged = out / "run" / "best"
    dtype = torch.float16 if cfg.save_dtype == "float16" else None
    val_generation = GenerationConfig(beam_size=cfg.val_beam, avoid_dangling=False)

    def validate(m: nn.Module, epoch: int) -> dict[str, float]:
        tm = TranslationModel(m, subwords, device=dist.device, name=name)
        found = evaluate_translator(tm, val, generation=val_generation, examples=0)
        return {"val_bleu": found["scores"][DETOK]}

    def on_best(m: nn.Module, scores: dict[str, float], epoch: int) -> None:
        tm = TranslationModel(m, subwords, device=dist.device, name=name)
        publish_model_dir(tm.save(staged, dtype=dtype), out)
        m.train()  # TranslationModel put it in eval mode

    batches = length_batches([(len(t), len(s)) for s, t in zip(data.src, data.tgt)], cfg, dist)
    trainer = Trainer(
        model=model,
        config=cfg,
        train_dataset=data,
        batch_sampler=batches,
        collate_fn=collate,
        loss_fn=loss_fn_of(cfg),
        evaluate_fn=validate,
        monitor="val_bleu",
        mode="max",
        on_best=on_best,
        run_dir=out / "run",
        param_groups=optimizer_groups(model, cfg),
        run_config={"recipe": "translate", **to_dict(cfg)},
        dist=dist,
    )
    result = trainer.fit()
    if not dist.is_main:
        return {}
    averaged = None
    if cfg.average_last >= 2:
        averaged = average_and_choose(
            model, out / "run" / "checkpoints", cfg.average_last, result.best_score,
            validate=lambda m: validate(m, 0)["val_bleu"],
            publish=lambda m, score: on_best(m, {"val_bleu": score}, 0),
        )  # fmt: skip
    return finish(cfg, dsd, out, best_epoch=result.best_epoch, averaged=averaged)


def average_checkpoints(ckpt_dir: Path, k: int) -> tuple[dict[str, Tensor], list[int]]:
    """The element-wise mean of the weights of the newest `k` epoch checkpoints of a run
    (`checkpoints/epoch-NNNN/model.safetensors`), and their epochs, oldest first. Fewer
    than `k` checkpoints are averaged as they are (none: a `CheckpointError`)."""
    from safetensors.torch import load_file

    from captioner.checkpoint import CheckpointError
    from captioner.pipelines.runstate import epoch_dirs

    dirs = epoch_dirs(Path(ckpt_dir))[:k]
    if not dirs:
        raise CheckpointError(f"{ckpt_dir}: no epoch checkpoints to average")
    total: dict[str, Tensor] = {}
    for d in dirs:
        weights = load_file(str(d / "model.safetensors"))
        if total and set(weights) != set(total):
            raise CheckpointError(f"{d}: not the same tensors as the other checkpoints")
        for name, tensor in weights.items():
            if name in total and tensor.is_floating_point():
                total[name] += tensor.double()
            elif name not in total:
                total[name] = tensor.double() if tensor.is_floating_point() else tensor
    mean = {n: (t / len(dirs)).float() if t.is_floating_point() else t for n, t in total.items()}
    return mean, sorted(int(d.name.split("-")[1]) for d in dirs)


def average_and_choose(model: nn.Module, ckpt_dir: Path, k: int, best_score, *, validate,
                       publish) -> dict:  # fmt: skip
    """Validate the mean of the last `k` epoch checkpoints; `publish` it (as the run's model)
    when its validation score beats `best_score`, the best single epoch's. Returns what was
    measured, for test_metrics.json. `model` is left holding the average either way (the
    test scoring reloads the published model from OUT)."""
    weights, epochs = average_checkpoints(ckpt_dir, k)
    model.load_state_dict(weights)
    model.eval()
    score = float(validate(model))
    chosen = len(epochs) >= 2 and (best_score is None or score > best_score)
    if chosen:
        publish(model, score)
    log.info("average of epochs %s: val BLEU %.2f vs best epoch %s: %s", epochs, score,
             best_score, "kept" if chosen else "not kept")  # fmt: skip
    return {"epochs": epochs, "val_bleu": round(score, 2), "best_epoch_val_bleu": best_score,
            "chosen": chosen}  # fmt: skip


def finish(cfg: TranslateTrainConfig, dsd, out: Path, *, best_epoch, averaged=None) -> dict:
    """Score the best model (reloaded from OUT) on the test split; write test_metrics.json."""
    from captioner.data.multi30k import tokenised_references
    from captioner.data.spec import parse_spec

    report: dict = {"best_epoch": best_epoch, "pair": f"{cfg.src}-{cfg.tgt}"}
    if averaged is not None:
        report["averaged"] = averaged
    if cfg.test_split:
        test = _split(dsd, cfg.test_split, "--test-split")
        model = TranslationModel.load(out)
        (spec,) = parse_spec(cfg.dataset, kinds=("multi30k",))
        refs = tokenised_references(spec.args[0], cfg.test_split, cfg.tgt) if spec.args else None
        generation = dataclasses.replace(DEFAULT_GENERATION, beam_size=cfg.beam_size)
        report["test"] = evaluate_translator(
            model, test, tokenised_references=refs, generation=generation
        )
    write_json_atomic(out / "run" / "test_metrics.json", report)
    scores = report["test"]["scores"] if "test" in report else "no test split scored"
    log.info("translator in %s (best epoch %s): %s", out, best_epoch, scores)
    return report


def check(cfg: TranslateTrainConfig) -> str | None:
    if cfg.src == cfg.tgt:
        return f"--src and --tgt are both {cfg.src!r}"
    if cfg.max_length < 3:
        return f"--max-length must be >= 3, got {cfg.max_length}"
    if cfg.average_last < 0:
        return f"--average-last must be >= 0, got {cfg.average_last}"
    return None


def main(argv: list[str] | None = None) -> int:
    return run_recipe(
        TranslateTrainConfig,
        train,
        argv,
        prog="captioner train translate",
        description=__doc__.split("\n\n")[0],
        check=check,
    )


if __name__ == "__main__":
    sys.exit(main())
