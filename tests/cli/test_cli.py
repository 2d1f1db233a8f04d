import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tests_support import tiny_model_dir

from captioner.cli import COMMANDS, main
from captioner.cli.infer import EXIT_FAILED


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_console_script_and_namespace_packages(tmp_path):
    # run outside the repo so the checkout itself is not on sys.path
    code = (
        "import importlib.util as u, captioner.pipelines, captioner.demo; "
        "print(u.find_spec('pipelines') is None and u.find_spec('demo') is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    exe = subprocess.run(
        [sys.executable, "-m", "captioner", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert exe.returncode == 0 and "label" in exe.stdout


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


@pytest.mark.slow
def test_caption_prints_results_and_reports_bad_files(model_dir, tmp_path, capsys):
    good = tmp_path / "good image.png"
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 10)
    code = main(
        ["caption", str(good), str(bad), "--model", str(model_dir), "--device", "cpu", "--json"]
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == EXIT_FAILED
    assert (
        rows[0]["path"] == str(good)
        and isinstance(rows[0]["caption"], str)
        and rows[0]["error"] is None
    )
    assert rows[1]["path"] == str(bad) and "bad.jpg" in rows[1]["error"]


def test_describe_and_sentiment(model_dir, tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8)).save(img)
    assert main(["describe", str(img), "--model", str(model_dir), "--device", "cpu", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row) >= {"caption", "tags", "sentiment", "error"}
    assert row["sentiment"]["label"] in ("negative", "positive")
    argv = ["sentiment", "what a lovely day", "--model", str(model_dir), "--device", "cpu"]
    assert main([*argv, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "what a lovely day" and row["label"] in row["probs"]
    assert row["score"] == max(row["probs"].values()) and 0 < row["score"] <= 1


def test_missing_head_and_bad_arguments(model_dir, tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8)).save(img)
    assert main(["tag", str(img), "--model", str(model_dir), "--device", "cpu"]) == 2
    assert "no tag head" in capsys.readouterr().err
    assert main(["caption", str(img), "--beam-size", "0"]) == 2
    assert "--beam-size: must be >= 1" in capsys.readouterr().err
    assert main(["caption", str(img), "--model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("captioner caption: error: ") and "no such model directory" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_importing_the_demo_changes_nothing_until_main_runs(tmp_path):
    """The demo prepares Gradio's environment (temp folder, analytics off, signal handler) in
    main(), not as a side effect of an import."""
    code = (
        "import os, signal, tempfile, glob; import captioner.demo.app, captioner.demo.handlers; "
        "print(os.environ.get('GRADIO_TEMP_DIR'), signal.getsignal(signal.SIGTERM) is "
        "signal.SIG_DFL, glob.glob(os.path.join(tempfile.gettempdir(), 'captioner-demo-*')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["None", "True", "[]"], out.stderr[-2000:]


@pytest.mark.slow
def test_device_auto_and_decoding_flags_reach_the_engine(model_dir, tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8)).save(img)
    base = ["caption", str(img), "--model", str(model_dir), "--json"]
    assert main([*base, "--device", "auto"]) == 0  # was "cannot load model"
    beam = json.loads(capsys.readouterr().out)["caption"]
    assert isinstance(beam, str)
    assert main([*base, "--method", "sample", "--seed", "3", "--top-p", "0.9"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["caption"], str)
    assert main([*base, "--device", "toaster"]) == 2
    assert "not a device" in capsys.readouterr().err
    assert main([*base, "--temperature", "0"]) == 2
    assert "--temperature: must be > 0" in capsys.readouterr().err
    assert main([*base, "--top-p", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("captioner caption: error: decoding flags: top_p must be in (0, 1]")


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "--dataset", "scenes:2", "--model", "/no/such/model"], "no such model"),
        (["data", "info", "nonsense:x"], "unknown dataset kind"),
        (["eval", "--dataset", "nonsense:x"], "unknown dataset kind"),  # before any model load
        (["-v", "data", "info", "nonsense:x"], "unknown dataset kind"),
        (["train", "caption", "--dataset", "nonsense:x", "--out", "/tmp/x"], "nonsense"),
        (["label", "/no/such/folder"], "no such folder"),
    ],
)
def test_every_command_ends_errors_with_one_line_and_status_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert err.startswith(f"captioner {argv[argv[0] == '-v']}"), err


@pytest.mark.slow
def test_info_chatter_only_with_verbose(model_dir, tmp_path, capsys, caplog):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8)).save(img)
    root = logging.getLogger()
    before = root.level
    try:
        for flag, chatty in (([], False), (["--verbose"], True), (["-q"], False), (["-v"], True)):
            caplog.clear()
            argv = ["caption", str(img), "--model", str(model_dir), "--device", "cpu"]
            # before the command (global) or after it: the same flag
            assert main([*argv, *flag] if flag != ["-v"] else [*flag, *argv]) == 0
            info = [r for r in caplog.records if r.levelno == logging.INFO]
            assert bool(info) == chatty, (flag, [r.getMessage() for r in info])
    finally:
        root.setLevel(before)
    assert capsys.readouterr().out.count(str(img)) == 4
