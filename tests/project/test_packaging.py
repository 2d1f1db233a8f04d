"""The wheel: built from a copy of the source tree with the project's own setuptools (no
network, no build isolation), it holds every module, the bundled models, the demo's
examples, py.typed and the licence, and the build prints no setuptools warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email import message_from_string
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
pytestmark = pytest.mark.slow  # building the wheel: about 8 s

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")
pytest.importorskip("setuptools", reason="building the wheel needs setuptools")


def source_files() -> dict[str, Path]:
    """Each file a wheel must carry (its name inside the wheel) -> the file in the tree."""
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]  # package -> folder
    out: dict[str, Path] = {}
    for package, folder in dirs.items():
        base = ROOT / folder
        for f in base.rglob("*"):
            rel = f.relative_to(base)
            if f.is_file() and "__pycache__" not in rel.parts and not rel.name.startswith("."):
                nested = next((p for p in dirs if p != package and p.startswith(package + ".")), "")
                if nested and (ROOT / folder / rel).is_relative_to(ROOT / dirs[nested]):
                    continue
                out[package.replace(".", "/") + "/" + rel.as_posix()] = f
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel path, everything the build printed)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for folder in {*PYPROJECT["tool"]["setuptools"]["package-dir"].values()}:
        shutil.copytree(ROOT / folder, src / folder, ignore=SKIP)
    for name in ("pyproject.toml", "LICENSE", "README.md", PYPROJECT["project"]["readme"]):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    code = "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code, str(dist)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return dist / done.stdout.strip().splitlines()[-1], output


def test_build_prints_no_setuptools_warning(built):
    _, output = built
    for phrase in ("would be ignored", "is absent from the `packages`", "Deprecat", "Warning"):
        assert phrase not in output, (
            f"setuptools said {phrase!r} (a new folder of code or data, e.g. a bundled model? "
            "list it in pyproject.toml's [tool.setuptools] packages and package-data):\n"
            + output[-3000:]
        )


def test_wheel_holds_every_module_and_data_file(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = sorted(set(source_files()) - names)
    assert not missing, f"left out of the wheel (see pyproject.toml's package-data): {missing[:20]}"
    for required in (
        "captioner/py.typed",
        "captioner/models/default/model.safetensors",
        "captioner/models/default/config.json",
        "captioner/demo/examples/README.md",
        "captioner/pipelines/release.py",
    ):
        assert required in names
    assert not any(n.startswith(("tests/", "pipelines/", "demo/")) for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_metadata_for_pypi(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = message_from_string(zf.read(meta_name).decode())
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta["License-Expression"] == "MIT"
    assert "captioner = captioner.cli:main" in entry_points
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(r.startswith("huggingface_hub") for r in meta.get_all("Requires-Dist"))
    description = meta.get_payload()
    assert description.lstrip().startswith("# captioner")
    assert "make label" not in description  # a wheel user has no Makefile
    assert "pip install captioner" in description and "whl/cpu" in description
    assert "MIT License" in (ROOT / "LICENSE").read_text()
