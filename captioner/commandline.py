"""What every command line shares, below the commands that use it: the parser class (its
formatter, its two-line usage errors), `--quiet` / `--verbose` and the logging they set.

`captioner ...` (the flag builders of `captioner.cli.options`) and the training recipes'
own command lines (`captioner.pipelines.config`, `python -m captioner.pipelines.train_*`)
both build on it, so it lives in the core, which both may import.
"""

from __future__ import annotations

import argparse
import logging


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks; wider option column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors in two lines: a short usage naming the positional arguments, and the
    error (argparse's own usage of a training recipe ran to 40 lines)."""

    def error(self, message: str):  # type: ignore[override]
        words = []
        for a in self._get_positional_actions():
            name = a.metavar if isinstance(a.metavar, str) else a.dest
            words.append(f"{name} ..." if a.nargs in ("+", "*", argparse.REMAINDER) else name)
        usage = " ".join([self.prog, "[options]", *words])
        self.exit(2, f"usage: {usage}  (--help lists the options)\n{self.prog}: error: {message}\n")


def parser(prog: str, description: str = "", epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser with the shared formatter and `--quiet` / `--verbose`."""
    p = ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter
    )
    add_verbosity(p)
    return p


def add_verbosity(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-q", "--quiet", action="store_true", help="print warnings and errors only (default: off)"
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log progress details such as the encoder built (default: off)",
    )


def configure_logging(args: argparse.Namespace, *, chatty: tuple[str, ...] = ()) -> None:
    """Root level WARNING (ERROR with --quiet, INFO with --verbose); loggers named in
    `chatty` (a training recipe's own progress) log INFO unless --quiet."""
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    for name in chatty:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
