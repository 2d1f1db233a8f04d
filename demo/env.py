"""Offline, private settings for Gradio. Import this module before `gradio`: Gradio reads
them when it is imported (its temporary directory) or when an app is built (analytics)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path


def prepare_environment() -> Path:
    """Turn off analytics, the version check, telemetry and server-side rendering, keep
    localhost off any proxy, and give the demo its own temporary directory (removed at exit)
    unless GRADIO_TEMP_DIR names one. Returns that directory."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # also stops the PyPI version check
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")  # no Node server
    for key in ("NO_PROXY", "no_proxy"):  # Gradio pings its own local URL at launch
        hosts = [h for h in os.environ.get(key, "").split(",") if h]
        os.environ[key] = ",".join(
            hosts + [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        )
    if not os.environ.get("GRADIO_TEMP_DIR"):
        temp = tempfile.mkdtemp(prefix="captioner-demo-")
        atexit.register(shutil.rmtree, temp, ignore_errors=True)
        os.environ["GRADIO_TEMP_DIR"] = temp
        if "gradio" in sys.modules:
            warnings.warn(
                "gradio was imported before captioner.demo: some of its files may go to its "
                "default temporary directory instead of " + temp,
                stacklevel=2,
            )
    return Path(os.environ["GRADIO_TEMP_DIR"])


TEMP_DIR = prepare_environment()
