"""Shared test set-up: offline, deterministic, small thread pools (tests use tiny tensors,
where one thread beats many on a shared 2-core machine), and every cache in a temporary
folder of this run: the suite never writes into the user's ~/.cache (ONNX exports, datasets
and hub caches, onnxruntime's and matplotlib's files)."""

import atexit
import os
import shutil
import sys
import tempfile

# The test modules live in subfolders (tests/core, tests/labeling, ...) and import the shared
# helpers here (tests_support, labeling_support, attack_corpus, conftest) by their bare names.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Set before anything imports datasets / huggingface_hub / onnxruntime: they read these once.
CACHE_ROOT = tempfile.mkdtemp(prefix="captioner-tests-")
atexit.register(shutil.rmtree, CACHE_ROOT, ignore_errors=True)
CACHE_ENV = {
    "XDG_CACHE_HOME": "xdg-cache",
    "XDG_CONFIG_HOME": "xdg-config",
    "CAPTIONER_CACHE": "captioner",  # fetched corpora, feature cache, ONNX exports
    "HF_HOME": "huggingface",  # hub and datasets caches
    "TORCH_HOME": "torch",
    "MPLCONFIGDIR": "matplotlib",
    "GRADIO_TEMP_DIR": "gradio",  # the demo's uploads and batch results
}
for _key, _sub in CACHE_ENV.items():
    os.environ[_key] = os.path.join(CACHE_ROOT, _sub)
for _key in (
    "HF_DATASETS_CACHE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
):  # would win over HF_HOME
    os.environ.pop(_key, None)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
