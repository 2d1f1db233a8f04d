"""`captioner caption|tag|describe IMG...`: results for a few images, as text or JSON lines.

The images go through the same batched engine as `captioner label` (`LabelEngine`: one
decode path, the ONNX Runtime encoder on CPU, batched beam search); folders are the job of
`captioner label`. Exit status 3 when some images could not be read (their rows carry an
`error`), 2 for bad usage or a model without the head the command needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from captioner import commandline
from captioner.cli import options
from captioner.errors import MissingHeadError

EXIT_FAILED = 3  # some inputs could not be read
COMMANDS = ("caption", "tag", "describe")
HELP = {
    "caption": "Print a caption for each image.",
    "tag": "Print the top-k tags (ImageNet or the model's own labels) for each image.",
    "describe": "Print caption, tags and the caption's sentiment for each image.",
}


def build_parser(command: str) -> argparse.ArgumentParser:
    p = commandline.parser(f"captioner {command}", HELP[command])
    p.add_argument("images", nargs="+", metavar="IMG", help="image files")
    options.add_model(p)
    options.add_device(p)
    options.add_backend(p)
    options.add_batch_size(p, default=16)
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per line (default: off)"
    )
    if command in ("caption", "describe"):
        options.add_decoding(p)
        options.add_language(p)
    if command in ("tag", "describe"):  # the same --min-tag-score default as label, the demo
        options.add_tags(p, at_least=1)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: captioner caption|tag|describe IMG...", file=sys.stderr)
        return 2
    command = argv[0]
    args = build_parser(command).parse_args(argv[1:])
    commandline.configure_logging(args)

    from captioner.api import Captioner

    model = Captioner.from_pretrained(args.model, device=args.device, backend="torch")
    failed = 0
    for row in describe_paths(model, command, args):
        failed += row["error"] is not None
        _print(row, args.json)
    return EXIT_FAILED if failed else 0


def _engine(model, command: str, args: argparse.Namespace):
    from captioner.labeling.engine import EngineOptions, LabelEngine

    head = {"caption": model.decoder, "tag": model.recognizer}.get(command, True)
    if head is None:
        raise MissingHeadError(f"model {model.name!r} has no {command} head")
    generation = options.generation_config(args, model)
    return LabelEngine(
        model,
        EngineOptions(
            backend=args.backend,
            top_k=getattr(args, "top_k", 0),
            min_tag_score=getattr(args, "min_tag_score", 0.0),
            generation=generation,
            lang=getattr(args, "lang", "en"),
            translator=getattr(args, "translator", None),
            lanes=1,  # one batch at a time: the encoder keeps every core
        ),
    )


def describe_paths(model, command: str, args: argparse.Namespace) -> Iterator[dict]:
    """One row per path, in order: path, the command's fields, and `error` (None or why
    the file could not be read)."""
    from captioner.imageio import MAX_PIXELS
    from captioner.labeling.loader import load_batch

    engine = _engine(model, command, args)
    paths = args.images
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start : start + args.batch_size]
        batch = load_batch(
            [""], [(0, p) for p in chunk], engine.spec, MAX_PIXELS, raw_jpegs=engine.decodes_jpeg
        )
        if batch.jpegs:  # on a GPU, as `captioner label` does
            from captioner.labeling.device_decode import decode_on_device

            decode_on_device(
                batch, folders=[""], spec=engine.spec, device=engine.device, max_pixels=MAX_PIXELS
            )
        results = engine.describe(batch.pixels) if batch.pixels is not None else []
        by_pos = dict(zip(batch.ok, results))
        for pos, path in enumerate(chunk):
            yield _row(command, path, by_pos.get(pos), batch.errors.get(pos))


def _row(command: str, path: str, result: dict | None, error: str | None) -> dict:
    """The command's view of the one image record (`records.image_record`, as `label` writes
    it): the path, the command's fields (caption / tags / all three), translations when
    asked for, and the error."""
    from captioner.records import image_record

    record = image_record(path, "", result, error=error, model="")
    fields = {"caption": ("caption",), "tag": ("tags",)}.get(
        command, ("caption", "tags", "sentiment")
    )
    keep = ("path", *fields, "translations", "error")
    return {k: record[k] for k in keep if k in record}


def _print(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row, ensure_ascii=False))
        return
    if row.get("error"):
        print(f"{row['path']}\tERROR: {row['error']}")
        return
    parts = [row["path"]]
    if "caption" in row:
        parts.append(row["caption"] if row["caption"] is not None else "(no caption head)")
    parts += [t for t in (row.get("translations") or {}).values() if t]
    if row.get("tags"):
        parts.append(", ".join(f"{t['label']} ({t['score']:.2f})" for t in row["tags"]))
    if row.get("sentiment"):
        parts.append(f"{row['sentiment']['label']} ({row['sentiment']['score']:.2f})")
    print("\t".join(parts))
