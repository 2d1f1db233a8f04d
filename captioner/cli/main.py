"""`captioner` command line: a thin dispatcher. Each command lives in its own module that
exposes `main(argv: list[str] | None = None) -> int`, so `captioner --help` stays fast."""

from __future__ import annotations

import importlib
import logging
import sys

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "label": (
        "captioner.labeling.cli",
        "label every image under folders (JSONL, CSV, metadata.jsonl, XMP)",
    ),
    "caption": ("captioner.infer_cli", "print captions for a few images"),
    "tag": ("captioner.infer_cli", "print top-k tags for a few images"),
    "describe": ("captioner.infer_cli", "print caption, tags and sentiment for a few images"),
    "sentiment": ("captioner.infer_cli", "print the sentiment of texts"),
    "train": ("captioner.pipelines.cli", "train a captioner, recognizer or sentiment model"),
    "eval": (
        "captioner.pipelines.evaluate",
        "score a model on a dataset (COCO metrics / accuracy)",
    ),
    "data": ("captioner.data.cli", "build the scene world, fetch corpora, inspect datasets"),
    "demo": ("captioner.demo.app", "start the Gradio web demo (127.0.0.1 by default)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: captioner COMMAND [options]   (captioner COMMAND --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"captioner {version('captioner')}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"captioner: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(COMMANDS[name][0])
    if COMMANDS[name][0] == "captioner.infer_cli":
        rest = [name, *rest]
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print("captioner: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
