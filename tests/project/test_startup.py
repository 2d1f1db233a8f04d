"""Start-up stays fast (issue 25): the CLI and the commands that only run models import no
nltk, torchvision, gradio, pandas, datasets, onnx or torch._dynamo, and what replaced
torchvision on the inference path gives torchvision's results exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from captioner.encoders import IMAGENET_CATEGORIES, ImageTransform, resize_square

HEAVY = ("nltk", "torchvision", "gradio", "pandas", "datasets", "onnx", "torch._dynamo")


def imported_heavy(code: str, tmp_path) -> list[str]:
    """The HEAVY modules imported by running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "CAPTIONER_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         check=True, timeout=300)  # fmt: skip
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(m for m in HEAVY if m in modules)


def test_the_cli_entry_point_imports_nothing_heavy(tmp_path):
    assert imported_heavy("import captioner.cli.main", tmp_path) == []


@pytest.mark.slow
def test_sentiment_and_translate_import_nothing_heavy(tmp_path):
    code = (
        "from captioner.cli.main import main\n"
        "assert main(['sentiment', 'what a lovely day']) == 0\n"
        "assert main(['translate', 'a dog runs on the grass', '--to', 'de']) == 0"
    )
    assert imported_heavy(code, tmp_path) == []


@pytest.mark.slow
def test_caption_imports_nothing_heavy(tmp_path):
    from captioner.model_dir import BUNDLED_DIR

    if not (BUNDLED_DIR / "default" / "config.json").is_file():
        pytest.skip("no bundled default model")
    image = tmp_path / "grey.jpg"
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(image)
    # --backend torch: the ONNX export (which needs `onnx`) belongs to the first run only
    code = (
        "from captioner.cli.main import main\n"
        f"assert main(['caption', {str(image)!r}, '--backend', 'torch']) == 0"
    )
    assert imported_heavy(code, tmp_path) == []


@pytest.mark.slow
def test_warm_caption_with_the_onnx_encoder_imports_nothing_heavy(tmp_path):
    """The default backend on a CPU: the first run exports the encoder (that needs `onnx`),
    a second run with the export cached runs it in ONNX Runtime and imports none of HEAVY."""
    from captioner.model_dir import BUNDLED_DIR

    if not (BUNDLED_DIR / "default" / "config.json").is_file():
        pytest.skip("no bundled default model")
    pytest.importorskip("onnxruntime")
    image = tmp_path / "grey.jpg"
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(image)
    code = f"from captioner.cli.main import main\nassert main(['caption', {str(image)!r}]) == 0"
    imported_heavy(code, tmp_path)  # cold: exports the encoder into tmp_path / "cache"
    assert list((tmp_path / "cache").rglob("*.onnx")), "the encoder was not exported"
    assert imported_heavy(code, tmp_path) == []


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest", "lanczos"])
def test_transform_gives_torchvisions_pixels(interpolation):
    import torchvision.transforms.functional as TF

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    mode = TF.InterpolationMode(interpolation)
    ours = resize_square(image, 24, interpolation)
    theirs = TF.resize(image, [24, 24], interpolation=mode, antialias=True)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = ImageTransform(24, mean, std, interpolation)(image)
    want = TF.normalize(TF.to_tensor(theirs), list(mean), list(std))
    assert got.is_contiguous() and got.dtype == torch.float32
    assert torch.equal(got, want)


def test_bundled_imagenet_categories_are_torchvisions():
    import torchvision.models as tvm

    ours = json.loads(IMAGENET_CATEGORIES.read_text(encoding="utf-8"))
    assert ours == list(tvm.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
