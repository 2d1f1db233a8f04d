"""`torchrun ... -m captioner.labeling DIR [options]`: see `captioner.labeling.distributed`."""

from captioner.labeling.distributed import torchrun_main

raise SystemExit(torchrun_main())
