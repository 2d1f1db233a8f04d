"""Build modules without random initialisation, then hand them their stored weights.

A module built to be loaded from a checkpoint does not need the random values its
constructor draws (`nn.Embedding` fills a vocabulary-sized table from a normal distribution):
they are overwritten at once. `empty_modules()` builds on PyTorch's "meta" device (shapes
only, no memory) with every `torch.nn.init` function skipped; on "meta" those functions
would even import `torch._dynamo` (about 2 s). `assign_state(module, tensors)` then gives
such a module the loaded tensors themselves (`load_state_dict(assign=True)`: no copy), cast
to each parameter's dtype, with tied parameters kept tied and nothing left on "meta".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

_INIT_FUNCTIONS = frozenset(
    getattr(nn.init, name)
    for name in dir(nn.init)
    if name.endswith("_") and not name.startswith("_") and callable(getattr(nn.init, name))
)


class _SkipInit(TorchFunctionMode):
    """`torch.nn.init.*_(tensor, ...)` returns `tensor` untouched; everything else runs."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _INIT_FUNCTIONS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


@contextlib.contextmanager
def empty_modules(device: str | torch.device = "meta") -> Iterator[None]:
    """Modules built inside are made on `device` (default "meta": no memory) and skip
    `torch.nn.init`: their parameters hold no meaningful values until loaded."""
    with torch.device(device), _SkipInit():
        yield


def _tied_names(module: nn.Module) -> dict[str, str]:
    """Parameter name -> the first name of the same parameter, for each tied duplicate."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied[name] = first[id(param)]
        else:
            first[id(param)] = name
    return tied


def _set_parameter(module: nn.Module, name: str, param: nn.Parameter) -> None:
    owner_name, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner_name) if owner_name else module, leaf, param)


def assign_state(module: nn.Module, tensors: dict[str, Tensor], *, strict: bool = True) -> None:
    """Load `tensors` into `module` (typically built by `empty_modules`) by assignment: each
    parameter and buffer becomes the stored tensor, cast to its own dtype; parameters tied in
    the module (one object under two names) stay one object. Missing or unexpected keys and
    wrong shapes raise as `load_state_dict` does; a tensor the state did not cover and still
    on "meta" is a `RuntimeError`."""
    own = module.state_dict(keep_vars=True)
    cast = {k: v.to(own[k].dtype) if k in own else v for k, v in tensors.items()}
    tied = _tied_names(module)
    module.load_state_dict(cast, strict=strict, assign=True)
    for name, source in tied.items():
        _set_parameter(module, name, module.get_parameter(source))
    left = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"not loaded (still on the meta device): {', '.join(left[:8])}")
