"""`captioner train KIND ...`: dispatch to a training recipe.

    captioner train caption    --dataset scenes --out models/scenes [--scst --init DIR]
    captioner train recognizer --dataset ... --out ...
    captioner train sentiment  --dataset uci-sentiment --out ...

Each recipe is a module with `main(argv) -> int`; `captioner train KIND --help` lists its flags.
Multi-GPU: `torchrun --nproc-per-node N -m captioner.pipelines.train_captioner ...`.
"""

from __future__ import annotations

import importlib
import sys

RECIPES: dict[str, tuple[str, str]] = {
    "caption": ("captioner.pipelines.train_captioner", "CNN encoder + RNN decoder captioner"),
    "recognizer": ("captioner.pipelines.train_recognizer", "image recognition (tagging) head"),
    "sentiment": ("captioner.pipelines.train_sentiment", "LSTM/GRU sentiment classifier"),
}


def usage() -> str:
    lines = ["usage: captioner train {caption,recognizer,sentiment} [options]", "", "recipes:"]
    lines += [f"  {name:<11} {text}" for name, (_, text) in RECIPES.items()]
    lines.append("\n`captioner train RECIPE --help` lists the recipe's flags.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in RECIPES:
        print(f"captioner train: unknown recipe {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(RECIPES[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
