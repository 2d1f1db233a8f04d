"""Every flag of every command has help text that shows its default (or says it is required),
and the shared flags mean the same everywhere."""

from __future__ import annotations

import argparse
import importlib

import pytest

from captioner.cli import COMMANDS, run_command
from captioner.cli.options import device_name
from captioner.cli.train import RECIPES
from captioner.cli.train import build_parser as recipe_parser


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for name, (module_name, _) in COMMANDS.items():
        if name == "train":
            out += [(f"train {r}", recipe_parser(r)) for r in RECIPES]
            continue
        build = importlib.import_module(module_name).build_parser
        out.append((name, build(name) if build.__code__.co_argcount else build()))
    return out


def _walk(name: str, parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _walk(f"{name} {sub}", subparser)
        elif not isinstance(action, argparse._HelpAction):
            yield name, action


ALL = [pair for name, parser in _parsers() for pair in _walk(name, parser)]


def test_the_walk_covers_every_command_and_recipe():
    names = {name.split()[0] for name, _ in ALL}
    assert names == set(COMMANDS)
    assert {f"train {r}" for r in RECIPES} <= {name for name, _ in ALL}
    assert len(ALL) > 100


@pytest.mark.parametrize("name,action", ALL, ids=lambda x: x if isinstance(x, str) else "")
def test_every_flag_has_help_and_a_shown_default(name, action):
    text = action.help or ""
    flag = "/".join(action.option_strings) or action.dest
    assert text.strip() and text != argparse.SUPPRESS, f"captioner {name} {flag}: no help"
    if action.option_strings:
        assert "(default:" in text or "(required)" in text, f"captioner {name} {flag}: {text!r}"
        assert text.count("(default:") <= 1, f"captioner {name} {flag}: {text!r}"


def test_train_help_shows_one_default_per_flag(capsys):
    assert run_command("train", ["caption", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: OUT's folder name)" in out and "(default: '')" not in out
    assert "--dataset SPEC" in out or "--dataset DATASET" in out


def test_device_flag_means_the_same_everywhere():
    assert [device_name(t) for t in ("auto", "CPU", "cuda", "cuda:1")] == [
        "auto",
        "cpu",
        "cuda",
        "cuda:1",
    ]
    with pytest.raises(argparse.ArgumentTypeError, match="not a device"):
        device_name("toaster")
    devices, recipes = {}, {}
    for name, action in ALL:
        if "--device" in action.option_strings:
            if name.startswith("train "):  # a config field: flags given override the file
                recipes[name] = action.help
            else:
                devices[name] = (action.type, action.default)
    assert {"caption", "tag", "describe", "sentiment", "eval", "demo", "label"} <= set(devices)
    assert set(devices.values()) == {(device_name, "auto")}
    assert set(recipes) == {f"train {r}" for r in RECIPES}
    assert all("(default: 'auto')" in text for text in recipes.values())
