"""`captioner` command line: a thin dispatcher over one module per command group.

Each module exposes `main(argv: list[str] | None = None) -> int` (and `build_parser`), and is
imported only when its command runs, so `captioner --help` stays fast. Every error the
library raises for bad input (`captioner.errors.CaptionerError`) ends as one line on stderr
and exit status 2, whatever the command.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

from captioner.errors import CaptionerError

# command -> (module with main(argv), one-line help). Commands that share a module get their
# own name as argv[0] (see SHARED).
COMMANDS: dict[str, tuple[str, str]] = {
    "label": (
        "captioner.cli.label",
        "label every image under folders (JSONL, CSV, metadata.jsonl, XMP)",
    ),
    "caption": ("captioner.cli.infer", "print captions for a few images"),
    "tag": ("captioner.cli.infer", "print top-k tags for a few images"),
    "describe": ("captioner.cli.infer", "print caption, tags and sentiment for a few images"),
    "sentiment": ("captioner.cli.sentiment_command", "print the sentiment of texts"),
    "translate": (
        "captioner.cli.translate_command",
        "translate English sentences (German, French)",
    ),
    "train": ("captioner.cli.train", "train a captioner, recognizer, sentiment or translator"),
    "eval": ("captioner.cli.evaluate", "score a model on a dataset (COCO metrics / accuracy)"),
    "data": ("captioner.cli.data", "build the scene world, fetch corpora, inspect datasets"),
    "demo": ("captioner.cli.demo", "start the Gradio web demo (127.0.0.1 by default)"),
    "push": ("captioner.cli.push", "upload a model directory with its model card to the HF hub"),
}
SHARED = ("captioner.cli.infer",)
# commands whose CPU work is loading a model and many small ops (see captioner.cpus)
SMALL_OPS = ("caption", "tag", "describe", "sentiment", "translate")
VERBOSITY = ("-q", "--quiet", "-v", "--verbose")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool piped to head


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: captioner [-q|-v] COMMAND [options]   (captioner COMMAND --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "exit status: 0 done, 2 bad usage, input, data or model, 3 some inputs failed"]
    return "\n".join(lines)


def _threads(name: str) -> contextlib.AbstractContextManager:
    """Commands that load a model and run small ops take `captioner.cpus.small_op_threads`."""
    if name not in SMALL_OPS:
        return contextlib.nullcontext()
    from captioner.cpus import small_op_threads

    return small_op_threads()


def run_command(name: str, argv: list[str]) -> int:
    """Run command `name` with its arguments; `CaptionerError` -> one line, status 2."""
    target = COMMANDS[name][0]
    try:
        module = importlib.import_module(target)
        with _threads(name):
            status = int(module.main([name, *argv] if target in SHARED else argv) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except CaptionerError as e:
        print(f"captioner {name}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, already printed)
        if isinstance(e.code, str):  # SystemExit("message"): print it as Python would
            print(e.code, file=sys.stderr)
        return e.code if isinstance(e.code, int) else 2
    except BrokenPipeError:  # `captioner caption ... | head -1`: stop quietly, as Unix tools do
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"captioner {name}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's flush at exit cannot raise
    BrokenPipeError again (Python's documented way to exit on a closed pipe)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout already closed or replaced
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"captioner {version('captioner')}")
        return 0
    verbosity = []  # `captioner -v CMD ...` = `captioner CMD -v ...`
    while argv and argv[0] in VERBOSITY:
        verbosity.append(argv.pop(0))
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        print(f"captioner: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return run_command(argv[0], [*verbosity, *argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
