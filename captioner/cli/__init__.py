"""Every `captioner` command: `main` dispatches, `options` holds the shared flag builders,
one module per command group (`infer`, `sentiment_command`, `translate_command`, `train`,
`evaluate`, `data`, `demo`, `push`, `label` with its flags in `label_flags` and its torchrun
entry in `label_distributed`)."""

from captioner.cli.main import COMMANDS, main, run_command

__all__ = ["COMMANDS", "main", "run_command"]
