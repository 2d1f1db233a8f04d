"""The README's Python snippets run as written, in order, from the repository root, and every
image file a README or docs/ snippet names exists (issue 25: the API example used a
`cat.jpg` that does not exist). Snippets that need the network or a training run of your
own are named in NOT_RUN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
IMAGE = re.compile(r"""["']([^"'\s]+\.(?:jpe?g|png|webp))["']""", re.I)
# a phrase of each snippet that cannot run here, and why
NOT_RUN = {
    'Captioner.from_pretrained("runs/': "needs models trained by the recipes",
    'push_to_hub("you/my-captioner")': "uploads to the Hugging Face hub (network)",
}


def snippets(path: Path, language: str = "python") -> list[str]:
    found = BLOCK.findall(path.read_text(encoding="utf-8"))
    return [code for lang, code in found if lang == language]


def runnable(code: str) -> bool:
    return not any(key in code for key in NOT_RUN)


def test_readme_python_snippets_run(monkeypatch):
    from captioner.model_dir import BUNDLED_DIR

    if not (BUNDLED_DIR / "default" / "config.json").is_file():
        pytest.skip("no bundled default model")
    monkeypatch.chdir(ROOT)  # the snippets name files relative to the repository root
    namespace: dict = {}
    ran = 0
    for code in filter(runnable, snippets(README)):
        exec(compile(code, f"{README.name} python snippet {ran + 1}", "exec"), namespace)
        ran += 1
    assert ran >= 1, "README.md lost its Python API snippet"
    model, cat = namespace["model"], namespace["cat"]
    (caption,) = model.caption([cat])
    assert caption.split()[0] in ("a", "an", "the")
    assert namespace["d"].attention and namespace["d"].attention[0][1].shape == (7, 7)


def test_every_image_a_snippet_names_exists():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        (page.name, name)
        for page in pages
        for code in snippets(page)
        if runnable(code)
        for name in IMAGE.findall(code)
    }
    assert named, "no snippet names an example image any more"
    missing = sorted((page, name) for page, name in named if not (ROOT / name).is_file())
    assert not missing, f"snippets name images that do not exist: {missing}"
