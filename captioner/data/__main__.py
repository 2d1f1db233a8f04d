"""`python -m captioner.data`: the same as `captioner data` (see captioner.cli.data)."""

import sys

from captioner.cli import run_command

sys.exit(run_command("data", sys.argv[1:]))
