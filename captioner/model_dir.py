"""A `Captioner` to and from a model directory, through the typed `CaptionerConfig`.

`read_parts(directory)` checks `config.json`, builds every head the config names and loads
its weights strictly (`load_strict`); `pack(model)` is the inverse: the config, tensors and
JSON side files that `checkpoint.save_model_dir` writes. `load_sentiment(directory)` reads
the sentiment part alone; `resolve_model_dir(name)` turns a model name into its folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from captioner import checkpoint as ckpt
from captioner.decoders import CaptionDecoder
from captioner.model_config import (
    CaptionerConfig,
    EncoderSpec,
    check_consumed,
    encoder_state,
    load_strict,
)
from captioner.modelcheck import load_model_dir
from captioner.models import BUNDLED_DIR
from captioner.noinit import assign_state, empty_modules
from captioner.sentiment import SentimentConfig, SentimentModel
from captioner.text import Vocabulary

log = logging.getLogger(__name__)


def read_parts(directory: Path) -> tuple[CaptionerConfig, dict[str, Any], dict[str, Tensor]]:
    """(config, `Captioner` keyword arguments, the stored tensors) of a model directory.
    Every problem is a `CheckpointError` naming the file (and key) at fault."""
    from captioner.encoders import build_encoder
    from captioner.recognition import RecognitionHead

    raw, tensors = load_model_dir(directory)
    has_labels = isinstance(raw, dict) and raw.get("recognition") is not None
    labels = ckpt.read_json(directory, "labels.json") if has_labels else None
    config = CaptionerConfig.from_dict(raw, labels=labels, source=str(directory / ckpt.CONFIG))
    if config.translator is not None:
        t = config.translator
        raise ckpt.CheckpointError(
            f"{directory}: a {t.src_lang}->{t.tgt_lang} translator, not a captioner: use it with "
            f"`captioner translate --translator {directory}` or Captioner.caption(..., "
            f"lang={t.tgt_lang!r}, translator=...)"
        )
    weights = str(directory / ckpt.WEIGHTS)
    name = raw.get("name") or directory.name
    parts: dict[str, Any] = {"name": name, "max_length": config.max_length,
                             "generation": config.generation}  # fmt: skip
    try:
        enc = config.encoder
        stored_encoder = any(k.startswith("encoder.") for k in tensors)
        parts["encoder"] = build_encoder(enc.name, weights=None if stored_encoder else enc.weights)
        if stored_encoder:
            load_strict(parts["encoder"], tensors, "encoder", source=weights)
        if config.decoder is not None:
            with empty_modules():  # no random init: load_strict assigns the stored tensors
                parts["decoder"] = CaptionDecoder(config.decoder)
            load_strict(parts["decoder"], tensors, "decoder", source=weights)
            parts["vocab"] = Vocabulary.load(directory / "vocab.json")
        if config.recognition is not None:
            with empty_modules():
                parts["recognizer"] = RecognitionHead(config.recognition)
            load_strict(parts["recognizer"], tensors, "recognition", source=weights)
        if config.sentiment is not None:
            with empty_modules():
                parts["sentiment"] = SentimentModel(config.sentiment)
            load_strict(parts["sentiment"], tensors, "sentiment", source=weights)
            parts["sentiment_vocab"] = Vocabulary.load(directory / "sentiment_vocab.json")
        present = {"encoder", *(k for k in CaptionerConfig.SUBCONFIGS if getattr(config, k))}
        check_consumed(tensors, present, source=weights)
    except (FileNotFoundError, ValueError) as e:
        if isinstance(e, ckpt.CheckpointError):
            raise
        raise ckpt.CheckpointError(str(e)) from None
    return config, parts, tensors


def pack(model: Any, *, include_encoder: bool) -> tuple[dict, dict[str, Tensor], dict[str, Any]]:
    """(config.json object, tensors, side JSON files) of a `Captioner`. The encoder's weights
    go in only with `include_encoder` (they were trained, or have no pretrained source)."""
    enc = getattr(model.encoder, "torch_encoder", model.encoder)  # also after use_backend
    config = CaptionerConfig(
        encoder=EncoderSpec(enc.name, enc.weights, getattr(enc, "trainable_blocks", 0)),
        decoder=None if model.decoder is None else model.decoder.config,
        recognition=None if model.recognizer is None else model.recognizer.config,
        sentiment=None if model.sentiment_model is None else model.sentiment_model.config,
        name=model.name,
        max_length=model.max_length,
        generation=model.generation_defaults,
    )
    tensors: dict[str, Tensor] = {}
    extra: dict[str, Any] = {}
    if include_encoder:
        tensors.update(ckpt.prefixed(encoder_state(enc), "encoder"))
    if model.decoder is not None:
        tensors.update(ckpt.prefixed(model.decoder.state_dict(), "decoder"))
        extra["vocab.json"] = model.vocab.to_json()
    if model.recognizer is not None:
        extra["labels.json"] = list(model.recognizer.config.labels)
        tensors.update(ckpt.prefixed(model.recognizer.state_dict(), "recognition"))
    if model.sentiment_model is not None:
        tensors.update(ckpt.prefixed(model.sentiment_model.state_dict(), "sentiment"))
        extra["sentiment_vocab.json"] = model.sentiment_vocab.to_json()
    return config.to_dict(), tensors, extra


def load_sentiment(directory: str | Path) -> tuple[SentimentModel, Vocabulary]:
    """The sentiment part of a model directory, without building the image encoder."""
    directory = Path(directory)
    config, tensors = load_model_dir(directory)
    if not config.get("sentiment"):
        raise ckpt.CheckpointError(f"{directory / ckpt.CONFIG}: the model has no sentiment part")
    try:
        vocab = Vocabulary.load(directory / "sentiment_vocab.json")
    except (FileNotFoundError, ValueError) as e:
        raise ckpt.CheckpointError(str(e)) from None
    try:
        with empty_modules():  # no random init: the stored tensors are assigned
            model = SentimentModel(SentimentConfig.from_dict(config["sentiment"]))
        assign_state(model, ckpt.subset(tensors, "sentiment"))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ckpt.CheckpointError(
            f"{directory}: sentiment config and weights do not match ({type(e).__name__}: {e})"
        ) from None
    return model.eval(), vocab


def bundled_model(name_or_path: str | Path, folder: Path | None = None) -> Path | None:
    """The bundled model directory in `folder` (`BUNDLED_DIR`) that a bare name ("default", "scenes") means,
    else None. A bare name (a str without a path separator, not starting with ".") means the
    bundled model even when a folder of that name sits in the current directory (a warning
    says so); "./default", an absolute path or a `Path` names the folder (as `--model` does:
    `cli.options.model_name`)."""
    if not isinstance(name_or_path, str) or not name_or_path or name_or_path.startswith("."):
        return None
    if "/" in name_or_path or os.sep in name_or_path:
        return None
    bundled = (folder or BUNDLED_DIR) / name_or_path
    if not (bundled / ckpt.CONFIG).is_file():
        return None
    if os.path.lexists(name_or_path):
        log.warning("%r is the bundled model; pass './%s' for the folder here",
                    name_or_path, name_or_path)  # fmt: skip
    return bundled


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A local model directory, a bundled model name ("default") or a hub id -> its folder."""
    named = bundled_model(name_or_path)
    if named is not None:
        return named
    path, bundled = Path(name_or_path), BUNDLED_DIR / str(name_or_path)
    if path.is_dir():
        return path
    if (bundled / ckpt.CONFIG).is_file():
        return bundled
    if str(name_or_path).count("/") == 1 and not path.exists():
        from captioner.hub import download

        return Path(download(str(name_or_path)))
    raise ckpt.CheckpointError(f"{name_or_path}: no such model directory, bundled model or hub id")
