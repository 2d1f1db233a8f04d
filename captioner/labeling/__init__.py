"""Batch labeling of image folders: `captioner label DIR` (see `captioner.cli.label`).

Python use::

    from captioner import Captioner
    from captioner.labeling import LabelEngine, LabelOptions, label_folders

    engine = LabelEngine(Captioner.from_pretrained("default", backend="torch"))
    summary = label_folders(["photos/"], engine, LabelOptions(formats=("jsonl", "csv")))

Names load on first use, so `captioner label --help` does not import torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_WHERE = {
    "EngineOptions": "engine",
    "LabelEngine": "engine",
    "LabelOptions": "pipeline",
    "LabelSummary": "pipeline",
    "label_folders": "pipeline",
    "merge_labels": "merge",
    "Shard": "shards",
    "ScanOptions": "scan",
    "iter_files": "scan",
}
__all__ = [
    "EngineOptions",
    "LabelEngine",
    "LabelOptions",
    "LabelSummary",
    "ScanOptions",
    "iter_files",
    "label_folders",
    "merge_labels",
    "Shard",
]

if TYPE_CHECKING:
    from captioner.labeling.engine import EngineOptions, LabelEngine
    from captioner.labeling.merge import merge_labels
    from captioner.labeling.pipeline import LabelOptions, LabelSummary, label_folders
    from captioner.labeling.scan import ScanOptions, iter_files
    from captioner.labeling.shards import Shard


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"captioner.labeling.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'captioner.labeling' has no attribute {name!r}")
