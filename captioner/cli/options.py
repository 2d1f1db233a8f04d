"""Flag builders every command shares, so `--model`, `--device`, `--backend`, the decoding
flags and `--batch-size` read and behave the same everywhere (the parser itself and
`--quiet/--verbose`: `captioner.commandline`).

Every flag's help ends with its default: "(default: X)". `tests/cli/test_cli_help.py` walks all
parsers and checks it.
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

from captioner.devices import DEVICE_HELP
from captioner.records import MIN_TAG_SCORE

BACKENDS = ("auto", "torch", "onnx")


def _int_at_least(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


positive = _int_at_least(1)
non_negative = _int_at_least(0)
# = captioner.decoding.MAX_BEAM_SIZE / MAX_LENGTH (not imported: it would import torch)
beam_width = _int_at_least(1, 256)  # 100000 beams took 10 GB and never finished
length_limit = _int_at_least(1, 1000)


def device_name(text: str) -> str:
    """argparse type: auto | cpu | cuda | cuda:N (checked against the machine later)."""
    low = text.strip().lower()
    head, _, index = low.partition(":")
    if low in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit()):
        return low
    raise argparse.ArgumentTypeError(f"{text!r} is not a device; use {DEVICE_HELP}")


def model_name(text: str) -> str:
    """argparse type of --model: a bundled model's bare name ("default", "scenes") means the
    bundled model even when a folder of that name sits in the current directory (a note
    says so; `./default` names the folder): `captioner.model_dir.bundled_model`, the rule
    the API follows too. Anything else passes unchanged."""
    import os

    from captioner.model_dir import bundled_model

    bundled = bundled_model(text)
    if bundled is not None and os.path.lexists(text):
        logging.getLogger("captioner.cli").warning(
            "--model %s: the bundled model %r; write --model ./%s for the folder here",
            text, text, text,
        )  # fmt: skip
        return str(bundled)
    return text


def add_model(p: argparse.ArgumentParser | Any, *, default: str = "default") -> None:
    p.add_argument(
        "--model",
        type=model_name,
        default=default,
        metavar="MODEL",
        help=f"model directory, bundled name or Hugging Face hub id (default: {default})",
    )


def add_device(p: argparse.ArgumentParser | Any, *, default: str = "auto") -> None:
    p.add_argument(
        "--device", type=device_name, default=default, help=f"{DEVICE_HELP} (default: {default})"
    )


def add_backend(p: argparse.ArgumentParser | Any) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="image encoder runtime: auto = ONNX Runtime on CPU when installed, else "
        "PyTorch (default: auto)",
    )


def add_batch_size(p: argparse.ArgumentParser | Any, *, default: int) -> None:
    p.add_argument(
        "--batch-size",
        type=positive,
        metavar="N",
        default=default,
        help=f"images per batch (default: {default})",
    )


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):  # nan / inf make every comparison downstream meaningless
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seed_number(text: str) -> int:
    """argparse type: a random seed, 0 <= N < 2**64 (what torch generators take)."""
    value = non_negative(text)
    if value >= 2**64:
        raise argparse.ArgumentTypeError(f"must be below 2**64, got {value}")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def add_tags(
    p: argparse.ArgumentParser | Any, *, min_score: float = MIN_TAG_SCORE, at_least: int = 0
) -> None:
    """--top-k (tags per image) and --min-tag-score (leave out less probable tags)."""
    p.add_argument(
        "--top-k",
        type=_int_at_least(at_least),
        default=5,
        metavar="K",
        help="tags per image (default: 5)",
    )
    p.add_argument(
        "--min-tag-score",
        type=_probability,
        default=min_score,
        metavar="P",
        help=f"leave out tags less probable than P (default: {min_score})",
    )


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_decoding(
    p: argparse.ArgumentParser | Any, *, sampling: bool = True, beam_size: int = 3
) -> None:
    """--beam-size and --max-length; with `sampling`, also --method, --length-penalty,
    --no-repeat-ngram-size, --name-objects, --slot-boost, --slot-min-score, --temperature,
    --top-p and --seed (`GenerationConfig` fields)."""
    p.add_argument(
        "--beam-size",
        type=beam_width,
        metavar="N",
        default=beam_size,
        help=f"beam width; 1 = greedy (default: {beam_size})",
    )
    p.add_argument(
        "--max-length",
        type=length_limit,
        metavar="N",
        default=None,
        help="longest caption in words (default: the model's own)",
    )
    if not sampling:
        return
    p.add_argument(
        "--method",
        type=_method,
        default="beam",
        help="beam search, greedy, or random sampling (default: beam)",
    )
    p.add_argument(
        "--length-penalty",
        type=_number,
        metavar="A",
        default=1.0,
        help="beam hypotheses rank by log p / length ** this; 0 = raw log p (default: 1.0)",
    )
    p.add_argument(
        "--no-repeat-ngram-size",
        type=non_negative,
        metavar="N",
        default=None,
        help="never repeat an n-gram of this size in a caption; 0 = off (default: the "
        "model's own, e.g. 3 for the bundled photo model)",
    )
    p.add_argument(
        "--name-objects",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="swap caption object words the tagger does not see for the object it is "
        "confident about (default: the model's own)",
    )
    p.add_argument(
        "--slot-boost",
        type=_non_negative_float,
        metavar="B",
        default=None,
        help="typed-slot captioner with a caption-word detector: favour a slot of each kind "
        "by B x the detector's confidence in it; 0 = off (default: the model's own)",
    )
    p.add_argument(
        "--slot-min-score",
        type=_probability,
        metavar="P",
        default=None,
        help="typed-slot captioner with a caption-word detector: every detector word at least "
        "this probable gets a slot of its kind (constrained beam search); 0 = off (default: "
        "the model's own)",
    )
    p.add_argument(
        "--temperature",
        type=_positive_float,
        metavar="T",
        default=1.0,
        help="sampling temperature; lower is safer (default: 1.0)",
    )
    p.add_argument(
        "--top-p",
        type=_positive_float,
        metavar="P",
        default=1.0,
        help="sample only from the likeliest words holding this much probability; 1 = off "
        "(default: 1.0)",
    )
    p.add_argument(
        "--seed",
        type=seed_number,
        metavar="N",
        default=None,
        help="random seed for sampling (default: none)",
    )


def _method(text: str) -> str:
    """argparse type of --method: one of `captioner.decoding.METHODS` (imported only when
    the flag is given: it needs torch)."""
    from captioner.decoding import METHODS

    if text not in METHODS:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(METHODS)}, not {text!r}")
    return text


def generation_config(args: argparse.Namespace, model: Any) -> Any:
    """The one `GenerationConfig` a command searches with: its decoding flags (none for a
    command without them) over `model`'s own defaults, built once and passed whole."""
    from captioner.errors import CaptionerError

    try:
        return model.generation_config(**decoding_kwargs(args))
    except ValueError as e:  # e.g. --top-p 2
        raise CaptionerError(f"decoding flags: {e}") from None


