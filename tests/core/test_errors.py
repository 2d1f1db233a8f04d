"""Every error class of the library derives from CaptionerError (the command line's one
error-to-exit-status rule) and keeps its older base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import captioner
from captioner.errors import CaptionerError

# Not errors about the input: control flow (a clean stop).
CONTROL = {"captioner.labeling.pipeline.Interrupted"}
SKIP = ("captioner.demo", "captioner.models", "captioner.__main__", "captioner.data.__main__")


def _modules():
    for info in pkgutil.walk_packages(captioner.__path__, "captioner."):
        if not info.name.startswith(SKIP):
            yield importlib.import_module(info.name)


def test_every_library_error_is_a_captioner_error():
    found = {}
    for module in _modules():
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and obj.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = obj
    assert len(found) >= 12, sorted(found)
    strays = [
        n for n, cls in found.items() if n not in CONTROL and not issubclass(cls, CaptionerError)
    ]
    assert not strays, strays


def test_old_bases_still_catch_them():
    from captioner.checkpoint import CheckpointError
    from captioner.data.common import DataError
    from captioner.imageio import ImageLoadError
    from captioner.onnx_backend import OnnxBackendError
    from captioner.pipelines.config import ConfigError

    for cls, base in ((ImageLoadError, ValueError), (CheckpointError, ValueError),
                      (DataError, ValueError), (ConfigError, ValueError),
                      (OnnxBackendError, RuntimeError)):  # fmt: skip
        assert issubclass(cls, base) and issubclass(cls, CaptionerError)


def test_a_missing_local_path_is_not_mistaken_for_a_hub_id():
    import pytest

    from captioner.api import Captioner
    from captioner.errors import ModelNotFoundError

    for name in ("/nope", "./nope", "~/nope"):
        with pytest.raises(ModelNotFoundError, match="no such model directory"):
            Captioner.from_pretrained(name)
