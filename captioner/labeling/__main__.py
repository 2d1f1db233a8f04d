"""`torchrun ... -m captioner.labeling DIR [options]`: see `captioner.cli.label_distributed`."""

from captioner.cli.label_distributed import torchrun_main

if __name__ == "__main__":
    raise SystemExit(torchrun_main())
