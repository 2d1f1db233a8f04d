"""`python -m captioner.data`: see captioner.data.cli."""

import sys

from captioner.data.cli import main

sys.exit(main())
