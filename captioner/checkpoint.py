"""Model directories: `config.json` + `model.safetensors` (+ `vocab.json`, `labels.json`, ...).

Nothing is pickled. Writes are atomic: files go to a temporary sibling directory that is
renamed into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from captioner.errors import CaptionerError

CONFIG, WEIGHTS = "config.json", "model.safetensors"


class CheckpointError(CaptionerError, ValueError):
    """A model directory is missing a file or holds a malformed one; the message names it."""


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a model is meant to be shared
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(directory: str | Path, name: str) -> Any:
    path = Path(directory) / name
    if not path.is_file():
        raise CheckpointError(f"{path}: missing file (expected in model directory {directory})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: malformed JSON ({e})") from None


def save_model_dir(
    directory: str | Path,
    *,
    config: dict,
    tensors: dict[str, torch.Tensor],
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory atomically (replacing an existing one)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp"))
    tmp.chmod(0o755)  # mkdtemp makes 0700 directories
    try:
        (tmp / CONFIG).write_text(
            json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        # clone: tied weights share storage, which safetensors refuses to write
        save_file({k: v.detach().cpu().clone() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        for name, data in (extra_json or {}).items():
            (tmp / name).write_text(
                json.dumps(data, indent=0, ensure_ascii=False), encoding="utf-8"
            )
        for f in tmp.iterdir():
            f.chmod(0o644)  # safetensors writes 0600 files
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_model_dir(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read `config.json` and `model.safetensors`; clear errors name the bad file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a model directory")
    config = read_json(directory, CONFIG)
    if not isinstance(config, dict):
        raise CheckpointError(f"{directory / CONFIG}: expected a JSON object")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing file (expected in model directory {directory})")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: malformed safetensors file ({e})") from None
    return config, tensors


def subset(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix.`, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
