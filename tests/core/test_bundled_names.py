"""A bundled model's bare name means the bundled model, in the Python API as on the command
line (`cli.options.model_name`): a folder of that name in the current directory does not
shadow it; "./default", an absolute path or a `Path` names the folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests_support import tiny_captioner

from captioner import api, model_dir
from captioner.api import Captioner


@pytest.fixture
def bundled_and_local(tmp_path, monkeypatch):
    """A bundled "default" (no attention) and a folder ./default (soft attention)."""
    bundled = tmp_path / "bundled"
    tiny_captioner(attention="none", sentiment=False).save_pretrained(bundled / "default")
    work = tmp_path / "work"
    tiny_captioner(attention="soft", sentiment=False).save_pretrained(work / "default")
    monkeypatch.setattr(api, "BUNDLED_DIR", bundled)
    monkeypatch.setattr(model_dir, "BUNDLED_DIR", bundled)
    monkeypatch.chdir(work)
    return bundled / "default", work / "default"


def _attention(name_or_path) -> str:
    cap = Captioner.from_pretrained(name_or_path, device="cpu", backend="torch")
    return cap.decoder.config.attention


def test_a_bare_bundled_name_is_the_bundled_model_not_the_folder_here(bundled_and_local, caplog):
    bundled, local = bundled_and_local
    with caplog.at_level("WARNING", logger="captioner.model_dir"):
        assert _attention("default") == "none"
    assert "pass './default' for the folder here" in caplog.text
    assert _attention("./default") == "soft"
    assert _attention(str(local)) == "soft"
    assert _attention(Path("default")) == "soft"  # a Path is a path
    assert model_dir.model_directory("default") == bundled  # as the commands resolve it
    assert model_dir.model_directory("./default") == Path("./default")


def test_no_note_without_a_folder_of_that_name(bundled_and_local, caplog):
    bundled, local = bundled_and_local
    local.rename(local.with_name("elsewhere"))
    with caplog.at_level("WARNING", logger="captioner.model_dir"):
        assert _attention("default") == "none"
    assert caplog.text == ""
