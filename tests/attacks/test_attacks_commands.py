"""The third attack round (issue 27), outside the labeller: commands end with one line and
exit status 2 on hostile input, never a traceback, a hang, silence or a deleted user file.
Every hostile file or folder is built in tmp_path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.mark.slow
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


# ---------------------------------------------------------------- train --out
def user_folder(path: Path) -> dict[str, bytes]:
    path.mkdir(parents=True, exist_ok=True)
    files = {"thesis.tex": b"\\chapter{one}", "photo.jpg": b"\xff\xd8", "notes.txt": b"keep me"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def assert_untouched(path: Path, files: dict[str, bytes]) -> None:
    assert sorted(p.name for p in path.iterdir()) == sorted(files)
    for name, data in files.items():
        assert (path / name).read_bytes() == data


@pytest.mark.parametrize("recipe", ["sentiment", "caption", "translate"])
def test_train_out_refuses_a_folder_of_user_files(recipe, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mine"
    files = user_folder(folder)
    extra = {"translate": ["--src", "en", "--tgt", "de"]}.get(recipe, [])
    args = ["train", recipe, "--dataset", "nowhere:x", *extra, "--epochs", "1"]
    code, _, err = run_cli([*args, "--out", str(folder)], capsys)
    one_line_error(code, err, "not a model directory")
    assert_untouched(folder, files)
    monkeypatch.chdir(folder)  # `--out .` emptied the current folder's top level
    code, _, err = run_cli([*args, "--out", "."], capsys)
    one_line_error(code, err, "--out .")
    assert_untouched(folder, files)


def test_train_out_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "model.txt"
    target.write_text("mine")
    code, _, err = run_cli(
        ["train", "sentiment", "--dataset", "nowhere:x", "--out", str(target)], capsys
    )
    one_line_error(code, err, "is not a folder")
    assert target.read_text() == "mine"


def fake_model(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"format": "captioner", "version": 1}')
    (path / "model.safetensors").write_bytes(b"weights")
    for name, text in files.items():
        (path / name.replace("_", ".")).write_text(text)
    return path


def test_publish_keeps_user_files_and_replaces_the_model(tmp_path):
    from captioner.checkpoint import CheckpointError
    from captioner.pipelines.runstate import publish_model_dir

    new = fake_model(tmp_path / "new")
    (new / "model.safetensors").write_bytes(b"new weights")
    out = fake_model(tmp_path / "out", labels_json="[]")  # an older model with a tagger
    (out / "my-notes.txt").write_text("results of run 3")
    (out / "run").mkdir()
    publish_model_dir(new, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "model.safetensors", "my-notes.txt", "run"]
    assert (out / "model.safetensors").read_bytes() == b"new weights"
    assert (out / "my-notes.txt").read_text() == "results of run 3"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    foreign = tmp_path / "foreign"
    files = user_folder(foreign)
    with pytest.raises(CheckpointError, match="not a model directory"):
        publish_model_dir(new, foreign)
    assert_untouched(foreign, files)
    fake_config = tmp_path / "fake"  # a config.json that is not ours does not make it ours
    files = user_folder(fake_config)
    (fake_config / "config.json").write_text('{"name": "someone else"}')
    files["config.json"] = b'{"name": "someone else"}'
    with pytest.raises(CheckpointError, match="not a model directory"):
        publish_model_dir(new, fake_config)
    assert_untouched(fake_config, files)


# ---------------------------------------------------------------- nonsense values
@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--epochs", "-1"], "--epochs must be >= 1"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--dropout", "nan"], "--dropout must be a finite number"),
        (["--seed", str(2**80)], "--seed must be in"),
    ],
)
def test_train_refuses_nonsense_values(flags, needle, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(
        ["train", "sentiment", "--dataset", "nowhere:x", "--out", str(out), *flags], capsys
    )
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) <= 2, err  # a short usage line and the error
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--length-penalty", "nan"], "finite number"),
        (["--temperature", "inf"], "finite number"),
        (["--seed", str(2**80)], "below 2**64"),
        (["--seed", "-3"], ">= 0"),
    ],
)
def test_decoding_flags_refuse_nonsense(flags, needle, tmp_path, capsys):
    code, out, err = run_cli(["caption", str(tmp_path / "x.png"), *flags], capsys)
    assert code == 2 and needle in err and out == "", err
    assert len(err.strip().splitlines()) == 2 and err.startswith("usage: captioner caption")


def test_generation_config_refuses_nonsense():
    from captioner.decoding import GenerationConfig

    for bad in ({"length_penalty": float("nan")}, {"temperature": float("inf")},
                {"seed": 2**80}, {"seed": -1}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            GenerationConfig(**bad)


def test_argparse_errors_are_two_lines(capsys):
    for argv in (["train", "caption", "--no-such-flag"], ["caption"], ["data", "info"],
                 ["sentiment", "--batch-size", "x"]):  # fmt: skip
        code, _, err = run_cli(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 2, err
        assert lines[0].startswith("usage: captioner") and ": error: " in lines[1]


@pytest.mark.parametrize("batch_size", [0, -1, 1.5])
def test_api_batch_size_must_be_positive(batch_size):
    from tests_support import tiny_captioner

    from captioner.errors import CaptionerError

    model = tiny_captioner()
    image = np.zeros((8, 8, 3), dtype="uint8")
    for call in (model.caption, model.describe):  # the tiny model has no tagger
        with pytest.raises(CaptionerError, match="batch_size must be an integer >= 1"):
            call([image], batch_size=batch_size)
    with pytest.raises(CaptionerError, match="batch_size"):
        model.sentiment(["good"], batch_size=batch_size)


# ---------------------------------------------------------------- model files
def copy_model(src: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, dst))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_refused_at_load(value, model_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    bad = copy_model(model_dir, tmp_path / "diverged")
    tensors = load_file(str(bad / "model.safetensors"))
    name = next(k for k in tensors if k.startswith("decoder.") and tensors[k].is_floating_point())
    tensors[name].view(-1)[0] = value
    save_file(tensors, str(bad / "model.safetensors"))
    code, _, err = run_cli(["sentiment", "--model", str(bad), "good"], capsys)
    one_line_error(code, err, "model.safetensors", name, "NaN or infinite")
    code, _, err = run_cli(["caption", "--model", str(bad), str(tmp_path / "x.png")], capsys)
    one_line_error(code, err, "model.safetensors", "NaN or infinite")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_encoder_weights_are_refused_in_one_line(tmp_path):
    import pickle

    from captioner.encoders import build_encoder

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    weights = tmp_path / "weights.pth"
    weights.write_bytes(pickle.dumps({"conv1.weight": Payload()}))
    with pytest.raises(ValueError) as info:
        build_encoder("resnet18", weights=str(weights))
    message = str(info.value)
    assert "\n" not in message and "weights.pth" in message and "never unpickled" in message
    assert not (tmp_path / "ran").exists()


def test_encoder_needing_a_download_offline_is_one_line(model_dir, tmp_path, capsys, monkeypatch):
    import json
    import urllib.error

    import torch.hub

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    from safetensors.torch import load_file, save_file

    needs = copy_model(model_dir, tmp_path / "needs-download")
    tensors = load_file(str(needs / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if not k.startswith("encoder.")},
              str(needs / "model.safetensors"))  # fmt: skip
    config = json.loads((needs / "config.json").read_text())
    config["encoder"]["weights"] = "IMAGENET1K_V1"
    (needs / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(["caption", "--model", str(needs), str(tmp_path / "x.png")], capsys)
    one_line_error(code, err, "IMAGENET1K_V1", "network")


# ---------------------------------------------------------------- data / eval / demo
@pytest.mark.parametrize("spec", ["scenes:0", "scenes:99999999999"])
def test_data_info_scene_counts_out_of_range(spec, capsys):
    code, _, err = run_cli(["data", "info", spec], capsys)  # today: IndexError / a hang
    one_line_error(code, err, spec, "from 1 to")


def test_scene_builder_refuses_absurd_sizes():
    from captioner.data.common import DataError
    from captioner.data.scenes import MAX_SCENES, build_scene_dataset

    with pytest.raises(DataError, match="split sizes"):
        build_scene_dataset(num_train=MAX_SCENES + 1)
    with pytest.raises(DataError, match="image_size"):
        build_scene_dataset(num_train=1, num_eval=1, image_size=10**6)


def test_eval_on_an_empty_split_is_one_line(model_dir, tmp_path, capsys):
    table = tmp_path / "reviews.csv"
    table.write_text("text,label\n", encoding="utf-8")  # every split is empty
    argv = ["eval", "--model", str(model_dir), "--dataset", f"sentiment-csv:{table}"]
    code, out, err = run_cli(argv, capsys)
    one_line_error(code, err, "split 'test' is empty")
    assert out == ""


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--port", "70000"], "1..65535"),
        (["--port", "0"], ">= 1"),
        (["--max-file-size", "abc"], "expected a size"),
        (["--max-file-size", "0mb"], "expected a size"),
    ],
)
def test_demo_flags_are_checked_at_parse_time(flags, needle, capsys):
    code, _, err = run_cli(["demo", "--no-default", *flags], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 2, err


def test_demo_address_is_checked_before_any_model_loads(capsys, monkeypatch):
    import socket

    import captioner.demo.app as demo_app

    def never(*a, **k):
        raise AssertionError("the demo went on to load models")

    monkeypatch.setattr(demo_app, "serve", never)
    code, _, err = run_cli(["demo", "--host", "999.1.1.1"], capsys)  # never exited before
    one_line_error(code, err, "--host 999.1.1.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["demo", "--port", str(port)], capsys)
    one_line_error(code, err, f"127.0.0.1:{port}", "in use")


# ---------------------------------------------------------------- images
@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((0, 0, 3), dtype=np.uint8), "no pixels"),
        (np.zeros((0, 7), dtype=np.float32), "no pixels"),
        (np.full((8, 8, 3), np.nan), "NaN or infinite"),
        (np.full((8, 8), np.inf, dtype=np.float32), "NaN or infinite"),
        (np.zeros((8, 8, 3), dtype=complex), "not an image"),
    ],
)
def test_arrays_without_an_image_are_image_load_errors(array, needle):
    import torch

    from captioner.imageio import ImageLoadError, load_image

    with pytest.raises(ImageLoadError, match=needle):
        load_image(array)
    if array.dtype != complex:
        with pytest.raises(ImageLoadError, match=needle):
            load_image(torch.from_numpy(np.ascontiguousarray(array)))


def test_zero_size_pil_image_is_an_image_load_error():
    from PIL import Image

    from captioner.imageio import ImageLoadError, load_image

    with pytest.raises(ImageLoadError, match="no pixels"):
        load_image(Image.new("RGB", (0, 0)))


def test_large_16_bit_png_decodes_within_the_memory_budget(tmp_path):
    import tracemalloc

    from PIL import Image

    from captioner.imageio import REDUCE_ABOVE_PIXELS, open_image

    side = 4096  # 16.8 MP: above REDUCE_ABOVE_PIXELS; numpy used 32 bytes a pixel before
    assert side * side > REDUCE_ABOVE_PIXELS
    ramp = (np.arange(side, dtype=np.uint32) * 16).astype(np.uint16)  # 0 .. 65520
    grey = Image.fromarray(np.broadcast_to(ramp, (side, side)).copy())
    assert grey.mode == "I;16"
    path = tmp_path / "wide.png"
    grey.save(path, compress_level=1)
    del grey
    tracemalloc.start()
    try:
        img = open_image(path, draft_size=224)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 * 2**20, f"numpy peak {peak / 2**20:.0f} MB"  # was about 500 MB
    assert img.mode == "RGB" and 448 <= min(img.size) < 2 * 448
    row = np.asarray(img)[0, :, 0].astype(float)
    assert row[0] < 3 and row[-1] > 250 and np.all(np.diff(row) >= 0)  # the ramp survives
    small = tmp_path / "small.png"  # under the threshold: converted as before, full size
    Image.fromarray(np.broadcast_to(ramp[:300], (200, 300)).copy()).save(small)
    assert open_image(small, draft_size=224).size == (300, 200)


# ---------------------------------------------------------------- --model names
def test_local_folder_does_not_shadow_a_bundled_model(tmp_path, capsys, monkeypatch, caplog):
    from captioner.cli import infer
    from captioner.cli.options import model_name

    bundled = Path(model_name.__code__.co_filename).resolve().parent.parent / "models"
    if not (bundled / "default" / "config.json").is_file():
        pytest.skip("no bundled default model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()  # someone's photos folder that happens to be so named
    (tmp_path / "default" / "x.jpg").write_bytes(b"\xff\xd8")
    with caplog.at_level("WARNING", logger="captioner.cli"):
        args = infer.build_parser("caption").parse_args(["x.png"])  # --model default
    assert Path(args.model) == bundled / "default"
    assert "write --model ./default for the folder" in caplog.text
    args = infer.build_parser("caption").parse_args(["x.png", "--model", "./default"])
    assert args.model == "./default"
    code, out, err = run_cli(["sentiment", "--json", "a lovely day"], capsys)
    assert code == 0 and '"label"' in out, err
    (tmp_path / "default").rename(tmp_path / "elsewhere")  # no folder: no note, name as given
    caplog.clear()
    with caplog.at_level("WARNING", logger="captioner.cli"):
        assert infer.build_parser("caption").parse_args(["x.png"]).model == "default"
    assert caplog.text == ""


@pytest.mark.slow
def test_closed_stdout_pipe_after_captions_exits_quietly(model_dir, tmp_path):
    from PIL import Image

    images = []
    for i in range(3):
        images.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(images[-1])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess_cli(
            ["caption", "--model", str(model_dir), "--device", "cpu", "--backend", "torch",
             *images], stdout=write_end,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE
    assert done.stderr.decode().strip() == "", done.stderr.decode()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_training_state_is_refused_in_one_line(tmp_path):
    import json
    import pickle

    import torch
    from safetensors.torch import save_file

    from captioner.checkpoint import CheckpointError
    from captioner.pipelines.runstate import load_checkpoint

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    epoch = tmp_path / "checkpoints" / "epoch-0001"
    epoch.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(epoch / "model.safetensors"))
    (epoch / "state.pt").write_bytes(pickle.dumps({"epoch": 1, "x": Payload()}))
    (tmp_path / "checkpoints" / "last.json").write_text(json.dumps({"epoch": 1, "dir": epoch.name}))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "checkpoints")
    assert "\n" not in str(info.value) and "never unpickled" in str(info.value)
    assert not (tmp_path / "ran").exists()


def test_beam_width_and_length_are_bounded(tmp_path, capsys):
    from captioner.decoding import MAX_BEAM_SIZE, MAX_LENGTH, GenerationConfig

    for flags in (["--beam-size", "100000"], ["--max-length", "1000000000"]):  # 10 GB, no end
        code, _, err = run_cli(["caption", str(tmp_path / "x.png"), *flags], capsys)
        assert code == 2 and "must be <=" in err and len(err.strip().splitlines()) == 2, err
    code, _, err = run_cli(["translate", "--to", "de", "a dog", "--beam-size", "100000"], capsys)
    assert code == 2 and "must be <= 256" in err, err
    GenerationConfig(beam_size=MAX_BEAM_SIZE, max_length=MAX_LENGTH)
    with pytest.raises(ValueError, match="beam_size"):
        GenerationConfig(beam_size=MAX_BEAM_SIZE + 1)
    with pytest.raises(ValueError, match="max_length"):
        GenerationConfig(max_length=MAX_LENGTH + 1)


@pytest.mark.parametrize("command", ["sentiment", "translate"])
def test_one_text_is_bounded_too(command, model_dir, tmp_path, capsys, monkeypatch):
    from captioner.cli import textinput

    monkeypatch.setattr(textinput, "MAX_TEXT_CHARS", 50)
    extra = ["--model", str(model_dir)] if command == "sentiment" else ["--to", "de"]
    long = "a dog runs " * 10
    (tmp_path / "t.txt").write_text(f"a dog\n\n{long}\n", encoding="utf-8")
    code, _, err = run_cli([command, *extra, "--file", str(tmp_path / "t.txt")], capsys)
    one_line_error(code, err, "t.txt: line 3 has 109 characters, above the 50")
    code, _, err = run_cli([command, *extra, "a dog", long], capsys)
    one_line_error(code, err, "TEXT argument 2 has 110 characters")


def test_data_build_out_never_a_file_or_a_folder_of_user_files(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    base = ["data", "build", "scenes", "--num-train", "1", "--num-eval", "1", "--image-size", "32"]
    code, _, err = run_cli([*base, "--out", str(target)], capsys)  # was a FileExistsError
    one_line_error(code, err, "is not a folder")
    folder = tmp_path / "mine"
    files = user_folder(folder)
    code, _, err = run_cli([*base, "--out", str(folder)], capsys)
    one_line_error(code, err, "not a saved dataset")
    assert_untouched(folder, files)


def test_config_file_reads_are_bounded(tmp_path, capsys):
    sparse = tmp_path / "sparse.json"
    with open(sparse, "wb") as f:
        f.truncate(8 << 30)  # 8 GB of holes: read whole before
    argv = ["train", "sentiment", "--config", str(sparse), "--dataset", "x", "--out", "o"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "too large for a config file" in err, err


@pytest.mark.parametrize(
    ("recipe", "flag"),
    [("caption", "--max-length"), ("caption", "--hidden-dim"), ("sentiment", "--embed-dim"),
     ("translate", "--encoder-layers"), ("scst", "--samples")],
)  # fmt: skip
def test_recipe_sizes_of_zero_are_refused_before_training(recipe, flag, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", recipe, "--dataset", "x", "--out", str(out), flag, "0"]
    if recipe == "scst":
        argv += ["--init", str(tmp_path)]
    code, _, err = run_cli(argv, capsys)  # --max-length 0 trained an epoch, then failed
    assert code == 2 and f"{flag} must be >= 1" in err, err
    assert not out.exists()
