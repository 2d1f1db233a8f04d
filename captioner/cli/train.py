"""`captioner train RECIPE ...`: dispatch to a training recipe.

    captioner train caption    --dataset scenes --out models/scenes
    captioner train scst       --init models/scenes --dataset scenes --out models/scenes-scst
    captioner train everyday   --out models/everyday --epochs 8
    captioner train recognizer --dataset ... --out ...
    captioner train sentiment  --dataset uci-sentiment --out ...
    captioner train translate  --dataset multi30k:DIR --src en --tgt de --out ...

Each recipe is a module with `main(argv) -> int` and one config dataclass whose fields are
its flags (`captioner.pipelines.config`); `captioner train RECIPE --help` lists them.
Multi-GPU: `torchrun --nproc-per-node N -m captioner.pipelines.train_captioner ...`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# recipe -> (module with main(argv), its config dataclass, one-line help)
RECIPES: dict[str, tuple[str, str, str]] = {
    "caption": (
        "captioner.pipelines.train_captioner",
        "CaptionTrainConfig",
        "CNN encoder + RNN decoder captioner",
    ),
    "scst": (
        "captioner.pipelines.train_scst",
        "ScstTrainConfig",
        "self-critical (CIDEr-D) fine-tuning of a trained captioner",
    ),
    "everyday": (
        "captioner.pipelines.train_everyday",
        "EverydayConfig",
        "concept-bridged captioner: Flickr8k photos + 185k text-only captions",
    ),
    "recognizer": (
        "captioner.pipelines.train_recognizer",
        "RecognizerTrainConfig",
        "image recognition (tagging) head",
    ),
    "sentiment": (
        "captioner.pipelines.train_sentiment",
        "SentimentTrainConfig",
        "LSTM/GRU sentiment classifier",
    ),
    "translate": (
        "captioner.pipelines.train_translator",
        "TranslateTrainConfig",
        "attentive RNN translator (Multi30k: en -> de / fr / cs)",
    ),
}


def usage() -> str:
    lines = [f"usage: captioner train {{{','.join(RECIPES)}}} [options]", "", "recipes:"]
    lines += [f"  {name:<11} {text}" for name, (_, _, text) in RECIPES.items()]
    lines.append("\n`captioner train RECIPE --help` lists the recipe's flags.")
    return "\n".join(lines)


def build_parser(recipe: str) -> argparse.ArgumentParser:
    """The flags of one recipe (what `captioner train RECIPE --help` shows)."""
    from captioner.pipelines.config import build_parser as config_parser

    module_name, config_name, text = RECIPES[recipe]
    module = importlib.import_module(module_name)
    doc = (module.__doc__ or text).split("\n\n")[0]
    return config_parser(
        getattr(module, config_name), prog=f"captioner train {recipe}", description=doc
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity = []  # `captioner -v train caption ...`: the recipe's flag
    while argv and argv[0] in ("-q", "--quiet", "-v", "--verbose"):
        verbosity.append(argv.pop(0))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in RECIPES:
        print(f"captioner train: unknown recipe {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(RECIPES[name][0])
    return int(module.main([*rest, *verbosity]) or 0)


if __name__ == "__main__":
    sys.exit(main())
