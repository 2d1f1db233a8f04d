"""Model directories on the Hugging Face hub, through `huggingface_hub`: download a snapshot
(optionally pinned to a revision), and push a directory with its model card.

Only the model's own files travel: `*.json`, `*.safetensors` and the card `README.md`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from captioner import checkpoint as ckpt
from captioner.errors import CaptionerError
from captioner.model_card import CARD, write_card

log = logging.getLogger(__name__)

MODEL_FILES = ["*.json", "*.safetensors", CARD]


class HubError(CaptionerError, RuntimeError):
    """The hub could not be reached or refused a request; the message says which and why."""


def download(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """A local snapshot of the model at `repo_id` (a branch, tag or commit with `revision`)."""
    from huggingface_hub import snapshot_download

    at = f" at revision {revision!r}" if revision else ""
    try:
        path = snapshot_download(
            repo_id=repo_id,
            revision=revision,
            token=token,
            allow_patterns=MODEL_FILES,
            library_name="captioner",
        )
    except Exception as e:  # network, auth, no such repo / revision: one clear message
        raise HubError(
            f"could not fetch model {repo_id!r}{at} from the Hugging Face hub "
            f"(no network, no such repository or revision, or no access): {e}"
        ) from None
    return Path(path)


def check_model_dir(directory: str | Path) -> dict[str, Any]:
    """`config.json` of a captioner model directory; a clear error for anything else."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ckpt.CheckpointError(f"{directory}: not a model directory")
    config = ckpt.read_json(directory, ckpt.CONFIG)
    if not isinstance(config, dict) or config.get("format") != "captioner":
        raise ckpt.CheckpointError(f"{directory / ckpt.CONFIG}: not a captioner model config")
    if not (directory / ckpt.WEIGHTS).is_file():
        raise ckpt.CheckpointError(f"{directory / ckpt.WEIGHTS}: missing file")
    return config


def push_model_dir(
    directory: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    training_data: list[str] | None = None,
) -> str:
    """Write (or refresh) the model card in `directory`, create `repo_id` if needed, and
    upload the model's files in one commit (to branch `revision`, created if missing).
    Returns the commit's URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    config = check_model_dir(directory)
    write_card(directory, config, training_data=training_data)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(directory),
            allow_patterns=MODEL_FILES,
            revision=revision,
            commit_message=commit_message or f"Upload captioner model {config.get('name', '')}",
        )
    except Exception as e:
        raise HubError(f"could not push {directory} to {repo_id!r}: {e}") from None
    url = str(getattr(commit, "commit_url", commit))
    log.info("pushed %s to %s (%s)", directory, repo_id, url)
    return url


def push_captioner(
    model: Any,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    dtype: Any = None,
) -> str:
    """`Captioner.push_to_hub`: save the model (with its card) in a temporary folder and
    upload it (`push_model_dir`). Returns the commit URL."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="captioner-push-") as tmp:
        staged = model.save_pretrained(Path(tmp) / "model", dtype=dtype)
        return push_model_dir(
            staged,
            repo_id,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
        )
