"""Dataclass configs <-> command-line flags and config files.

A training recipe declares one flat dataclass (it may inherit `TrainConfig`, below). Each
field becomes a flag (`batch_size` -> `--batch-size`; booleans get `--x/--no-x`), with help
text from `opt(...)`. Values resolve in this order, later wins:

    dataclass defaults  <  --config FILE (JSON or TOML)  <  flags given on the command line

    @dataclass
    class MyConfig(TrainConfig):
        dataset: str = opt("", "dataset spec", required=True)

    cfg = parse_config(MyConfig, argv, prog="captioner train caption")

Config files hold a flat table of field names (`batch_size` or `batch-size`); a TOML file may
also nest them under a `[train]` table. Unknown keys and wrongly typed values are errors
naming the file and key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from captioner.errors import CaptionerError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]

T = TypeVar("T")
_MISSING = dataclasses.MISSING


class ConfigError(CaptionerError, ValueError):
    """A config file or flag value is invalid; the message names the file/flag and key."""


def opt(
    default: Any,
    help: str = "",
    *,
    choices: tuple | list | None = None,
    required: bool = False,
    cli: bool = True,
) -> Any:
    """A dataclass field with flag metadata. `required`: must come from a flag or the config
    file. `cli=False`: settable from a config file only (no flag)."""
    meta = {"help": help, "choices": choices, "required": required, "cli": cli}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_ranges(
    config: Any,
    *,
    at_least_1: tuple[str, ...] = (),
    at_least_0: tuple[str, ...] = (),
    positive: tuple[str, ...] = (),
) -> None:
    """`ValueError` naming the first field of `config` out of its range: the `at_least_1`
    fields must be >= 1, `at_least_0` >= 0, `positive` > 0, and every float field finite
    (a NaN or infinite learning rate trains a junk model)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
    for names, ok, rule in (
        (at_least_1, lambda v: v >= 1, ">= 1"),
        (at_least_0, lambda v: v >= 0, ">= 0"),
        (positive, lambda v: v > 0, "> 0"),
    ):
        for name in names:
            value = getattr(config, name)
            if isinstance(value, (int, float)) and not ok(value):
                raise ValueError(f"--{name.replace('_', '-')} must be {rule}, got {value}")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """`int | None` -> (int, True); `list[str]` -> (list[str], False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(tp))
    return tp, False


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _scalar_parser(tp: Any, optional: bool):
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")
        return tp(text)

    parse.__name__ = getattr(tp, "__name__", "value")
    return parse


def add_arguments(
    parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = ()
) -> None:
    """Add one flag per field of dataclass `cls`. Defaults are SUPPRESSed so that the
    namespace only holds flags actually given (see `parse_config`)."""
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        tp, optional = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not _MISSING else f.default_factory()  # type: ignore[misc]
        text = f.metadata.get("help", "")
        if f.metadata.get("required"):
            text = f"{text} (required)"
        elif "(default:" not in text:
            text = f"{text} (default: {default!r})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            (item,) = typing.get_args(tp)[:1] or (str,)
            kwargs.update(nargs="*", type=_scalar_parser(item, False))
        else:
            kwargs.update(type=_scalar_parser(tp, optional))
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        choices = f.metadata.get("choices")
        metavar = "{" + ",".join(map(str, choices)) + "}" if choices else f.name.upper()
        parser.add_argument(flag, metavar=metavar, **kwargs)


MAX_CONFIG_BYTES = 1 << 20  # a sparse 8 GB "config" was read whole


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON (`.json`) or TOML (anything else) config file into a flat dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes, too large for a config file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif tomllib is None:
            raise ConfigError(f"{path}: TOML config files need Python >= 3.11; use JSON")
        else:
            data = tomllib.loads(text)
    except ConfigError:
        raise
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno}: malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e})") from None
    except ValueError as e:  # tomllib.TOMLDecodeError
        raise ConfigError(f"{path}: malformed TOML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table/object of settings at top level")
    if isinstance(data.get("train"), dict) and len(data) == 1:
        data = data["train"]
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    origin = typing.get_origin(base)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(base)[:1] or (str,)
        return [_coerce(v, item, where) for v in value]
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base in (int, str) and isinstance(value, base) and not isinstance(value, bool):
        return value
    if base is Any:
        return value
    raise ConfigError(f"{where}: expected {getattr(base, '__name__', base)}, got {value!r}")


def build_config(cls: type[T], *layers: tuple[str, dict[str, Any]]) -> T:
    """Merge `(source_name, values)` layers over the dataclass defaults (later layers win),
    validate types, choices and required fields, and construct `cls`."""
    hints = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if key not in fields:
                close = [n for n in fields if n.split("_")[0] == key.split("_")[0]]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"{source}: unknown setting {key!r}{hint}")
            values[key] = _coerce(value, hints[key], f"{source}: {key}")
    for name, f in fields.items():
        choices = f.metadata.get("choices")
        if name in values and choices and values[name] not in choices:
            raise ConfigError(f"{name}: {values[name]!r} is not one of {list(choices)}")
        if f.metadata.get("required") and not values.get(name):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} is required (on the command line or in --config FILE)")
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid configuration: {e}") from None


_NOT_SETTINGS = ("config", "quiet", "verbose")


def build_parser(
    cls: type,
    *,
    prog: str | None = None,
    description: str | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> argparse.ArgumentParser:
    """`--config FILE`, `--quiet` / `--verbose` and one flag per field of `cls`."""
    from captioner import commandline

    if parser is None:
        parser = commandline.parser(prog or "captioner train", description or "")
    else:
        commandline.add_verbosity(parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="JSON or TOML file of settings; flags override it (default: none)",
    )
    add_arguments(parser, cls)
    return parser


def parse_config(
    cls: type[T],
    argv: list[str] | None,
    *,
    prog: str | None = None,
    description: str | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> T:
    """Parse `argv` into a `cls` instance: defaults < `--config FILE` < explicit flags.
    Errors go through `parser.error` (exit status 2 with a message naming the problem)."""
    parser = build_parser(cls, prog=prog, description=description, parser=parser)
    return config_from_args(cls, parser, parser.parse_args(argv))


def config_from_args(cls: type[T], parser: argparse.ArgumentParser, ns: argparse.Namespace) -> T:
    """The `cls` instance of parsed flags (see `parse_config`)."""
    flags = {k: v for k, v in vars(ns).items() if k not in _NOT_SETTINGS}
    layers: list[tuple[str, dict[str, Any]]] = []
    try:
        if ns.config:
            layers.append((str(ns.config), load_config_file(ns.config)))
        layers.append(("command line", flags))
        return build_config(cls, *layers)
    except ConfigError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def run_recipe(
    cls: type[T],
    train: Callable[[T], Any],
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None = None,
    check: Callable[[T], str | None] | None = None,
) -> int:
    """The `main` of a training recipe: flags -> `cls` -> `train(cfg)`.

    Bad settings or data (`ValueError`, which `DataError` is, and `FileNotFoundError`) end
    with one line on stderr and exit status 2 instead of a traceback; `check(cfg)` may
    return such a message before training starts. The process group of a `torchrun` launch
    is shut down however training ends."""
    import sys

    from captioner.commandline import configure_logging
    from captioner.pipelines.runstate import shutdown_distributed

    parser = build_parser(cls, prog=prog, description=description)
    ns = parser.parse_args(argv)
    cfg = config_from_args(cls, parser, ns)
    # the recipe's own progress, and the feature cache's (captioner.data.features)
    configure_logging(ns, chatty=("captioner.pipelines", "captioner.data.features"))
    problem = check(cfg) if check else None
    if not problem and getattr(cfg, "out", ""):  # never write over a user's own files
        from captioner.pipelines.runstate import out_dir_problem

        problem = out_dir_problem(cfg.out)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    try:
        train(cfg)
    except (CaptionerError, ValueError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    finally:
        shutdown_distributed()
    return 0


# --- the settings every recipe shares ----------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Settings every recipe shares; recipes subclass it to add their own fields."""

    epochs: int = opt(10, "number of training epochs")
    batch_size: int = opt(32, "batch size per process")
    lr: float = opt(3e-4, "peak learning rate (AdamW)")
    encoder_lr: float = opt(1e-5, "learning rate of unfrozen encoder blocks")
    weight_decay: float = opt(0.01, "AdamW weight decay (not applied to biases / norms)")
    schedule: str = opt(
        "cosine", "LR schedule after warmup", choices=("cosine", "step", "constant")
    )
    warmup: float = opt(0.05, "warmup: a fraction of all steps if < 1, else a step count")
    min_lr_ratio: float = opt(0.05, "cosine floor as a fraction of the peak LR")
    step_epochs: int = opt(1, "step schedule: multiply the LR by --gamma every N epochs")
    gamma: float = opt(0.5, "step schedule decay factor")
    grad_clip: float = opt(5.0, "clip the global gradient norm to this (0 = no clipping)")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    amp: str = opt("auto", "mixed precision on CUDA", choices=("auto", "off", "bf16", "fp16"))
    num_workers: int = opt(0, "DataLoader worker processes")
    seed: int = opt(0, "random seed")
    threads: int = opt(0, "torch CPU threads per process (0 = torch's default)")
    patience: int = opt(0, "early stopping: epochs without improvement (0 = off)")
    resume: bool = opt(False, "continue from the last checkpoint of the run directory")
    stop_after: int = opt(0, "stop this invocation after N epochs (0 = run all; --resume later)")
    log_every: int = opt(1, "write a step record to metrics.jsonl every N steps")
    progress_every: int = opt(
        50, "without a terminal, log a progress line (loss, tokens/s, ETA) every N steps (0 = "
        "only at the epoch's end); a terminal shows a bar instead"
    )  # fmt: skip
    plot_every: int = opt(1, "redraw curves.png every N epochs and at the end (0 = never)")
    keep_checkpoints: int = opt(
        2, "how many epoch checkpoints to keep (2: a damaged last one falls back to the one before)"
    )

    def __post_init__(self) -> None:  # a nonsense value is refused before any work
        names = [f.name for f in dataclasses.fields(self)]
        # a recipe's sizes: --hidden-dim 0 / --max-length 0 make no model
        sizes = tuple(n for n in names if n.endswith(_SIZE_SUFFIXES))
        some = tuple(n for n in _RECIPE_AT_LEAST_0 if n in names)
        check_ranges(self, at_least_1=_AT_LEAST_1 + sizes, at_least_0=_AT_LEAST_0 + some,
                     positive=("lr",))  # fmt: skip
        if not 0 <= self.seed < 2**64:  # what torch.manual_seed takes
            raise ValueError(f"--seed must be in [0, 2**64), got {self.seed}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"--min-lr-ratio must be between 0 and 1, got {self.min_lr_ratio}")


_AT_LEAST_1 = ("epochs", "batch_size", "step_epochs", "log_every", "keep_checkpoints")
_SIZE_SUFFIXES = ("_dim", "_layers", "max_length", "beam_size", "_beam", "vocab_size", "samples")
_AT_LEAST_0 = ("encoder_lr", "weight_decay", "warmup", "gamma", "grad_clip", "num_workers",
               "threads", "patience", "stop_after", "plot_every", "progress_every")  # fmt: skip
# fields only some recipes have
_RECIPE_AT_LEAST_0 = ("length_pool", "style_lr", "self_train_weight")
