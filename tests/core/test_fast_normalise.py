"""`ImageTransform.normalise` converts into the (B, 3, S, S) layout a few images at a time
(issue 25): the same floats, bit for bit, as the straightforward conversion it replaced."""

from __future__ import annotations

import pytest
import torch

from captioner.encoders import NORMALISE_CHUNK, ImageTransform


def reference(t: ImageTransform, batch: torch.Tensor) -> torch.Tensor:
    """The conversion before issue 25: compute in the (B, S, S, 3) layout, copy at the end."""
    mean = torch.tensor(t.mean, dtype=torch.float32)
    std = torch.tensor(t.std, dtype=torch.float32)
    x = batch.permute(0, 3, 1, 2).to(torch.float32).div_(255)
    return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1)).contiguous()


@pytest.mark.parametrize("images", [0, 1, NORMALISE_CHUNK - 1, NORMALISE_CHUNK, 9])
def test_normalise_gives_the_same_floats_as_before(images):
    t = ImageTransform(size=16, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    g = torch.Generator().manual_seed(images)
    batch = torch.randint(0, 256, (images, 16, 16, 3), dtype=torch.uint8, generator=g)
    if images:
        batch.view(-1)[:768] = torch.arange(768) % 256  # every byte value in every channel
    got = t.normalise(batch)
    assert got.shape == (images, 3, 16, 16) and got.is_contiguous()
    assert torch.equal(got, reference(t, batch))
