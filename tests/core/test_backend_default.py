"""CPU users get the fast path by default: `from_pretrained` runs the encoder in ONNX Runtime
on CPU (same captions within the export's tolerance); `backend="torch"` opts out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests_support import tiny_model_dir

from captioner import Captioner

pytest.importorskip("onnxruntime")


def test_from_pretrained_picks_onnx_on_cpu_and_torch_on_request(tmp_path):
    directory = tiny_model_dir(tmp_path, encoder="mobilenet_v3_small")
    fast = Captioner.from_pretrained(directory, device="cpu")
    eager = Captioner.from_pretrained(directory, device="cpu", backend="torch")
    assert type(fast.encoder).__name__ == "OnnxEncoder"
    assert isinstance(eager.encoder, torch.nn.Module) and not hasattr(
        eager.encoder, "torch_encoder"
    )
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    grid_fast, _ = fast.encoder(fast.preprocess([image]))
    grid_eager, _ = eager.encoder(eager.preprocess([image]))
    assert torch.allclose(grid_fast, grid_eager, atol=1e-3)
    assert fast.caption(image) == eager.caption(image)
