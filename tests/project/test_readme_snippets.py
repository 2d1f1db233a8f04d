"""The README's snippets run as written (issue 25: the API example used a `cat.jpg` that does
not exist). Its Python snippets run in order from the repository root; every image a README
or docs/ snippet names exists; every command of its shell snippets and every command it
quotes inline names a real make target, `captioner` command, script or module, with flags
they take and files that exist, and the quick `captioner` commands run as written (the
`captioner label` lines on a copy of demo/examples, in the slow tier). Snippets that need
the network, a training run of your own or an install are named in NOT_RUN / SHELL_NOT_RUN."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import shutil
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


# ----------------------------------------------------------------------------- shell commands

INLINE = re.compile(r"`((?:python|captioner|make) [^`]+)`")
# the first words of each shell command that is not checked here, and why
SHELL_NOT_RUN = {
    ("python3", "-m", "venv"): "creates a virtual environment",
    (".venv/bin/pip", "install"): "installs packages from the network",
}
QUICK = ("caption", "tag", "describe", "sentiment", "translate")  # load a model, run, exit
SHARED_DATA = ROOT.parent / "shared" / "data"  # the corpora of the results' commands


def shell_commands(path: Path) -> list[list[str]]:
    """Each command line of the bash snippets (comments dropped, `\\` lines joined), split
    as the shell would."""
    found = []
    for code in snippets(path, "bash"):
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


def inline_commands(path: Path) -> list[list[str]]:
    """Commands quoted inline (`python ...`, `captioner ...`, `make ...` with arguments)."""
    text = path.read_text(encoding="utf-8")
    return [shlex.split(code) for code in INLINE.findall(text)]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m for line in re.findall(r"^([\w .-]+):(?!=)", text, re.M) for m in line.split()}


def captioner_parser(words: list[str]):
    """The argparse parser of `captioner COMMAND` (of its recipe for `train`) and the
    arguments it parses."""
    from captioner.cli import train
    from captioner.cli.main import COMMANDS

    command, rest = words[1], words[2:]
    assert command in COMMANDS, f"{shlex.join(words)}: no command {command!r}"
    if command == "train":
        assert rest and rest[0] in train.RECIPES, f"{shlex.join(words)}: no such recipe"
        return train.build_parser(rest[0]), rest[1:]
    return importlib.import_module(COMMANDS[command][0]).build_parser(command), rest


def check_paths(words: list[str], args) -> None:
    """Every file or folder the command reads exists (relative to the repository root);
    corpora under ../shared/data only where that folder is present."""
    named = [getattr(args, key) for key in ("images", "dirs", "folders", "model") if
             hasattr(args, key)]  # fmt: skip
    paths = [p for v in named for p in (v if isinstance(v, list) else [v]) if isinstance(p, str)]
    spec = getattr(args, "dataset", None)
    if isinstance(spec, str) and ":" in spec:
        paths.append(spec.split(":", 1)[1].split("?")[0])
    for name in paths:
        if "/" not in name and "." not in name:
            continue  # a bundled model's name ("default"), a built-in dataset
        path = (ROOT / name).resolve()
        if path.is_relative_to(SHARED_DATA.resolve()) and not SHARED_DATA.is_dir():
            continue
        assert path.exists(), f"{shlex.join(words)}: {name} does not exist"


def check_command(words: list[str], *, inline: bool) -> None:
    if tuple(words[:3]) in SHELL_NOT_RUN or tuple(words[:2]) in SHELL_NOT_RUN:
        return
    if words[0] == "make":
        for word in words[1:]:
            if "=" in word:  # VAR=value: a variable the Makefile reads
                name = word.split("=", 1)[0]
                assert re.search(rf"\$\({name}\)", (ROOT / "Makefile").read_text()), word
            else:
                assert word in make_targets(), f"make {word}: no such target"
        return
    if words[0] == "captioner":
        parser, rest = captioner_parser(words)
        if not rest:  # `captioner label` named in a sentence, `captioner train everyday`
            return
        try:
            args = parser.parse_args(rest)
        except SystemExit:
            pytest.fail(f"{shlex.join(words)}: its flags do not parse")
        if not inline:  # inline commands may name what a recipe trains first (runs/...)
            check_paths(words, args)
        return
    if words[0] == "python":
        if words[1] == "-m":
            spec = importlib.util.find_spec(words[2])
            assert spec is not None and spec.origin, f"{shlex.join(words)}: no module"
            source = Path(spec.origin).read_text(encoding="utf-8")
            flags = words[3:]
        else:
            script = ROOT / words[1]
            assert script.is_file(), f"{shlex.join(words)}: no {words[1]}"
            source, flags = script.read_text(encoding="utf-8"), words[2:]
        for flag in (f.split("=")[0] for f in flags if f.startswith("--")):
            # argparse flags, or the dataclass fields a recipe's config turns into flags
            field = flag[2:].replace("-", "_")
            assert f'"{flag}"' in source or re.search(rf"^\s+{field}:", source, re.M), (
                f"{shlex.join(words)}: {flag} is not one of its flags"
            )
        return
    pytest.fail(f"README command {shlex.join(words)!r}: say in SHELL_NOT_RUN why it is not run")


def test_readme_shell_commands_name_real_targets_commands_flags_and_files():
    commands = shell_commands(README)
    assert any(words[0] == "captioner" for words in commands), "no captioner command left"
    for words in commands:
        check_command(words, inline=False)
    for words in inline_commands(README):
        check_command(words, inline=True)


def run_captioner(words: list[str], cwd: Path, monkeypatch) -> None:
    from captioner.cli.main import main

    monkeypatch.chdir(cwd)
    assert main(words[1:]) == 0, f"{shlex.join(words)} failed"


@pytest.mark.slow
def test_readme_quick_captioner_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """Every `captioner caption|tag|describe|sentiment|translate` line, from the repository
    root; every `captioner label` line on a copy of demo/examples, so that the outputs land
    in a temporary folder."""
    from captioner.model_dir import BUNDLED_DIR

    if not (BUNDLED_DIR / "default" / "config.json").is_file():
        pytest.skip("no bundled default model")
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    commands = [w for w in shell_commands(README) if w[0] == "captioner"]
    quick = [w for w in commands if w[1] in QUICK]
    labels = [w for w in commands if w[1] == "label"]
    assert quick and labels
    for words in quick:
        run_captioner(words, ROOT, monkeypatch)
        assert capsys.readouterr().out.strip(), f"{shlex.join(words)} printed nothing"
    shutil.copytree(ROOT / "demo" / "examples", tmp_path / "demo" / "examples")
    for words in labels:
        run_captioner(words, tmp_path, monkeypatch)
    images = sorted((ROOT / "demo" / "examples").glob("*.jpg"))
    rows = (tmp_path / "labels" / "examples.jsonl").read_text().splitlines()
    assert len(rows) == len(images) and (tmp_path / "labels" / "examples.csv").is_file()


def test_make_label_ends_by_saying_how_to_run_captioner_from_a_new_shell():
    """`make label` ends with the two ways to run `captioner` in a new shell (the venv's
    bin is not on its PATH), and the README says the same."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    import subprocess

    # -n: print the recipe without running it; -o: the venv counts as set up
    done = subprocess.run(["make", "-n", "-o", ".venv/.installed", "label"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    tail = done.stdout.split("captioner label", 1)[1]
    assert "to use it from a new shell" in tail
    assert f"source {ROOT}/.venv/bin/activate" in tail
    assert f"{ROOT}/.venv/bin/captioner --help" in tail
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert "in a new shell, `source .venv/bin/activate` first" in readme
