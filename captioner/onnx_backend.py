"""ONNX Runtime fast path for the image encoder on CPU.

On a CPU, ONNX Runtime runs the convolutional encoder several times faster than PyTorch
eager mode (EfficientNet-Lite0, 224 px, batch 32, 2 threads: ~92 vs ~19 images/s). The
encoder is exported once with `torch.onnx.export`, checked against PyTorch on a random batch,
and cached under `~/.cache/captioner/onnx` (or `$CAPTIONER_CACHE/onnx`), keyed by the
encoder's `cache_key` and a hash of its weights, so a fine-tuned encoder never reuses a stale
export.

`OnnxEncoder` has the `Encoder` interface used at inference (`forward(images) -> (grid,
pooled)`, `transform`, `image_size`, `out_channels`, `classifier`, `categories`, `cache_key`,
`to`, `eval`), so it can replace `captioner.encoder` in a `Captioner`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captioner.errors import CaptionerError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
EXPORT_VERSION = "1"  # bump when the export recipe changes
OPSET = 17
TOLERANCE = 1e-3  # max abs difference of grid / pooled between PyTorch and ONNX Runtime


class OnnxBackendError(CaptionerError, RuntimeError):
    """The ONNX backend is unavailable or the exported model disagrees with PyTorch."""


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_cache_dir() -> Path:
    from captioner.cache import cache_dir

    return cache_dir("onnx")


def resolve_backend(backend: str, device: str | torch.device | None) -> str:
    """'auto' -> 'onnx' on CPU when onnxruntime is installed, else 'torch'."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    on_cpu = torch.device(device or "cpu").type == "cpu"
    if backend == "onnx":
        if not on_cpu:
            raise OnnxBackendError("the onnx backend runs on CPU only; use --backend torch on GPU")
        if not onnx_available():
            raise OnnxBackendError(
                "the onnx backend needs onnxruntime: pip install 'captioner[onnx]'"
            )
        return "onnx"
    if backend == "auto":
        return "onnx" if on_cpu and onnx_available() else "torch"
    return "torch"


def weights_hash(module: nn.Module) -> str:
    """sha256 over parameter/buffer names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_key(encoder: nn.Module) -> str:
    base = f"{encoder.cache_key}|{weights_hash(encoder)}|opset={OPSET}|export={EXPORT_VERSION}"
    return hashlib.sha256(base.encode()).hexdigest()[:20]


def onnx_path_for(encoder: nn.Module, cache_dir: str | os.PathLike | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in encoder.name)
    return Path(cache_dir or default_cache_dir()) / f"{safe}-{export_key(encoder)}.onnx"


class _ExportWrapper(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(images)


def _torch_export(model: nn.Module, example: Tensor, path: str) -> None:
    """TorchScript-based exporter (no extra dependency); the torch.export-based one (needs
    onnxscript) where a future PyTorch drops it."""
    names = {"input_names": ["images"], "output_names": ["grid", "pooled"]}
    try:
        torch.onnx.export(
            model,
            (example,),
            path,
            dynamo=False,
            opset_version=OPSET,
            dynamic_axes={"images": {0: "batch"}, "grid": {0: "batch"}, "pooled": {0: "batch"}},
            **names,
        )
    except (TypeError, NotImplementedError, AttributeError) as legacy_error:
        try:
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(
                model,
                (example,),
                path,
                dynamo=True,
                external_data=False,
                dynamic_shapes={"images": {0: batch}},
                **names,
            )
        except Exception as e:
            raise RuntimeError(f"{legacy_error}; torch.export-based exporter: {e}") from e


def export_encoder(encoder: nn.Module, path: str | os.PathLike, *, batch: int = 2) -> Path:
    """Export `encoder` (on CPU, eval mode) to `path` atomically, with a dynamic batch axis."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = encoder.image_size
    # own generator: exporting must not move the caller's random stream (training seeds)
    example = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer / deprecation notices, expected here
            _torch_export(_ExportWrapper(encoder).cpu(), example, tmp)
        os.replace(tmp, path)
    finally:
        encoder.train(was_training)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not threads:
        from captioner.cpus import plan_cores

        threads = plan_cores().encoder_threads  # cgroup / affinity aware, unlike torch's
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Threads sleep between batches instead of spinning: the image decoders share the cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """An `Encoder` whose forward runs in ONNX Runtime (CPU). Build with `load_onnx_encoder`."""

    def __init__(
        self, encoder: nn.Module, *, path: Path, threads: int | None = None, chunk: int = 8
    ):
        self.torch_encoder = encoder
        # Runs of `chunk` images: as fast as larger ones on CPU, with ~4x less activation
        # memory than batches of 32 (EfficientNet-Lite0: peak RSS 1.3 vs 1.9 GB).
        self.chunk = chunk
        self.path = Path(path)
        self.session = _session(self.path, threads)
        for attr in (
            "name",
            "weights",
            "out_channels",
            "image_size",
            "transform",
            "mean",
            "std",
            "classifier",
            "categories",
            "cache_key",
        ):
            setattr(self, attr, getattr(encoder, attr, None))
        self.trainable_blocks = 0
        self.training = False
        self.device = torch.device("cpu")

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:  # (B, 3, S, S)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected images of shape (B, 3, H, W), got {tuple(images.shape)}"
            )
        x = np.ascontiguousarray(images.detach().cpu().float().numpy())
        outs = [
            self.session.run(None, {"images": x[i : i + self.chunk]})
            for i in range(0, len(x), self.chunk)
        ]
        if len(outs) == 1:
            grid, pooled = outs[0]
        else:
            grid, pooled = (np.concatenate(parts) for parts in zip(*outs))
        return torch.from_numpy(grid), torch.from_numpy(pooled)  # (B, N, C), (B, C)

    __call__ = forward

    def to(self, device: str | torch.device | None = None, *args: Any, **kw: Any) -> OnnxEncoder:
        if device is not None and not isinstance(device, torch.dtype):
            if torch.device(device).type != "cpu":
                raise OnnxBackendError("OnnxEncoder runs on CPU only")
        return self

    def eval(self) -> OnnxEncoder:
        return self

    def train(self, mode: bool = True) -> OnnxEncoder:
        if mode:
            raise OnnxBackendError("OnnxEncoder is for inference only; train the torch encoder")
        return self

    def parameters(self):
        return iter(())

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.name!r}, path={str(self.path)!r})"


