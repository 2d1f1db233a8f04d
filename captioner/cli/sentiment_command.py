"""`captioner sentiment [TEXT...] [--file FILE]`: the sentiment of each text, as a table or
JSON lines. Texts come from the arguments, from a file (one text a line; `-` = stdin) or,
when neither is given (or the one argument is `-`), from stdin. Only the model's sentiment
part is loaded: the image encoder is never built."""

from __future__ import annotations

import argparse
import json
import sys

from captioner import commandline
from captioner.cli import options


def build_parser(command: str = "sentiment") -> argparse.ArgumentParser:
    p = commandline.parser(
        "captioner sentiment",
        "Print the sentiment label, its probability and every label's probability of texts.",
        epilog="examples:\n  captioner sentiment 'what a lovely day' 'a dog on a beach'\n"
        "  captioner sentiment --file captions.txt --json\n"
        "  cut -f2 captions.tsv | captioner sentiment",
    )
    p.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to classify; '-' alone = stdin (default: none)",
    )
    p.add_argument(
        "--file",
        metavar="FILE",
        default=None,
        help="read texts from FILE, one a line; '-' = stdin (default: none)",
    )
    options.add_model(p)
    options.add_device(p)
    p.add_argument(
        "--batch-size", type=options.positive, default=256, help="texts per batch (default: 256)"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per line (default: off)"
    )
    return p


def read_texts(
    args: argparse.Namespace, stdin=None, *, prog: str = "captioner sentiment"
) -> list[str]:
    """The texts to read: arguments, then --file lines (blank lines skipped); stdin when
    neither is given, or when the only argument is `-` (as `--file -`). A blank argument, a
    file or stdin without text, binary or over `textinput.MAX_TEXT_BYTES` is a
    `TextInputError` (one line, exit 2; `prog` names the command)."""
    from captioner.cli.textinput import TextInputError, check_length, read_lines

    stdin = stdin if stdin is not None else sys.stdin
    texts, file = list(args.texts), args.file
    if texts == ["-"] and file is None:  # `captioner sentiment -`: a dash means stdin
        texts, file = [], "-"
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise TextInputError(f"TEXT argument {i} is empty; give the text itself")
        check_length(text, f"TEXT argument {i}")
    what = "sentences to translate" if "translate" in prog else "texts to classify"
    if file == "-" or (file is None and not texts):
        if file is None and stdin.isatty():
            raise TextInputError("give TEXT arguments, --file FILE or pipe texts")
        texts += read_lines("-", stdin=stdin, what=what)
    elif file is not None:
        texts += read_lines(file, what=what)
    return texts


def table(rows: list[dict]) -> str:
    """label, probability, each label's probability, text: aligned columns."""
    if not rows:
        return ""
    names = list(rows[0]["probs"])
    width = max(len("label"), *(len(r["label"]) for r in rows))
    cols = [max(5, len(n)) for n in names]
    head = "  ".join(f"{n:>{w}}" for n, w in zip(names, cols))
    lines = [f"{'label':<{width}}  score  {head}  text"]
    for r in rows:
        probs = "  ".join(f"{r['probs'][n]:>{w}.3f}" for n, w in zip(names, cols))
        lines.append(f"{r['label']:<{width}}  {r['score']:5.3f}  {probs}  {r['text']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commandline.configure_logging(args)
    texts = read_texts(args)
    if not texts:
        raise SystemExit("captioner sentiment: no texts to classify")

    import torch

    from captioner.devices import resolve_device
    from captioner.errors import ModelNotFoundError
    from captioner.model_dir import load_sentiment, model_directory
    from captioner.sentiment import sentiment_probs

    directory = model_directory(args.model)
    if directory is None:  # no default captioner bundled: its stand-in has no sentiment part
        raise ModelNotFoundError(f"{args.model}: no such model directory, bundled model or hub id")
    model, vocab = load_sentiment(directory)
    device = resolve_device(args.device)
    probs = sentiment_probs(
        model.to(device), vocab, texts, batch_size=args.batch_size, device=device
    )
    names = model.config.labels
    rows = []
    for text, p in zip(texts, probs):
        k = int(torch.argmax(p))
        rows.append({
            "text": text,
            "label": names[k],
            "score": round(float(p[k]), 4),
            "probs": {n: round(float(q), 4) for n, q in zip(names, p)},
        })  # fmt: skip
    if args.json:
        print("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
