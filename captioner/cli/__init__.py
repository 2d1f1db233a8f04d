"""Every `captioner` command: `main` dispatches, `options` holds the shared flag builders,
one module per command group (`infer`, `sentiment`, `train`, `evaluate`, `data`, `demo`;
`label` lives in `captioner.labeling.cli`)."""

from captioner.cli.main import COMMANDS, main, run_command

__all__ = ["COMMANDS", "main", "run_command"]