def max_difference(
    encoder: nn.Module, onnx_encoder: OnnxEncoder, *, batch: int = 2, seed: int = 0
) -> float:
    """Largest abs difference of (grid, pooled) between PyTorch and ONNX Runtime."""
    gen = torch.Generator().manual_seed(seed)
    size = encoder.image_size
    x = torch.randn(batch, 3, size, size, generator=gen)
    with torch.inference_mode():
        ref = encoder.cpu().eval()(x)
    got = onnx_encoder(x)
    return max(float((a - b).abs().max()) for a, b in zip(ref, got))


def load_onnx_encoder(
    encoder: nn.Module,
    *,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    verify: bool = True,
) -> OnnxEncoder:
    """The ONNX Runtime version of `encoder`, exported on first use and cached.

    A fresh export is checked against PyTorch (max abs difference <= 1e-3 on a random batch)
    before it is kept; a failing check raises `OnnxBackendError` and leaves no file.
    """
    if not onnx_available():
        raise OnnxBackendError("the onnx backend needs onnxruntime: pip install 'captioner[onnx]'")
    encoder = encoder.cpu().eval()
    path = onnx_path_for(encoder, cache_dir)
    if path.is_file():
        try:
            return OnnxEncoder(encoder, path=path, threads=threads)
        except Exception as e:  # a damaged cache file: export again
            log.warning("%s: unreadable cached ONNX model (%s); exporting again", path, e)
            path.unlink(missing_ok=True)
    log.info("exporting encoder %s to ONNX (once): %s", encoder.name, path)
    fresh = path.with_name(f".{path.stem}.{os.getpid()}.onnx")
    try:
        export_encoder(encoder, fresh)
        candidate = OnnxEncoder(encoder, path=fresh, threads=threads)
        if verify:
            diff = max_difference(encoder, candidate)
            if not diff <= TOLERANCE:
                raise OnnxBackendError(
                    f"ONNX export of {encoder.name} disagrees with PyTorch (max abs difference "
                    f"{diff:.2e} > {TOLERANCE:.0e}); use --backend torch"
                )
        os.replace(fresh, path)  # the session already holds the model in memory
        candidate.path = path
    except OnnxBackendError:
        raise
    except Exception as e:
        raise OnnxBackendError(f"could not export encoder {encoder.name} to ONNX: {e}") from e
    finally:
        fresh.unlink(missing_ok=True)
    return candidate


def encoder_for_backend(
    encoder: Any,
    backend: str,
    device: str | torch.device | None,
    *,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> tuple[Any, str]:
    """(the encoder to run, "onnx" | "torch") for `backend` on `device`: the ONNX Runtime copy
    when the backend resolves to onnx, else the PyTorch encoder (an `OnnxEncoder` passed in is
    unwrapped first). An export that fails raises with backend="onnx"; with "auto" it falls
    back to PyTorch with a warning. A PyTorch encoder on a CPU runs channels-last (~1.7x
    faster), for the API and labeling alike, so both get the same features."""
    encoder = getattr(encoder, "torch_encoder", encoder)
    if resolve_backend(backend, device) == "onnx":
        try:
            return load_onnx_encoder(encoder, cache_dir=cache_dir, threads=threads), "onnx"
        except OnnxBackendError as e:
            if backend == "onnx":
                raise
            log.warning("ONNX backend unavailable (%s); the encoder runs in PyTorch", e)
    if torch.device(device or "cpu").type == "cpu" and hasattr(encoder, "use_channels_last"):
        encoder.use_channels_last()
    return encoder, "torch"