def decoding_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding flags of `add_decoding` as `GenerationConfig` fields (keyword arguments
    of `Captioner.caption` and `Captioner.generation_config`); flags left at None (the
    model's own setting) are left out."""
    return {n: getattr(args, n) for n in _DECODING if getattr(args, n, None) is not None}


_DECODING = (
    "beam_size", "max_length", "method", "length_penalty", "no_repeat_ngram_size",
    "name_objects", "slot_boost", "slot_min_score", "temperature", "top_p", "seed",
)  # fmt: skip


def installed_languages(*, english: bool = True) -> str:
    """The languages captions can be written in with the installed (bundled) translators,
    as flag help lists them: "en | de | fr"."""
    from captioner.translation import available_languages

    return " | ".join(code for code, _ in available_languages() if english or code != "en")


def add_language(p: argparse.ArgumentParser | Any) -> None:
    """--lang (the caption's language) and --translator (a translator directory)."""
    p.add_argument(
        "--lang",
        default="en",
        metavar="LANG",
        help=f"write captions in this language too: {installed_languages()} (another with "
        "--translator); the record keeps the English caption beside the translation "
        "(default: en)",
    )
    p.add_argument(
        "--translator",
        default=None,
        metavar="DIR",
        help="translator model directory for --lang (default: the bundled "
        "captioner/models/translate-en-LANG)",
    )


def pick_split(dsd: Any, args: argparse.Namespace) -> Any:
    """The `--split` of a DatasetDict (eval, translate), cut to `--limit` items; a missing
    split is an error listing the ones there are, an empty one an error saying so."""
    from captioner import errors

    if args.split not in dsd:
        raise errors.CaptionerError(
            f"{args.dataset} has no split {args.split!r} (splits: {', '.join(dsd)})"
        )
    split = dsd[args.split]
    if len(split) == 0:  # scores of nothing are NaN or a ZeroDivisionError
        raise errors.CaptionerError(
            f"{args.dataset}: split {args.split!r} is empty; nothing to score"
        )
    return split.select(range(min(args.limit, len(split)))) if args.limit else split
