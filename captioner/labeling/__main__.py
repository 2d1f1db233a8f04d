"""`torchrun ... -m captioner.labeling DIR [options]`: see `captioner.labeling.distributed`."""

from captioner.labeling.distributed import torchrun_main

if __name__ == "__main__":
    raise SystemExit(torchrun_main())
