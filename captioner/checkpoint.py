"""Model directories: `config.json` + `model.safetensors` (+ `vocab.json`, `labels.json`, ...).

The files of a model directory, read and written; `modelcheck.load_model_dir` checks a
directory and loads it through these. Nothing is pickled. Writes are atomic: files go to a temporary sibling directory that is
renamed into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from captioner.atomic import atomic_write, is_inside, kind_of, open_for_reading
from captioner.errors import CaptionerError

CONFIG, WEIGHTS = "config.json", "model.safetensors"


class CheckpointError(CaptionerError, ValueError):
    """A model directory is missing a file or holds a malformed one; the message names it."""


def write_json_atomic(path: str | Path, data: Any) -> None:
    """JSON through the package's one atomic writer (`captioner.atomic.atomic_write`)."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=2, ensure_ascii=False)


MAX_JSON_BYTES = 64 * 1024 * 1024  # config / vocabulary / labels files
MAX_WEIGHTS_BYTES = 64 * 1024**3
MAX_HEADER_BYTES = 64 * 1024 * 1024  # a safetensors header (JSON) of a sane model


def model_file(directory: str | Path, name: str) -> Path:
    """`directory/name` when it is a regular file inside the model directory; a symbolic link
    is accepted only when it stays inside. Anything else is a `CheckpointError` naming it."""
    directory = Path(directory)
    path = directory / name
    if not is_inside(path, directory):
        raise CheckpointError(
            f"{path}: leads out of the model directory (to {os.path.realpath(path)}); refused"
        )
    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: missing file (expected in model directory {directory})")
    try:
        kind = kind_of(os.stat(path).st_mode)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if kind is not None:
        raise CheckpointError(f"{path}: is {kind}, not a regular file; refused")
    return path


def read_model_bytes(directory: str | Path, name: str, *, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a model-directory file (see `model_file`), at most `limit` of them."""
    path = model_file(directory, name)
    try:  # a file swapped for a named pipe since the check cannot hang us
        fd, st = open_for_reading(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        if kind_of(st.st_mode) is not None:
            raise CheckpointError(f"{path}: not a regular file; refused")
        if st.st_size > limit:
            raise CheckpointError(f"{path}: {st.st_size:,} bytes, above the {limit:,}-byte limit")
        return f.read(limit + 1)[:limit]


def read_json(directory: str | Path, name: str) -> Any:
    """A JSON file of a model directory; every problem is a `CheckpointError` naming it."""
    path = Path(directory) / name
    data = read_model_bytes(directory, name)
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{path}: malformed JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:  # also Python's integer digit limit
        raise CheckpointError(f"{path}: malformed JSON ({e})") from None


def read_safetensors_header(directory: str | Path, name: str = "model.safetensors") -> dict:
    """Tensor name -> {"dtype", "shape", "data_offsets"} from a safetensors file's header,
    read without loading any tensor and checked against the file's size."""
    path = model_file(directory, name)
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes, above the {MAX_WEIGHTS_BYTES:,}-byte limit")
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: malformed safetensors file (bad header length)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (RecursionError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: malformed safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: malformed safetensors header (not an object)")
    header.pop("__metadata__", None)
    for key, info in header.items():
        ok = (
            isinstance(info, dict)
            and isinstance(info.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in info["shape"])
            and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2
            and all(isinstance(o, int) for o in info["data_offsets"])
            and 0 <= info["data_offsets"][0] <= info["data_offsets"][1] <= size - 8 - n
        )
        if not ok:
            raise CheckpointError(f"{path}: malformed safetensors header entry {key!r}")
    return header


def save_model_dir(
    directory: str | Path,
    *,
    config: dict,
    tensors: dict[str, torch.Tensor],
    extra_json: dict[str, Any] | None = None,
    extra_bytes: dict[str, bytes] | None = None,
) -> Path:
    """Write a model directory atomically (replacing an existing one); `extra_json` and
    `extra_bytes` are side files (name -> JSON data / raw bytes, e.g. a subword model)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp"))
    tmp.chmod(0o755)  # mkdtemp makes 0700 directories
    try:
        (tmp / CONFIG).write_text(
            json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        # clone: tied weights share storage, which safetensors refuses to write; contiguous:
        # channels-last encoder weights are strided, which it refuses too
        save_file(
            {
                k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                for k, v in tensors.items()
            },
            str(tmp / WEIGHTS),
        )
        for name, data in (extra_json or {}).items():
            (tmp / name).write_text(
                json.dumps(data, indent=0, ensure_ascii=False), encoding="utf-8"
            )
        for name, raw in (extra_bytes or {}).items():
            (tmp / name).write_bytes(raw)
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


def check_finite(tensors: dict[str, torch.Tensor], *, source: Any) -> None:
    """A `CheckpointError` naming `source` and the first tensor holding NaN or infinity (a
    diverged training run): such a model would answer every input with junk."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(
                f"{source}: tensor {name!r} holds NaN or infinite values (a diverged training "
                "run?); refused"
            )


# int8 storage: a large 2-D weight W is stored as int8 Q with one float32 scale per row under
# INT8_SCALE + its name, W ~= Q * scale[:, None] (symmetric, scale = max |row| / 127). It
# halves a float16 bundle's decoder; loading turns the weights back into float16.
INT8_SCALE = "int8_scale."
INT8_MIN_NUMEL = 1 << 16  # smaller tensors (biases, norms, small matrices) stay float16


def quantize_int8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors for int8 storage: large 2-D float weights as int8 + per-row scales, other
    floating-point tensors as float16, the rest unchanged."""
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if t.is_floating_point() and t.dim() == 2 and t.numel() >= INT8_MIN_NUMEL:
            scale = t.float().abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (rows,)
            out[name] = torch.round(t.float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
            out[INT8_SCALE + name] = scale
        else:
            out[name] = t.to(torch.float16) if t.is_floating_point() else t
    return out


def dequantize_int8(tensors: dict[str, torch.Tensor], *, source: Any) -> dict[str, torch.Tensor]:
    """The inverse of `quantize_int8` (float16 weights); tensors without scales pass."""
    scales = {k[len(INT8_SCALE) :]: v for k, v in tensors.items() if k.startswith(INT8_SCALE)}
    if not scales:
        return tensors
    out = {k: v for k, v in tensors.items() if not k.startswith(INT8_SCALE)}
    for name, scale in scales.items():
        q = out.get(name)
        if q is None or q.dtype != torch.int8 or q.dim() != 2 or tuple(scale.shape) != q.shape[:1]:
            raise CheckpointError(f"{source}: {INT8_SCALE}{name} is not the row scale of an "
                                  f"int8 weight {name!r}")  # fmt: skip
        out[name] = (q.float() * scale.float()[:, None]).to(torch.float16)
    return out


def stored_dtype(directory: str | Path) -> torch.dtype | None:
    """How a model directory stores its floating-point weights: torch.int8 (see
    `quantize_int8`), a single float dtype, or None when mixed."""
    header = read_safetensors_header(Path(directory), WEIGHTS)
    if any(k.startswith(INT8_SCALE) for k in header):
        return torch.int8
    kinds = {v.get("dtype") for k, v in header.items() if k != "__metadata__"}
    floats = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}
    found = {floats[d] for d in kinds if d in floats}
    return found.pop() if len(found) == 1 else None


def subset(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix.`, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
