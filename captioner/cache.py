"""The one place that says where captioner caches files: fetched corpora, rendered SVG
stamps, encoder features, ONNX exports, the scene world."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$CAPTIONER_CACHE`, else `$XDG_CACHE_HOME/captioner`, else `~/.cache/captioner`."""
    env = os.environ.get("CAPTIONER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "captioner"


def cache_dir(name: str) -> Path:
    """The cache folder of one kind of file, e.g. `cache_dir("onnx")` (not created)."""
    return cache_root() / name
