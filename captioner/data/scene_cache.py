"""The scene world, generated once per spec and kept on disk.

`cached_scene_dataset(**options)` builds the world with `build_scene_dataset(**options)` the
first time and saves it under `cache_dir("scenes")/KEY`; later calls with the same options
load it from there (memory-mapped Arrow: well under a second instead of seconds to minutes).
KEY hashes the options that change the data and the source of the generator itself, so
editing the scene grammar never serves a stale world.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from captioner import scene_grammar
from captioner.cache import cache_dir
from captioner.data import scenes
from captioner.data.common import quiet_datasets
from captioner.data.scenes import build_scene_dataset

log = logging.getLogger(__name__)

# Options that change how fast the world is built, not what it holds.
_SPEED_ONLY = frozenset({"num_proc"})


def scene_cache_key(options: dict[str, Any]) -> str:
    """A hash of the data-changing options (defaults filled in) and the generator's source."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(scenes.build_scene_dataset).parameters.items()
        if p.default is not p.empty
    }
    settings = {k: v for k, v in {**defaults, **options}.items() if k not in _SPEED_ONLY}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for module in (scenes, scene_grammar):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:20]


def cached_scene_dataset(*, cache: bool = True, **options: Any):
    """`build_scene_dataset(**options)`, from the disk cache when it holds this world.

    Args:
        cache: False builds the world afresh and leaves the cache alone.
        **options: `build_scene_dataset` keyword arguments (num_train, num_eval, seed,
            image_size, num_proc).
    """
    from datasets import load_from_disk

    if not cache:
        return build_scene_dataset(**options)
    target = cache_dir("scenes") / scene_cache_key(options)
    if (target / "dataset_dict.json").is_file():
        log.info("scene world from the cache %s", target)
        return load_from_disk(str(target))
    dsd = build_scene_dataset(**options)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with quiet_datasets():
            dsd.save_to_disk(tmp)
        os.replace(tmp, target)  # whole or not at all; a parallel run may have won the race
    except OSError as e:
        if not (target / "dataset_dict.json").is_file():
            log.warning("could not cache the scene world in %s: %s", target, e)
            return dsd
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_from_disk(str(target))


def _signature() -> inspect.Signature:
    """build_scene_dataset's keyword options plus `cache`: what a `scenes` spec accepts."""
    sig = inspect.signature(build_scene_dataset)
    flag = inspect.Parameter("cache", inspect.Parameter.KEYWORD_ONLY, default=True)
    return sig.replace(parameters=[flag, *sig.parameters.values()])


cached_scene_dataset.__signature__ = _signature()  # type: ignore[attr-defined]
