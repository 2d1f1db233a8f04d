"""The model-directory schema: one typed `CaptionerConfig` for `config.json`, and strict
weight loading that names what does not fit.

    {"format": "captioner", "version": 1, "name": ..., "max_length": ...,
     "encoder": {...}, "decoder": {...} | null, "recognition": {...} | null,
     "sentiment": {...} | null, "translator": {...} | null}

Each head has its own sub-config dataclass (`SUBCONFIGS`); a missing or null one means the
model has no such head. The recognition head's labels live in `labels.json`, not here.
Adding a head (e.g. a translator): one optional field below and one `SUBCONFIGS` entry;
older directories, which lack the key, still load.

`version` is the schema's version: this code reads 1 and up to `VERSION`; a directory from
a newer captioner is refused with what to do about it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from captioner.checkpoint import CheckpointError
from captioner.decoders import DecoderConfig
from captioner.recognition import RecognitionConfig
from captioner.sentiment import SentimentConfig
from captioner.translator_net import TranslatorConfig

FORMAT, VERSION = "captioner", 1
# The encoder's ImageNet classifier is not part of a captioner's encoder weights (a stored
# recognition head is saved as "recognition.*"); older directories may hold it: ignored.
ENCODER_CLASSIFIER = "classifier."


@dataclass
class EncoderConfig:
    """The image encoder: its registry name (`captioner.encoders.build_encoder`), where its
    pretrained weights come from when they are not stored (None | "default" | a torchvision
    enum name | a local file) and how many of its last blocks train (the rest frozen)."""

    name: str = "efficientnet_lite0"
    weights: str | None = "default"
    trainable_blocks: int = 0


@dataclass
class CaptionerConfig:
    """What `config.json` of a model directory says (see module docstring).

    Args:
        encoder: the CNN and where its weights come from.
        decoder, recognition, sentiment, translator: the heads' configs; None for a head the
            model lacks (a translator directory holds only `translator`, see
            `captioner.translation`).
        name: the model's name in records and the demo.
        max_length: the longest caption the model writes by default.
        generation: the model's own decoding defaults (`GenerationConfig` fields, e.g.
            {"no_repeat_ngram_size": 3}), chosen on its validation data; None: the package's.
        version: schema version (`VERSION` when written by this code).
    """

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    decoder: DecoderConfig | None = None
    recognition: RecognitionConfig | None = None
    sentiment: SentimentConfig | None = None
    translator: TranslatorConfig | None = None
    name: str = "custom"
    max_length: int = 20
    generation: dict[str, Any] | None = None
    version: int = VERSION

    SUBCONFIGS: ClassVar[dict[str, type]] = {
        "decoder": DecoderConfig,
        "recognition": RecognitionConfig,
        "sentiment": SentimentConfig,
        "translator": TranslatorConfig,
    }

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `config.json` (recognition without its labels)."""
        out: dict[str, Any] = {"format": FORMAT, "version": self.version, "name": self.name,
                               "max_length": self.max_length,
                               "encoder": dataclasses.asdict(self.encoder)}  # fmt: skip
        if self.generation is not None:
            out["generation"] = dict(self.generation)
        for key in self.SUBCONFIGS:
            sub = getattr(self, key)
            out[key] = None if sub is None else dataclasses.asdict(sub)
        if out["recognition"] is not None:
            out["recognition"].pop("labels")
        return out

    @classmethod
    def from_dict(
        cls, data: Any, *, labels: list[str] | None = None, source: str = "config.json"
    ) -> CaptionerConfig:
        """Parse and check a `config.json` object; `labels` (from labels.json) complete the
        recognition config. Errors are `CheckpointError`s that name `source` and the key."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a JSON object")
        if data.get("format") != FORMAT:
            raise CheckpointError(
                f"{source}: not a captioner model (format {data.get('format')!r})"
            )
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CheckpointError(
                f"{source}: 'version' must be a positive integer, got {version!r}"
            )
        if version > VERSION:
            raise CheckpointError(
                f"{source}: written by a newer captioner (model schema version {version}; this "
                f"one reads up to {VERSION}). Upgrade: pip install --upgrade captioner"
            )
        known = {"format", "version", "name", "max_length", "generation", "encoder",
                 *cls.SUBCONFIGS}  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"{source}: unknown sections {unknown} (expected {sorted(known)}); "
                "was it written by a newer captioner?"
            )
        if not isinstance(data.get("encoder"), dict):
            raise CheckpointError(f"{source}: 'encoder' must be an object")
        subs = {"encoder": build_subconfig(EncoderConfig, data["encoder"], f"{source}: encoder")}
        for key, kind in cls.SUBCONFIGS.items():
            sub = data.get(key)
            if sub is None:
                continue
            if not isinstance(sub, dict):
                raise CheckpointError(f"{source}: '{key}' must be an object or null")
            if key == "recognition":
                if labels is None:
                    raise CheckpointError(f"{source}: a recognition head needs labels.json")
                sub = {**sub, "labels": labels}
            subs[key] = build_subconfig(kind, sub, f"{source}: {key}")
        name = data.get("name", "custom")
        max_length = data.get("max_length", 20)
        if not isinstance(max_length, int) or max_length < 1:
            raise CheckpointError(f"{source}: 'max_length' must be >= 1, got {max_length!r}")
        generation = _generation(data.get("generation"), source)
        return cls(**subs, name=str(name), max_length=max_length, generation=generation,
                   version=version)  # fmt: skip


def _generation(data: Any, source: str) -> dict[str, Any] | None:
    """The `generation` section: None, or GenerationConfig fields that make a valid one."""
    if data is None:
        return None
    from captioner.decoding import GenerationConfig

    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: 'generation' must be an object or null")
    try:
        GenerationConfig(**data)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: generation: {e}") from None
    return dict(data)


def build_subconfig(
    kind: type,
    data: Any,
    where: str,
    *,
    check_value: Callable[[str, str, Any, Any], None] | None = None,
    **extra: Any,
) -> Any:
    """`kind(**data, **extra)` for one section of `config.json`, or a `CheckpointError` that
    starts with `where` (the file and section): not an object, unknown keys, or a value
    `kind` refuses. `check_value(where, key, value, annotation)` may check each value first
    (`captioner.modelcheck` checks types and ranges before anything is built)."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: expected an object, got {type(data).__name__}")
    fields = {f.name: f.type for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(f"{where}: unknown keys {unknown}; expected {sorted(fields)}")
    if check_value is not None:
        for key, value in data.items():
            check_value(where, key, value, fields[key])
    try:
        return kind(**data, **extra)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {e}") from None


def encoder_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder weights a model directory stores (without the ImageNet classifier)."""
    return {k: v for k, v in encoder.state_dict().items() if not k.startswith(ENCODER_CLASSIFIER)}


def load_strict(
    module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, *, source: str
) -> None:
    """Load the `prefix.*` tensors into `module`, or raise a `CheckpointError` naming the
    missing, unexpected and wrongly shaped keys."""
    p = prefix + "."
    stored = {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}
    own = module.state_dict()
    if prefix == "encoder":
        stored = {k: v for k, v in stored.items() if not k.startswith(ENCODER_CLASSIFIER)}
        own = {k: v for k, v in own.items() if not k.startswith(ENCODER_CLASSIFIER)}
    problems = []
    missing = sorted(set(own) - set(stored))
    unexpected = sorted(set(stored) - set(own))
    shapes = [f"{k} {tuple(stored[k].shape)} != {tuple(own[k].shape)}"
              for k in own if k in stored and stored[k].shape != own[k].shape]  # fmt: skip
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            more = f" (+{len(keys) - 8} more)" if len(keys) > 8 else ""
            problems.append(f"{what}: {', '.join(p + k for k in keys[:8])}{more}")
    if problems:
        raise CheckpointError(
            f"{source}: the {prefix} weights do not match config.json ({'; '.join(problems)})"
        )
    if prefix != "encoder" and any(t.is_meta for t in module.state_dict().values()):
        from captioner.noinit import assign_state  # built by noinit.empty_modules: no copy

        assign_state(module, stored)
        return
    module.load_state_dict(stored, strict=False)  # classifier aside, checked exactly above


def check_consumed(tensors: dict[str, torch.Tensor], prefixes: set[str], *, source: str) -> None:
    """Refuse weights for parts the config does not describe (e.g. a head set to null)."""
    stray = sorted({k.split(".", 1)[0] for k in tensors} - prefixes)
    if stray:
        raise CheckpointError(
            f"{source}: weights for {stray} but config.json describes no such part; "
            "the files do not belong together"
        )
