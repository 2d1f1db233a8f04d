"""Put a trained sentiment model into an existing model directory (e.g. the bundled default)
without touching its other parts:

    python -m captioner.pipelines.release --graft-sentiment SENT_DIR --into MODEL_DIR

SENT_DIR is what `captioner train sentiment --out SENT_DIR` wrote. The sentiment config,
weights (`sentiment.*` tensors, cast to the target's float type: float16 in the bundle) and
`sentiment_vocab.json` of MODEL_DIR are replaced; every other file and tensor is kept. The new
directory is assembled in a sibling folder, checked (its sentiment outputs must match
SENT_DIR's) and then swapped in, so a failure leaves MODEL_DIR as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from captioner import checkpoint as ckpt
from captioner.model_card import write_card
from captioner.model_dir import load_sentiment
from captioner.modelcheck import load_model_dir
from captioner.sentiment import sentiment_probs

log = logging.getLogger(__name__)

PROBES = ("what a lovely day", "a dog runs across the grass", "this was a waste of time")
VOCAB = "sentiment_vocab.json"


def _float_type(tensors: dict[str, torch.Tensor]) -> torch.dtype:
    kinds = {v.dtype for v in tensors.values() if v.is_floating_point()}
    return torch.float16 if kinds == {torch.float16} else torch.float32


def graft_sentiment(sentiment_dir: str | Path, model_dir: str | Path) -> Path:
    """Replace the sentiment part of `model_dir` by the one in `sentiment_dir`; returns
    `model_dir`. Errors (a missing part, an unreadable file) name the directory."""
    sentiment_dir, model_dir = Path(sentiment_dir), Path(model_dir)
    source, _ = load_sentiment(sentiment_dir)  # checks config, weights and vocabulary
    src_config, src_tensors = load_model_dir(sentiment_dir)
    config, tensors = load_model_dir(model_dir)
    if config.get("format") != "captioner":
        raise ckpt.CheckpointError(f"{model_dir}: not a captioner model directory")
    from safetensors.torch import load_file, save_file

    stored = load_file(str(model_dir / ckpt.WEIGHTS))  # as on disk (int8 stays int8)
    ours = ("sentiment.", f"{ckpt.INT8_SCALE}sentiment.")
    kept = {k: v for k, v in stored.items() if not k.startswith(ours)}
    weights = ckpt.prefixed(ckpt.subset(src_tensors, "sentiment"), "sentiment")
    if any(k.startswith(ckpt.INT8_SCALE) for k in stored):  # an int8 bundle: quantize alike
        dtype = torch.int8
        new = ckpt.quantize_int8({k: v.float() for k, v in weights.items()})
    else:
        dtype = _float_type(tensors)
        new = {k: v.to(dtype) for k, v in weights.items()}
    config["sentiment"] = src_config["sentiment"]
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}.graft"))
    try:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        ckpt.write_json_atomic(staging / ckpt.CONFIG, config)
        shutil.copyfile(sentiment_dir / VOCAB, staging / VOCAB)
        save_file({**kept, **new}, str(staging / ckpt.WEIGHTS))
        grafted, vocab = load_sentiment(staging)
        _, src_vocab = load_sentiment(sentiment_dir)
        gap = (
            (sentiment_probs(grafted, vocab, PROBES) - sentiment_probs(source, src_vocab, PROBES))
            .abs()
            .max()
        )
        if gap > (2e-2 if dtype == torch.int8 else 1e-2):
            raise ckpt.CheckpointError(
                f"grafting {sentiment_dir} changed its outputs by {gap:.3g}: left {model_dir} as it was"
            )
        old = model_dir.with_name(f".{model_dir.name}.old{os.getpid()}")
        os.replace(model_dir, old)
        os.replace(staging, model_dir)
        shutil.rmtree(old, ignore_errors=True)
        write_card(model_dir, config)  # the card names the new model's vectors; hand-written: kept
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "grafted the sentiment model of %s (%s, labels %s) into %s (largest probability change %.2g)",
        sentiment_dir,
        dtype,
        source.config.labels,
        model_dir,
        float(gap),
    )
    return model_dir
