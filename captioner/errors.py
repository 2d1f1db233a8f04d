"""The one base class of the errors captioner raises for bad input, data or models.

Every domain error (`ImageLoadError`, `CheckpointError`, `DataError`, `ConfigError`, ...)
derives from `CaptionerError` and keeps its older base (`ValueError`, `RuntimeError`, ...),
so code that caught those still works. The command line turns a `CaptionerError` into one
line on stderr and exit status 2, whatever the command.
"""

from __future__ import annotations


class CaptionerError(Exception):
    """Bad input, data, settings or model files; the message names the problem."""


class DeviceError(CaptionerError, ValueError):
    """A device name that is malformed or not present on this machine."""


class MissingHeadError(CaptionerError, RuntimeError):
    """The model lacks the head (caption, tag, sentiment) a call needs."""


class ModelNotFoundError(CaptionerError, FileNotFoundError):
    """No model directory, bundled model or hub repository of that name."""


class ArgumentValueError(CaptionerError, ValueError):
    """An argument value that makes no sense (a batch size of 0, a NaN setting)."""


def check_batch_size(batch_size: object) -> int:
    """`batch_size` when it is an integer >= 1, else `ArgumentValueError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def one_line(e: BaseException) -> str:
    """The gist of an exception's message in one line. torch.load's refusal of a pickle
    runs to many lines; it becomes one naming what the pickle held."""
    text = str(e)
    if "Weights only load failed" in text:
        found = [ln.strip() for ln in text.splitlines() if "WeightsUnpickler error" in ln]
        why = found[0].split("error:", 1)[-1].strip() if found else "not plain tensors"
        return f"a pickle holding more than tensors ({why}); it is never unpickled"
    return " ".join(text.split()) or type(e).__name__
