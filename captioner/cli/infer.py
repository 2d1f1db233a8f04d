"""`captioner caption|tag|describe IMG...` and `captioner sentiment TEXT...`: results for a few
inputs, as text or JSON. Folders are the job of `captioner label`."""

from __future__ import annotations

import argparse
import json
import sys

from captioner.imageio import ImageLoadError

EXIT_FAILED = 3  # some inputs could not be read


def build_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"captioner {command}")
    if command == "sentiment":
        p.add_argument("texts", nargs="+", metavar="TEXT", help="sentences to classify")
    else:
        p.add_argument("images", nargs="+", metavar="IMG", help="image files")
        p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--model", default="default", help="model directory, bundled name or hub id")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    if command in ("caption", "describe"):
        p.add_argument("--beam-size", type=int, default=3)
        p.add_argument("--max-length", type=int, default=None)
        p.add_argument("--method", choices=["beam", "greedy", "sample"], default="beam")
        p.add_argument("--temperature", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=None)
    if command in ("tag", "describe"):
        p.add_argument("--top-k", type=int, default=5)
    return p


def _check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("batch_size", "beam_size", "max_length", "top_k"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("caption", "tag", "describe", "sentiment"):
        print(
            "usage: captioner caption|tag|describe IMG... | captioner sentiment TEXT...",
            file=sys.stderr,
        )
        return 2
    command = argv[0]
    parser = build_parser(command)
    args = parser.parse_args(argv[1:])
    _check_positive(parser, args)

    from captioner.api import Captioner

    try:
        model = Captioner.from_pretrained(args.model, device=args.device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"captioner {command}: cannot load model {args.model!r}: {e}", file=sys.stderr)
        return 2
    if command == "sentiment":
        try:
            results = model.sentiment(args.texts)
        except RuntimeError as e:
            print(f"captioner sentiment: {e}", file=sys.stderr)
            return 2
        for text, (label, score) in zip(args.texts, results):
            print(
                json.dumps({"text": text, "label": label, "score": round(score, 4)})
                if args.json
                else f"{label}\t{score:.3f}\t{text}"
            )
        return 0

    failed = 0
    for path in args.images:  # one at a time so one bad file does not hide the others' results
        try:
            row = _run(model, command, path, args)
        except ImageLoadError as e:
            failed += 1
            row = {"path": path, "error": str(e)}
        except RuntimeError as e:  # the model lacks the head this command needs
            print(f"captioner {command}: {e}", file=sys.stderr)
            return 2
        _print(row, command, args.json)
    return EXIT_FAILED if failed else 0


def _run(model, command: str, path: str, args: argparse.Namespace) -> dict:
    if command == "tag":
        tags = model.tag([path], top_k=args.top_k)[0]
        return {
            "path": path,
            "tags": [{"label": t, "score": round(s, 4)} for t, s in tags],
            "error": None,
        }
    kwargs = dict(
        beam_size=args.beam_size,
        max_length=args.max_length,
        method=args.method,
        temperature=args.temperature,
        seed=args.seed,
    )
    if command == "caption":
        return {"path": path, "caption": model.caption([path], **kwargs)[0], "error": None}
    d = model.describe([path], tags=args.top_k, **kwargs)[0]
    return {"path": path, **d.to_dict(), "error": None}


def _print(row: dict, command: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row, ensure_ascii=False))
        return
    if row.get("error"):
        print(f"{row['path']}\tERROR: {row['error']}")
        return
    parts = [row["path"]]
    if "caption" in row:
        parts.append(row["caption"] if row["caption"] is not None else "(no caption head)")
    if row.get("tags"):
        parts.append(", ".join(f"{t['label']} ({t['score']:.2f})" for t in row["tags"]))
    if row.get("sentiment"):
        parts.append(f"{row['sentiment']['label']} ({row['sentiment']['score']:.2f})")
    print("\t".join(parts))
