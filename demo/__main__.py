"""`python -m captioner.demo`: start the web demo (same options as `captioner demo`)."""

import sys

from captioner.demo.app import main

sys.exit(main())
