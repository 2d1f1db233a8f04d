"""Sharing models: the model card, `save_pretrained` keeping the stored dtype, and
`push_to_hub` / `captioner push` / `from_pretrained(repo_id, revision=...)` against a local
stand-in of the Hugging Face hub (monkeypatched `HfApi` and `snapshot_download`: no network).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub.repocard import metadata_load
from safetensors import safe_open
from tests_support import tiny_captioner

from captioner import Captioner
from captioner.cli import push as push_cli
from captioner.cli import run_command
from captioner.hub import HubError
from captioner.model_card import MARKER, render_card

IMAGE = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))


class FakeHub:
    """Repositories as {repo_id: {revision: {file name: bytes}}}, plus commits by id."""

    def __init__(self, root: Path):
        self.root, self.repos, self.commits, self.calls = root, {}, {}, []

    def api(self, token=None):
        hub = self

        class Api:
            def create_repo(self, repo_id, *, private=None, exist_ok=False):
                hub.calls.append(("create_repo", repo_id, private))
                hub.repos.setdefault(repo_id, {"main": {}})

            def create_branch(self, repo_id, *, branch, exist_ok=False):
                hub.repos[repo_id].setdefault(branch, dict(hub.repos[repo_id]["main"]))

            def upload_folder(self, *, repo_id, folder_path, allow_patterns, revision, **kw):
                files = {
                    f.name: f.read_bytes()
                    for f in Path(folder_path).iterdir()
                    if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns)
                }
                branch = hub.repos[repo_id][revision or "main"]
                branch.update(files)
                sha = hashlib.sha1(repr(sorted(branch.items())).encode()).hexdigest()
                hub.commits[sha] = dict(branch)
                hub.calls.append(("upload", repo_id, revision, sorted(files), kw))
                return type("CommitInfo", (), {"commit_url": f"hub://{repo_id}/commit/{sha}"})()

        return Api()

    def snapshot_download(self, *, repo_id, revision=None, allow_patterns=None, **kw):
        branches = self.repos.get(repo_id)
        if branches is None:
            raise OSError(f"404: repository {repo_id} not found")
        files = branches.get(revision or "main") or self.commits.get(revision)
        if files is None:
            raise OSError(f"404: revision {revision} not found")
        out = self.root / repo_id.replace("/", "--") / (revision or "main")
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            if any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                (out / name).write_bytes(data)
        return str(out)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub-cache")
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


def small_model() -> Captioner:
    return tiny_captioner(encoder="mobilenet_v3_small")


def stored_dtypes(directory: Path) -> set[torch.dtype]:
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return {t.dtype for t in map(f.get_tensor, f.keys()) if t.is_floating_point()}


def test_save_pretrained_keeps_the_dtype_it_loaded(tmp_path):
    model = small_model()
    half = model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    assert stored_dtypes(half) == {torch.float16}
    again = Captioner.from_pretrained(half, device="cpu", backend="torch")
    resaved = again.save_pretrained(tmp_path / "resaved")
    assert stored_dtypes(resaved) == {torch.float16}
    size = (resaved / "model.safetensors").stat().st_size
    assert size == (half / "model.safetensors").stat().st_size
    wide = again.save_pretrained(tmp_path / "wide", dtype=torch.float32)  # explicit wins
    assert stored_dtypes(wide) == {torch.float32}
    assert stored_dtypes(model.save_pretrained(tmp_path / "fresh")) == {torch.float32}


def test_card_names_data_terms_scores_use_and_limits(tmp_path):
    model = small_model()
    model.training_data = ["scenes+tuxpaint", "csv:mine.csv"]
    out = model.save_pretrained(tmp_path / "m")
    meta = metadata_load(out / "README.md")
    assert meta["library_name"] == "captioner" and meta["license"] == "mit"
    assert meta["training_data"] == ["scenes", "tuxpaint", "csv:mine.csv"]
    text = (out / "README.md").read_text()
    assert "GNU GPL version 2 or later" in text  # Tux Paint's terms
    assert "check the terms of this data" in text  # unknown data is flagged, not guessed
    assert "None recorded" in text and "## Intended use" in text and "## Limits" in text
    assert "learnt on ImageNet" not in text  # this encoder was trained from scratch
    pretrained = {"encoder": {"name": "efficientnet_lite0", "weights": "default"}}
    assert "learnt on ImageNet-1k" in render_card(pretrained)  # and its terms are named
    # scores.json in the directory shows up in the card; the training data is remembered
    (out / "scores.json").write_text(json.dumps({"scenes/test": {"n": 7, "BLEU-4": 0.51234}}))
    reloaded = Captioner.from_pretrained(out, device="cpu", backend="torch")
    assert reloaded.training_data == ["scenes", "tuxpaint", "csv:mine.csv"]
    from captioner.model_card import write_card

    write_card(out, json.loads((out / "config.json").read_text()))
    assert "| scenes/test | 7 | - | 0.512 |" in (out / "README.md").read_text()
    evaluated = {  # what `captioner eval --json` prints
        "model": "m", "dataset": "scenes", "split": "test_novel", "n": 5, "seconds": 1.5,
        "decoding": {"method": "beam", "beam_size": 3, "max_length": 20},
        "scores": {"BLEU-4": 0.25, "CIDEr-D": 1.5}, "stats": {"mean_length": 9.0},
    }  # fmt: skip
    (out / "scores.json").write_text(json.dumps(evaluated))
    write_card(out, json.loads((out / "config.json").read_text()))
    card = (out / "README.md").read_text()
    assert "| data / split | items | decoding | BLEU-4 | CIDEr-D |" in card
    assert "| scenes/test_novel | 5 | beam 3 | 0.250 | 1.500 |" in card


def test_a_hand_written_card_is_kept(tmp_path):
    out = small_model().save_pretrained(tmp_path / "m")
    (out / "README.md").write_text("# my own card\n")
    from captioner.model_card import write_card

    assert write_card(out, json.loads((out / "config.json").read_text())) is None
    assert (out / "README.md").read_text() == "# my own card\n"


def test_push_then_load_pinned_revisions(hub, tmp_path):
    model = small_model()
    url = model.push_to_hub("me/tiny", private=True)
    assert url.startswith("hub://me/tiny/commit/")
    first_commit = url.rsplit("/", 1)[1]
    upload = next(c for c in hub.calls if c[0] == "upload")
    assert upload[3] == [
        "README.md",
        "config.json",
        "model.safetensors",
        "sentiment_vocab.json",
        "vocab.json",
    ]
    assert ("create_repo", "me/tiny", True) in hub.calls
    assert MARKER in hub.repos["me/tiny"]["main"]["README.md"].decode()
    expected = model.caption(IMAGE)
    # a second push changes main; the first commit and a branch stay loadable as they were
    with torch.no_grad():
        model.decoder.out.bias.add_(torch.randn_like(model.decoder.out.bias) * 5)
    model.push_to_hub("me/tiny")
    model.push_to_hub("me/tiny", revision="v2")
    pinned = Captioner.from_pretrained(
        "me/tiny", revision=first_commit, device="cpu", backend="torch"
    )
    assert pinned.caption(IMAGE) == expected
    latest = Captioner.from_pretrained("me/tiny", device="cpu", backend="torch")
    assert latest.caption(IMAGE) == model.caption(IMAGE)
    assert "v2" in hub.repos["me/tiny"]


def test_hub_errors_name_repo_and_revision(hub, tmp_path):
    small_model().push_to_hub("me/tiny")
    with pytest.raises(HubError, match=r"'me/tiny' at revision 'nope'"):
        Captioner.from_pretrained("me/tiny", revision="nope", device="cpu")
    with pytest.raises(HubError, match="'me/absent'"):
        Captioner.from_pretrained("me/absent", device="cpu")
    local = small_model().save_pretrained(tmp_path / "local")
    with pytest.raises(ValueError, match="revision= applies to hub ids"):
        Captioner.from_pretrained(local, revision="main")


def test_push_command_writes_the_card_and_uploads(hub, tmp_path, capsys):
    out = small_model().save_pretrained(tmp_path / "m")
    (out / "README.md").unlink()
    (out / "notes.txt").write_text("not part of the model")
    code = run_command(  # through the `captioner` dispatcher
        "push", [str(out), "me/cli", "--training-data", "scenes", "--message", "first", "-q"]
    )
    assert code == 0 and capsys.readouterr().out.startswith("hub://me/cli/commit/")
    assert metadata_load(out / "README.md")["training_data"] == ["scenes"]
    upload = next(c for c in hub.calls if c[0] == "upload")
    assert "notes.txt" not in upload[3] and upload[4]["commit_message"] == "first"


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "me/x"], "not a model directory"),
        (["{notmodel}", "me/x"], "config.json: missing file"),
        (["{model}", "no-owner"], "is not OWNER/NAME"),
    ],
)
def test_push_command_bad_input_exits_2_with_one_line(hub, tmp_path, capsys, args, message):
    (tmp_path / "notmodel").mkdir()
    paths = {"missing": tmp_path / "absent", "notmodel": tmp_path / "notmodel", "model": tmp_path}
    code = push_cli.main([a.format(**paths) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not [c for c in hub.calls if c[0] == "upload"]


def test_push_command_hub_failure_exits_1(tmp_path, monkeypatch, capsys):
    class Offline:
        def __init__(self, token=None):
            pass

        def create_repo(self, *a, **k):
            raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    out = small_model().save_pretrained(tmp_path / "m")
    assert push_cli.main([str(out), "me/x"]) == 1
    err = capsys.readouterr().err
    assert "could not push" in err and "no network" in err and "Traceback" not in err


def test_record_scores_merges_rows_and_refreshes_the_card(tmp_path):
    from captioner.model_card import record_scores

    model = small_model()
    model.training_data = ["scenes"]
    out = model.save_pretrained(tmp_path / "m")
    record_scores(out, {"scenes/test": {"n": 500, "BLEU-4": 0.7}})
    record_scores(out, {"uci-sentiment/test": {"n": 300, "accuracy": 0.81}})
    record_scores(out, {"scenes/test": {"n": 500, "BLEU-4": 0.75}})  # replaced, not doubled
    assert json.loads((out / "scores.json").read_text()) == {
        "scenes/test": {"n": 500, "BLEU-4": 0.75},
        "uci-sentiment/test": {"n": 300, "accuracy": 0.81},
    }
    card = (out / "README.md").read_text()
    assert "| scenes/test | 500 | - | 0.750 | - |" in card
    assert "| uci-sentiment/test | 300 | - | - | 0.810 |" in card
    assert metadata_load(out / "README.md")["training_data"] == ["scenes"]  # kept
