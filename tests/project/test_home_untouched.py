"""The test suite leaves the user's home directory alone: tests/conftest.py points every cache
(ONNX exports, datasets and hub caches, onnxruntime's and matplotlib's files) at a temporary
folder. Checked by running cache-heavy test files in a child pytest whose HOME is an empty
folder, with none of the cache variables set, and finding that folder still empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CACHE_ENV

ROOT = Path(__file__).resolve().parents[2]
# ONNX export + onnxruntime, datasets' cache, Gradio, the hub client
FILES = [
    "core/test_onnx_backend.py",
    "data/test_data_sources.py",
    "demo/test_demo_launch.py",
    "core/test_hub.py",
]


@pytest.mark.slow
def test_suite_writes_nothing_under_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    drop = {*CACHE_ENV, "HF_DATASETS_CACHE", "HF_HUB_CACHE", "GRADIO_TEMP_DIR", "PYTEST_ADDOPTS"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_")}
    env["HOME"] = str(home)
    args = ["-q", "-x", "-p", "no:cacheprovider", *(f"tests/{f}" for f in FILES)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == [], f"tests wrote under HOME: {written[:20]}"


def test_every_cache_of_this_run_is_in_its_temporary_folder():
    import datasets
    import huggingface_hub.constants as hub
    from conftest import CACHE_ROOT

    from captioner.cache import cache_root
    from captioner.data.features import feature_cache_dir
    from captioner.onnx_backend import default_cache_dir

    for path in (
        cache_root(),
        default_cache_dir(),
        feature_cache_dir(),
        Path(datasets.config.HF_DATASETS_CACHE),
        Path(hub.HF_HUB_CACHE),
    ):
        assert path.resolve().is_relative_to(Path(CACHE_ROOT).resolve()), path
