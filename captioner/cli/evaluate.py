"""`captioner eval --model DIR --dataset SPEC [--split test]`: score a model on a dataset.

Caption datasets: BLEU-1..4, METEOR (when Java is available), ROUGE-L, CIDEr-D, plus scene
precision / recall / F1 on the scene world. Sentiment datasets: accuracy and per-class
precision / recall / F1. The scoring lives in `captioner.evaluation`. Translation
(`multi30k:DIR`, `--model` a translator directory): sacrebleu BLEU on the tokenised test
files and on detokenised output (`captioner.pipelines.translate_eval`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from captioner import commandline
from captioner.cli import options
from captioner.errors import CaptionerError, MissingHeadError


def build_parser(command: str = "eval") -> argparse.ArgumentParser:
    p = commandline.parser("captioner eval", __doc__.split("\n\n")[0])
    options.add_model(p)
    p.add_argument(
        "--dataset", required=True, help="dataset spec: scenes, tuxpaint, flickr8k:DIR, "
        "uci-sentiment, hf:NAME ... (required)",
    )  # fmt: skip
    p.add_argument("--split", default="test", help="split to score (default: test)")
    options.add_decoding(p, sampling=False)
    p.add_argument(
        "--limit",
        type=options.positive,
        default=None,
        help="score only the first N items (default: all)",
    )
    options.add_batch_size(p, default=32)
    options.add_device(p)
    options.add_backend(p)
    p.add_argument(
        "--no-meteor", action="store_true", help="skip METEOR, which needs Java (default: off)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (default: off)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commandline.configure_logging(args)
    from captioner.api import Captioner
    from captioner.data.spec import CAPTION_KINDS, SENTIMENT_KINDS, dataset_kind, parse_spec
    from captioner.evaluation import evaluate_captions, evaluate_sentiment

    if dataset_kind(args.dataset) == "translation":  # a translator on a parallel corpus
        from captioner.cli.translate_command import evaluate_translation

        return evaluate_translation(args)
    sentiment = dataset_kind(args.dataset) == "sentiment"
    parse_spec(args.dataset, kinds=SENTIMENT_KINDS if sentiment else CAPTION_KINDS)  # fail fast
    backend = "torch" if sentiment else args.backend
    model = Captioner.from_pretrained(args.model, device=args.device, backend=backend)
    if sentiment:
        from captioner.data import load_sentiment_dataset as load
    else:
        from captioner.data import load_caption_dataset as load
    try:
        dsd = load(args.dataset)
    except (FileNotFoundError, ValueError) as e:  # DataError is one; others name the file
        raise CaptionerError(
            str(e) if isinstance(e, CaptionerError) else f"{args.dataset}: {e}"
        ) from e
    split = options.pick_split(dsd, args)
    if sentiment:
        if model.sentiment_model is None:
            raise MissingHeadError(f"model {args.model} has no sentiment head")
        result = evaluate_sentiment(model, split)
    else:
        if model.decoder is None:
            raise MissingHeadError(f"model {args.model} has no caption decoder")
        result = evaluate_captions(
            model, split, generation=options.generation_config(args, model),
            batch_size=args.batch_size, meteor=not args.no_meteor,
        )  # fmt: skip
    result = {"model": str(args.model), "dataset": args.dataset, "split": args.split, **result}
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


def table(result: dict[str, Any]) -> str:
    """A result of `captioner eval` as an aligned text table."""
    lines = [f"model {result['model']}  dataset {result['dataset']}  split {result['split']}"
             f"  items {result['n']}"]  # fmt: skip
    if "decoding" in result:
        d = result["decoding"]
        lines.append(
            f"decoding {d['method']}  beam_size {d['beam_size']}  max_length {d['max_length']}"
        )
    width = max(map(len, result["scores"]))
    lines += [f"  {k:<{width}}  {v:.4f}" for k, v in result["scores"].items()]
    for name, c in result.get("per_class", {}).items():
        lines.append(f"  {name:<{width}}  P {c['precision']:.3f}  R {c['recall']:.3f}"
                     f"  F1 {c['f1']:.3f}  n {c['support']}")  # fmt: skip
    for ex in result.get("examples", []):
        lines.append(f"  {ex['image_id']}: {ex['caption']!r}  (ref: {ex['references'][0]!r})")
    return "\n".join(lines)


if __name__ == "__main__":
    from captioner.cli.main import run_command

    sys.exit(run_command("eval", sys.argv[1:]))
