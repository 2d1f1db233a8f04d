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
