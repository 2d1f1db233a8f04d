"""`captioner push MODEL_DIR REPO_ID`: write the model card into a model directory and upload
the directory to the Hugging Face hub (`huggingface_hub`; log in first with `hf auth login`
or pass --token / set HF_TOKEN)."""

from __future__ import annotations

import argparse
import sys

from captioner import commandline


def build_parser(command: str = "push") -> argparse.ArgumentParser:
    p = commandline.parser(
        "captioner push",
        "Write README.md (the model card: training data and its terms, scores from "
        "scores.json, intended use, limits) into MODEL_DIR and upload the model's files to "
        "the Hugging Face hub as REPO_ID, creating the repository if needed.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory to upload")
    p.add_argument("repo_id", metavar="REPO_ID", help="hub repository, as OWNER/NAME")
    p.add_argument(
        "--revision",
        default=None,
        help="branch to commit to, created if missing (default: the repository's main branch)",
    )
    p.add_argument(
        "--private",
        action="store_true",
        help="make a newly created repository private (default: off)",
    )
    p.add_argument(
        "--training-data",
        action="append",
        default=None,
        metavar="SPEC",
        help="a dataset spec the model was trained on, for the card; repeatable "
        "(default: what the directory's card already says)",
    )
    p.add_argument(
        "--message", default=None, help="commit message (default: 'Upload captioner model NAME')"
    )
    p.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or the saved login)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commandline.configure_logging(args)

    from captioner.checkpoint import CheckpointError
    from captioner.hub import HubError, push_model_dir

    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        print(f"captioner push: error: {args.repo_id!r} is not OWNER/NAME", file=sys.stderr)
        return 2
    try:
        url = push_model_dir(
            args.model_dir,
            args.repo_id,
            token=args.token,
            private=args.private or None,
            revision=args.revision,
            commit_message=args.message,
            training_data=args.training_data,
        )
    except CheckpointError as e:
        print(f"captioner push: error: {e}", file=sys.stderr)
        return 2
    except HubError as e:
        print(f"captioner push: error: {e}", file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
