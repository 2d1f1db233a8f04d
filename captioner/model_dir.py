"""A `Captioner` to and from a model directory, through the typed `CaptionerConfig`.

`read_parts(directory)` checks `config.json`, builds every head the config names and loads
its weights strictly (`load_strict`); `pack(model)` is the inverse: the config, tensors and
JSON side files that `checkpoint.save_model_dir` writes. `load_sentiment(directory)` reads
the sentiment part alone. `model_directory(name)` turns a name (a folder, a bundled model, a
hub id) into its folder, the one way `Captioner.from_pretrained` and the commands do it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from captioner import checkpoint as ckpt
from captioner.decoders import CaptionDecoder
from captioner.errors import ModelNotFoundError
from captioner.model_config import (
    CaptionerConfig,
    EncoderConfig,
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
        encoder=EncoderConfig(enc.name, enc.weights, getattr(enc, "trainable_blocks", 0)),
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
    """The bundled model directory in `folder` (`BUNDLED_DIR`) that a bare name ("default",
    "scenes") means, else None: the one rule of the API and `--model`. A bare name (a str
    without a path separator, not starting with ".") means the bundled model even when a
    folder of that name sits in the current directory (each caller notes it: here
    `model_directory`, on the command line `cli.options.model_name`); "./default", an
    absolute path or a `Path` names the folder."""
    if not isinstance(name_or_path, str) or not name_or_path or name_or_path.startswith("."):
        return None
    if "/" in name_or_path or os.sep in name_or_path:
        return None
    bundled = (folder or BUNDLED_DIR) / name_or_path
    return bundled if (bundled / ckpt.CONFIG).is_file() else None


def model_directory(
    name_or_path: str | Path, *, revision: str | None = None, folder: Path | None = None
) -> Path | None:
    """The folder `Captioner.from_pretrained(name_or_path)` loads: a bundled model's bare name
    (see `bundled_model`), a local directory, a model bundled in `folder` (`BUNDLED_DIR`),
    or an OWNER/NAME hub id (downloaded, pinned to `revision`). None for "default" when no
    default model is bundled (the caller falls back to the ImageNet tagger). Raises
    `ValueError` for a revision of a local model and `ModelNotFoundError` when nothing
    matches."""
    folder = folder or BUNDLED_DIR
    path = Path(name_or_path)
    if revision is not None and (path.exists() or (folder / str(name_or_path)).is_dir()):
        raise ValueError(f"{name_or_path}: revision= applies to hub ids, not local models")
    bundled = folder / str(name_or_path)
    named = bundled_model(name_or_path, folder)  # "default": never a folder here
    if named is not None:
        if os.path.lexists(name_or_path):
            log.warning("%r is the bundled model; pass './%s' for the folder here",
                        name_or_path, name_or_path)  # fmt: skip
        return named
    if path.is_dir():
        return path
    if (bundled / ckpt.CONFIG).is_file():
        return bundled
    if str(name_or_path) == "default":
        return None
    if str(name_or_path).count("/") == 1 and not path.exists() and _hub_like(str(name_or_path)):
        from captioner.hub import download

        return download(str(name_or_path), revision=revision)
    raise ModelNotFoundError(
        f"{name_or_path}: no such model directory, bundled model ({_bundled_names(folder)}) "
        "or hub id"
    )


def _hub_like(name: str) -> bool:
    """Whether a missing OWNER/NAME may be a hub id (not /x, ./x or ~/x: local paths)."""
    return not name.startswith(("/", ".", "~", "\\")) and not Path(name).is_absolute()


def _bundled_names(folder: Path) -> str:
    names = sorted(p.name for p in folder.glob("*") if (p / ckpt.CONFIG).is_file())
    return ", ".join(names) or "default"


def load_captioner(cls: Any, directory: Path, *, device: Any = None) -> Any:
    """A `Captioner` (`cls`) from a model directory, remembering what the directory says
    beyond weights: the dtype its weights were stored in and the data it was trained on."""
    from captioner.model_card import read_training_data

    _, parts, _ = read_parts(directory)
    model = cls(**parts, device=device)
    model.storage_dtype = ckpt.stored_dtype(directory)
    model.training_data = read_training_data(directory)
    return model


def save_captioner(
    model: Any, directory: str | Path, *, include_encoder: bool | None, dtype: Any
) -> Path:
    """`Captioner.save_pretrained`: the model directory (weights in `dtype`, default the
    dtype they were loaded in; the encoder's only when trained or asked for) and its card."""
    import torch

    from captioner.model_card import write_card

    enc = getattr(model.encoder, "torch_encoder", model.encoder)  # also after use_backend
    if include_encoder is None:
        include_encoder = getattr(enc, "trainable_blocks", 0) > 0 or enc.weights is None
    config, tensors, extra = pack(model, include_encoder=include_encoder)
    dtype = dtype or model.storage_dtype
    if dtype == torch.int8:  # large matrices int8 + row scales, the rest float16
        tensors = ckpt.quantize_int8(tensors)
    elif dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    out = ckpt.save_model_dir(directory, config=config, tensors=tensors, extra_json=extra)
    write_card(out, config, training_data=model.training_data)
    return out


def imagenet_tagger(cls: Any, *, device: Any = None, folder: Path | None = None) -> Any:
    """What "default" loads when no default captioner is bundled: a `Captioner` (`cls`) of
    the pretrained EfficientNet-Lite0 with its ImageNet classes as tags, nothing else."""
    from captioner.encoders import build_encoder
    from captioner.recognition import RecognitionHead

    log.warning(
        "no bundled default captioner in %s: using the pretrained EfficientNet-Lite0 "
        "ImageNet tagger only (captions and sentiment unavailable)",
        folder or BUNDLED_DIR,
    )
    encoder = build_encoder("efficientnet_lite0", weights="default")
    return cls(
        encoder=encoder,
        recognizer=RecognitionHead.from_imagenet(encoder),
        device=device,
        name="efficientnet_lite0-imagenet",
    )
