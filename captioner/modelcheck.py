"""Check a captioner model directory before anything in it is built or loaded.

`load_model_dir(directory)` reads a model directory's config and tensors, checked.
`check_model_dir(directory, config, header)` is called by it with the parsed `config.json` and the safetensors header (names, dtypes and shapes only). It
checks every config value's type and range, builds each head on PyTorch's "meta" device (no
memory) to compare every parameter's shape with the header, checks that `vocab.json`,
`sentiment_vocab.json` and `labels.json` match the sizes the weights were trained with, and
that an encoder weights file lies inside the model directory. Every error is a
`CheckpointError` that names the file at fault. Returns the config with the encoder weights
path made absolute (a relative path means "in the model directory", never the current one).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from captioner.checkpoint import (
    CONFIG,
    WEIGHTS,
    CheckpointError,
    check_finite,
    dequantize_int8,
    model_file,
    read_json,
    read_safetensors_header,
)
from captioner.noinit import empty_modules

MAX_DIM = 1 << 22  # any width or vocabulary size (4M); the header check bounds memory anyway
LIMITS = {"num_layers": (1, 16), "max_length": (1, 1024)}
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")


def _check_value(where: str, key: str, value: Any, annotation: str) -> None:
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None and "None" in kinds:
        return
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }
    if not any(ok.get(k, True) for k in kinds):
        raise CheckpointError(f"{where}: {key} must be {annotation}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, hi = LIMITS.get(key, (0, MAX_DIM))
    if key == "dropout":
        lo, hi = 0.0, 0.999
    if not (math.isfinite(value) and lo <= value <= hi):
        raise CheckpointError(f"{where}: {key} = {value!r} is out of range [{lo}, {hi}]")


def _check_shapes(
    weights: Path, header: dict, prefix: str, build: Callable[[], torch.nn.Module]
) -> None:
    """The module `build` makes (on the meta device: no memory) against the header."""
    with empty_modules():  # meta device, no torch.nn.init (which would import torch._dynamo)
        expected = {f"{prefix}.{k}": list(v.shape) for k, v in build().state_dict().items()}
    stored = {k: v["shape"] for k, v in header.items() if k.startswith(prefix + ".")}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} and config.json ({prefix}) do not match: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for key, shape in expected.items():
        if stored[key] != shape:
            raise CheckpointError(
                f"{weights} and config.json do not match: {key} has shape {stored[key]}, "
                f"config.json's {prefix} needs {shape}"
            )


def _vocab_size(directory: Path, name: str, needed: int) -> None:
    data = read_json(directory, name)
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise CheckpointError(f"{directory / name}: 'tokens' must be a list of strings")
    if len(tokens) != needed:
        raise CheckpointError(
            f"{directory / name}: {len(tokens)} words, but the weights were trained with "
            f"{needed}; the vocabulary belongs to another model"
        )


def _encoder_weights(directory: Path, enc: dict) -> dict:
    weights = enc.get("weights")
    if weights is None or weights in ("default", "DEFAULT"):
        return enc
    if not isinstance(weights, str) or not weights:
        raise CheckpointError(f"{directory / CONFIG}: encoder.weights must be a string or null")
    looks_like_file = (
        "/" in weights
        or "\\" in weights
        or weights.startswith(".")
        or weights.lower().endswith(WEIGHT_SUFFIXES)
        or os.path.lexists(directory / weights)
    )
    if not looks_like_file:
        if os.path.lexists(weights):  # the encoder builder would read it from the current folder
            raise CheckpointError(
                f"{directory / CONFIG}: encoder.weights {weights!r} names a file in the current "
                "folder, not in the model directory; refused"
            )
        return enc  # a weights name such as IMAGENET1K_V1
    if os.path.isabs(weights):
        raise CheckpointError(
            f"{directory / CONFIG}: encoder.weights {weights!r} must be a file inside the model "
            "directory (a relative path)"
        )
    path = model_file(directory, weights)  # inside, regular file
    return {**enc, "weights": str(path.resolve())}


def _heads() -> dict[str, tuple[type, str | None]]:
    """Each head's section of config.json -> (its module class, its vocabulary file)."""
    from captioner.decoders import CaptionDecoder
    from captioner.recognition import RecognitionHead
    from captioner.sentiment import SentimentModel
    from captioner.translator_net import Translator

    return {
        "decoder": (CaptionDecoder, "vocab.json"),
        "recognition": (RecognitionHead, None),
        "sentiment": (SentimentModel, "sentiment_vocab.json"),
        "translator": (Translator, None),
    }


def _labels(directory: Path) -> list[str]:
    labels = read_json(directory, "labels.json")
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        raise CheckpointError(f"{directory / 'labels.json'}: expected a list of strings")
    return labels


def check_model_dir(directory: str | Path, config: dict, header: dict) -> dict:
    """See the module docstring."""
    from captioner.model_config import CaptionerConfig, build_subconfig

    directory = Path(directory)
    where, weights = str(directory / CONFIG), directory / WEIGHTS
    if "max_length" in config:
        _check_value(where, "max_length", config["max_length"], "int")
    enc = config.get("encoder")
    if not isinstance(enc, dict) or not isinstance(enc.get("name"), str):
        raise CheckpointError(f"{where}: 'encoder' must be an object with a 'name'")
    config = {**config, "encoder": _encoder_weights(directory, enc)}
    heads = _heads()
    for key, kind in CaptionerConfig.SUBCONFIGS.items():  # the schema's heads, in its order
        if not config.get(key):
            continue
        extra = {"labels": _labels(directory)} if key == "recognition" else {}
        sub = build_subconfig(kind, config[key], f"{where} ({key})", check_value=_check_value,
                              **extra)  # fmt: skip
        module, vocab_file = heads[key]
        _check_shapes(weights, header, key, functools.partial(module, sub))
        if vocab_file:
            _vocab_size(directory, vocab_file, sub.vocab_size)
    return config


def load_model_dir(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read `config.json` and `model.safetensors`; clear errors name the bad file. Only
    regular files inside the directory are read; a captioner model's config is checked
    (`check_model_dir`: types, ranges, every size against the safetensors header,
    vocabulary and label counts, the encoder weights file) before any tensor is loaded or
    module built."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a model directory")
    config = read_json(directory, CONFIG)
    if not isinstance(config, dict):
        raise CheckpointError(f"{directory / CONFIG}: expected a JSON object")
    header = read_safetensors_header(directory, WEIGHTS)
    if config.get("format") == "captioner":
        config = check_model_dir(directory, config, header)  # before anything is built
    weights = directory / WEIGHTS
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: malformed safetensors file ({e})") from None
    check_finite(tensors, source=weights)
    return config, dequantize_int8(tensors, source=weights)
