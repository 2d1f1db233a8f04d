"""The package stays easy to find one's way in (issue 24): every module's base name is its
own across captioner/, pipelines/ and demo/ (`__init__.py` and `__main__.py` aside), and no
module is over 400 lines."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("captioner", "pipelines", "demo")
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(f for folder in FOLDERS for f in (ROOT / folder).rglob("*.py"))


def test_no_two_modules_share_a_base_name():
    where = defaultdict(list)
    for f in modules():
        if f.name not in ("__init__.py", "__main__.py"):
            where[f.name].append(str(f.relative_to(ROOT)))
    assert not {name: paths for name, paths in where.items() if len(paths) > 1}


def test_no_module_is_over_400_lines():
    lines = {str(f.relative_to(ROOT)): len(f.read_text(encoding="utf-8").splitlines())
             for f in modules()}  # fmt: skip
    assert not {path: n for path, n in lines.items() if n > MAX_LINES}
