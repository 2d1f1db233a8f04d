"""`python -m captioner.demo`: the same as `captioner demo` (see captioner.cli.demo)."""

import sys

from captioner.cli import run_command

sys.exit(run_command("demo", sys.argv[1:]))
