"""The scene world is built once per spec and then read from the disk cache."""

from __future__ import annotations

import pytest

from captioner.data import scene_cache
from captioner.data.spec import load_caption_dataset

SPEC = "scenes:3?num_eval=2&image_size=32"


def test_second_load_comes_from_disk_with_the_same_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path))
    first = load_caption_dataset(SPEC)
    assert len(list((tmp_path / "scenes").iterdir())) == 1

    def no_build(**kw):
        raise AssertionError("rebuilt a cached world")

    monkeypatch.setattr(scene_cache, "build_scene_dataset", no_build)
    again = load_caption_dataset(SPEC)
    for split in first:
        assert again[split]["captions"] == first[split]["captions"]
        assert again[split]["scene"] == first[split]["scene"]
    with pytest.raises(AssertionError, match="rebuilt"):  # another world, or cache=false: built
        load_caption_dataset("scenes:3?num_eval=2&image_size=32&seed=5")
    with pytest.raises(AssertionError, match="rebuilt"):
        load_caption_dataset(SPEC + "&cache=false")


def test_key_follows_data_options_not_speed_options():
    key = scene_cache.scene_cache_key
    assert key({"num_train": 3}) == key({"num_train": 3, "num_proc": 4})
    assert key({"num_train": 3}) == key({"num_train": 3, "seed": 0})  # the default
    assert key({"num_train": 3}) != key({"num_train": 4})
