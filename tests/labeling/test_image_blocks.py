"""Decoding workers let Pillow reuse freed image memory (issue 25): with `captioner label`'s
1 MiB mmap threshold each decoded photo was otherwise mapped and faulted in anew."""

from __future__ import annotations

import pytest
from labeling_support import make_photos
from PIL import Image

from captioner.labeling import loader
from captioner.labeling.engine import pixel_spec
from captioner.labeling.scan import ScanOptions


@pytest.fixture
def blocks():
    before = Image.core.get_blocks_max()
    Image.core.set_blocks_max(0)
    yield
    Image.core.set_blocks_max(before)


def test_reuse_image_blocks_keeps_a_few_blocks_and_never_lowers_a_setting(blocks):
    loader.reuse_image_blocks()
    assert Image.core.get_blocks_max() == loader.IMAGE_BLOCKS_KEPT
    Image.core.set_blocks_max(loader.IMAGE_BLOCKS_KEPT + 5)
    loader.reuse_image_blocks(0)
    assert Image.core.get_blocks_max() == loader.IMAGE_BLOCKS_KEPT + 5


def test_the_loader_sets_it_here_and_in_each_worker(tmp_path, blocks):
    from labeling_support import tiny_model

    make_photos(tmp_path, 5)
    spec = pixel_spec(tiny_model().encoder)
    dataset = loader.FolderBatches([str(tmp_path)], scan=ScanOptions(), skip=set(), spec=spec,
                                   batch_size=2)  # fmt: skip
    made = loader.make_loader(dataset, workers=1)
    assert Image.core.get_blocks_max() == loader.IMAGE_BLOCKS_KEPT
    assert made.worker_init_fn is loader.reuse_image_blocks
    assert sum(len(b.items) for b in made) == 5
    assert loader.make_loader(dataset, workers=0).worker_init_fn is None
