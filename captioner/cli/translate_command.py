"""`captioner translate [TEXT...] [--file FILE] --to de`: translate English sentences (captions)
with an attentive RNN translator. Texts come from the arguments, from a file (one sentence a
line; `-` = stdin) or, when neither is given (or the one argument is `-`), from stdin; one
translation a line comes out, in order (or JSON lines with --json). Only the translator is
loaded: no image model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from captioner import commandline
from captioner.cli import options


def build_parser(command: str = "translate") -> argparse.ArgumentParser:
    p = commandline.parser(
        "captioner translate",
        "Translate English sentences, one translation a line.",
        epilog="examples:\n  captioner translate 'a dog runs on the grass' --to de\n"
        "  captioner translate --file captions.txt --to fr --json\n"
        "  cut -f2 captions.tsv | captioner translate --to de --translator my-en-de",
    )
    p.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="sentences to translate; '-' alone = stdin (default: none)",
    )
    p.add_argument(
        "--file",
        metavar="FILE",
        default=None,
        help="read sentences from FILE, one a line; '-' = stdin (default: none)",
    )
    p.add_argument(
        "--to", dest="tgt", required=True, metavar="LANG",
        help=f"target language: {options.installed_languages(english=False)} (another with "
        "--translator) (required)",
    )  # fmt: skip
    p.add_argument(
        "--from", dest="src", default="en", metavar="LANG", help="source language (default: en)"
    )
    p.add_argument(
        "--translator",
        default=None,
        metavar="DIR",
        help="translator model directory (default: the bundled captioner/models/translate-en-LANG)",
    )
    options.add_device(p)
    options.add_decoding(p, sampling=False, beam_size=4)
    p.add_argument(
        "--batch-size", type=options.positive, default=64, help="sentences per batch (default: 64)"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per line (default: off)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commandline.configure_logging(args)
    from captioner.cli.sentiment_command import read_texts
    from captioner.devices import resolve_device
    from captioner.translation import check_language, find_translator

    check_language(args.tgt)  # an unknown language fails before any text is read
    texts = read_texts(args, prog="captioner translate")
    if not texts:
        raise SystemExit("captioner translate: no sentences to translate")
    model = find_translator(
        args.tgt, src=args.src, path=args.translator, device=resolve_device(args.device)
    )
    found = model.translate(
        texts, batch_size=args.batch_size, beam_size=args.beam_size, max_length=args.max_length
    )
    for text, translation in zip(texts, found):
        if args.json:
            row = {"text": text, "translation": translation, "lang": model.config.tgt_lang}
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(translation)
    return 0


if __name__ == "__main__":
    from captioner.cli.main import run_command

    sys.exit(run_command("translate", sys.argv[1:]))


def evaluate_translation(args: argparse.Namespace) -> int:
    """`captioner eval --model TRANSLATOR --dataset multi30k:DIR[?tgt=fr]`: BLEU two ways.
    `--model default` means the bundled translator of the spec's `tgt` (default de)."""
    from captioner.data.multi30k import tokenised_references
    from captioner.data.spec import TRANSLATION_KINDS, load_translation_dataset, parse_spec
    from captioner.devices import resolve_device
    from captioner.errors import CaptionerError
    from captioner.pipelines.translate_eval import evaluate_translator
    from captioner.translation import DEFAULT_GENERATION, TranslationModel, find_translator

    (spec,) = parse_spec(args.dataset, kinds=TRANSLATION_KINDS)
    device = resolve_device(args.device)
    if args.model == "default":
        model = find_translator(str(spec.options.get("tgt", "de")), device=device)
    else:
        model = TranslationModel.load(args.model, device=device)
    src, tgt = model.pair
    if (spec.options.get("src", src), spec.options.get("tgt", tgt)) != (src, tgt):
        raise CaptionerError(f"{args.dataset} does not match the translator's pair {src}->{tgt}")
    dsd = load_translation_dataset(args.dataset, src=src, tgt=tgt)
    split = options.pick_split(dsd, args)
    refs = tokenised_references(spec.args[0], args.split, tgt)
    # the translator's own ranking and blocking (as `captioner translate` and the release
    # scores), at the flags' beam width
    generation = dataclasses.replace(
        DEFAULT_GENERATION, beam_size=args.beam_size, max_length=args.max_length
    )
    result = evaluate_translator(
        model, split, tokenised_references=refs, generation=generation,
        batch_size=args.batch_size,
    )  # fmt: skip
    result = {"model": str(args.model), "dataset": args.dataset, "split": args.split, **result}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"model {result['model']}  dataset {result['dataset']}  split {result['split']}  "
          f"pair {result['pair']}  items {result['n']}  decoding {result['decoding']}")  # fmt: skip
    for key, value in result["scores"].items():
        print(f"  {key:<10}  {value:6.2f}  {result['labels'][key]}")
    if not refs:
        print(f"  (no tok/ references for {args.split!r}: tokenised BLEU not computed)")
    errors = result.get("errors")
    if errors:  # captioner.pipelines.translation_errors: counted by rule
        print(
            f"  repeated verb        {errors['repeated_verb']['share']:5.1f} % of sentences "
            f"({errors['same_verb_twice']['share']:.1f} % the same verb form twice)"
        )
        print(f"  dropped number word  {errors['dropped_number']['share']:5.1f} % of sentences "
              f"({errors['dropped_number']['of_numbered']:.1f} % of the "
              f"{errors['numbered_sources']} with a number; the references: "
              f"{errors['reference_dropped_number']['of_numbered']:.1f} %)")  # fmt: skip
    for ex in result["examples"]:
        print(f"  {ex['source']!r} -> {ex['translation']!r}  (ref: {ex['reference']!r})")
    return 0
