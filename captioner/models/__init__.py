"""The bundled models, one folder each; `captioner.model_dir.bundled_model` resolves a name.

`BUNDLED_DIR` is the one place that says where they are (this module imports nothing heavy,
so the command line can use it before torch loads)."""

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
