"""Batch labeling of image folders: `captioner label DIR` (see `captioner.labeling.cli`).

Python use::

    from captioner import Captioner
    from captioner.labeling import LabelEngine, LabelOptions, label_folders

    engine = LabelEngine(Captioner.from_pretrained("default"))
    summary = label_folders(["photos/"], engine, LabelOptions(formats=("jsonl", "csv")))
"""

from captioner.labeling.engine import EngineOptions, LabelEngine
from captioner.labeling.pipeline import LabelOptions, LabelSummary, label_folders
from captioner.labeling.scan import ScanOptions, iter_files

__all__ = [
    "EngineOptions",
    "LabelEngine",
    "LabelOptions",
    "LabelSummary",
    "ScanOptions",
    "iter_files",
    "label_folders",
]
