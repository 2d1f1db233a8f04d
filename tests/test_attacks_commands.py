"""The third attack round (issue 27), outside the labeller: commands end with one line and
exit status 2 on hostile input, never a traceback, a hang, silence or a deleted user file.
Every hostile file or folder is built in tmp_path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import tiny_model_dir

from captioner.cli.main import EXIT_BROKEN_PIPE
from captioner.cli.main import main as cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("m"))


def run_cli(argv: list[str], capsys, *, stdin=None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", stdin)
    code = cli(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def subprocess_cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "captioner", *args],
        env=env, stderr=subprocess.PIPE, timeout=120, **kw,
    )  # fmt: skip


# ---------------------------------------------------------------- sentiment / translate input
class BinaryStdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def stdin_of(data: bytes) -> BinaryStdin:
    return BinaryStdin(io.BytesIO(data), encoding="utf-8")


@pytest.mark.parametrize("command", ["sentiment", "translate"])
@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "stdin: no"),
        (b"  \n\t\n\n", "only blank lines"),
        (b"\xff\xfe\x00a dog\n", "binary data"),
        (b"caf\xe9 au lait\n", "not UTF-8"),
    ],
)
def test_stdin_without_text_is_named(command, data, needle, model_dir, capsys, monkeypatch):
    extra = ["--model", str(model_dir)] if command == "sentiment" else ["--to", "de"]
    code, out, err = run_cli(
        [command, *extra], capsys, stdin=stdin_of(data), monkeypatch=monkeypatch
    )
    one_line_error(code, err, needle)
    assert out == ""


@pytest.mark.parametrize("command", ["sentiment", "translate"])
def test_empty_and_blank_files_and_arguments(command, model_dir, tmp_path, capsys):
    extra = ["--model", str(model_dir)] if command == "sentiment" else ["--to", "de"]
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b" \n\n  \r\n")
    for name, needle in (("empty.txt", "(empty)"), ("blank.txt", "only blank lines")):
        code, _, err = run_cli([command, *extra, "--file", str(tmp_path / name)], capsys)
        one_line_error(code, err, name, needle)
    for blank in ("", "   "):  # today: "positive 0.50" and "."
        code, out, err = run_cli([command, *extra, "good", blank], capsys)
        one_line_error(code, err, "TEXT argument 2 is empty")
        assert out == ""
    code, _, err = run_cli([command, *extra, "--file", str(tmp_path)], capsys)
    one_line_error(code, err, "is a folder")


def test_file_reads_are_bounded(model_dir, tmp_path, capsys, monkeypatch):
    from captioner.cli import textinput

    monkeypatch.setattr(textinput, "MAX_TEXT_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("a good day\n" * 200, encoding="utf-8")
    code, _, err = run_cli(["sentiment", "--model", str(model_dir), "--file", str(big)], capsys)
    one_line_error(code, err, "big.txt", "MiB of text")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_sentiment_file_dev_zero_ends_with_one_line(model_dir, capsys):
    code, _, err = run_cli(["sentiment", "--model", str(model_dir), "--file", "/dev/zero"], capsys)
    one_line_error(code, err, "/dev/zero")


def test_closed_stdout_pipe_exits_quietly(model_dir):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already gone
    try:
        done = subprocess_cli(
            ["sentiment", "--model", str(model_dir), "good day", "awful"], stdout=write_end
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE
    assert done.stderr.decode().strip() == "", done.stderr.decode()
