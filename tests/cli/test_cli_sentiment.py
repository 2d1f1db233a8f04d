"""`captioner sentiment`: texts from arguments, a file or stdin; a table or JSON lines; only
the model's sentiment part is loaded (the image encoder is never built)."""

import io
import json

import pytest
from tests_support import tiny_model_dir

from captioner.cli import sentiment_command as cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("m"))


@pytest.fixture(autouse=True)
def no_encoder(monkeypatch):
    import captioner.encoders

    def refuse(*a, **k):
        raise AssertionError("captioner sentiment built the image encoder")

    monkeypatch.setattr(captioner.encoders, "build_encoder", refuse)


def test_arguments_as_json_lines(model_dir, capsys):
    assert (
        cli.main(["--model", str(model_dir), "--json", "--device", "cpu", "good day", "awful"]) == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["good day", "awful"]
    for r in rows:
        assert set(r["probs"]) == {"negative", "positive"}
        assert r["label"] == max(r["probs"], key=r["probs"].get)
        assert r["score"] == r["probs"][r["label"]]
        assert sum(r["probs"].values()) == pytest.approx(1.0, abs=1e-3)


def test_file_and_stdin_give_one_row_a_line(model_dir, tmp_path, capsys, monkeypatch):
    texts = tmp_path / "texts.txt"
    texts.write_text("good day\n\nlovely circle\n", encoding="utf-8")
    assert cli.main(["--model", str(model_dir), "--file", str(texts)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["label", "score"] and len(table) == 3
    assert table[2].endswith("lovely circle")
    monkeypatch.setattr("sys.stdin", io.StringIO("square\nawful day\n"))
    assert cli.main(["--model", str(model_dir), "--json"]) == 0
    assert [json.loads(x)["text"] for x in capsys.readouterr().out.splitlines()] == [
        "square",
        "awful day",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("lovely\n"))  # a lone '-' reads stdin too
    assert cli.main(["--model", str(model_dir), "--json", "-"]) == 0
    assert [json.loads(x)["text"] for x in capsys.readouterr().out.splitlines()] == ["lovely"]


def test_bad_input_is_named(model_dir, tmp_path, monkeypatch):
    from captioner.checkpoint import CheckpointError
    from captioner.cli.textinput import TextInputError

    with pytest.raises(TextInputError, match="missing.txt"):
        cli.main(["--model", str(model_dir), "--file", str(tmp_path / "missing.txt")])
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    with pytest.raises(TextInputError, match="stdin: no texts to classify"):
        cli.main(["--model", str(model_dir)])
    (tmp_path / "nosent").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        cli.main(["--model", str(tmp_path / "nosent"), "good"])
