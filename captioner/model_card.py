"""The model card: a `README.md` in a model directory, as the Hugging Face hub shows it.

YAML metadata on top (library, licence, pipeline, tags, `training_data`), then what the model
is, the data it was trained on and the terms of that data, its scores when the directory
holds a `scores.json` (`{"DATA/SPLIT": {"n": ..., "BLEU-4": ..., ...}}` as the release
pipeline reports them, or the output of `captioner eval --json`), its intended use and its
limits. Cards this module wrote carry a marker and are rewritten on each
save; a card someone wrote by hand is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from captioner.card_text import (
    DATA_TERMS,
    IMAGE_INTRO,
    INTENDED_USE,
    LIMITS,
    PRETRAINED_TERMS,
    TRANSLATOR_INTRO,
    TRANSLATOR_LIMITS,
    TRANSLATOR_SCORES,
    TRANSLATOR_USE,
    UNKNOWN_TERMS,
    VECTORS,
)

log = logging.getLogger(__name__)

CARD, SCORES = "README.md", "scores.json"
# a card's YAML header: between a first line "---" and the next line "---"
_YAML_HEADER = re.compile(r"\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", re.S)
MARKER = "<!-- written by captioner.model_card; edit freely after removing this line -->"


def data_terms(spec: str) -> tuple[str, str]:
    """One dataset spec ("scenes:2000", "flickr8k:~/f8k", "hf:owner/name?x=1") -> (what, terms)."""
    key = spec.split("?")[0]
    if key not in DATA_TERMS:
        key = key.split(":")[0]
    return DATA_TERMS.get(key, ("data captioner has no notes on", UNKNOWN_TERMS))


def split_specs(specs: Sequence[str]) -> list[str]:
    """ "scenes+tuxpaint" -> ["scenes", "tuxpaint"]; order kept, duplicates dropped."""
    out: list[str] = []
    for spec in specs:
        for part in str(spec).split("+"):
            if part and part not in out:
                out.append(part)
    return out


def read_scores(directory: str | Path) -> dict[str, dict[str, Any]]:
    """`scores.json` of a model directory, or {} when there is none (a malformed one is
    logged and ignored: the card is documentation, never a reason to fail a save)."""
    path = Path(directory) / SCORES
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s: not readable JSON (%s); the card shows no scores", path, e)
        return {}
    if isinstance(data, dict) and isinstance(data.get("scores"), dict) and "dataset" in data:
        data = {f"{data['dataset']}/{data.get('split', '?')}": data}  # one `captioner eval`
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        log.warning('%s: expected {"DATA/SPLIT": {metric: value}}; ignored', path)
        return {}
    return {name: _flat(row) for name, row in data.items()}


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row of scores: metrics nested under "scores" lifted up, the decoding settings as
    words ("beam 3"); timings and everything else that is not a score dropped."""
    scores = row.get("scores") if isinstance(row.get("scores"), dict) else {}
    out: dict[str, Any] = {"n": row.get("n"), "decoding": _decoding(row.get("decoding"))}
    for key, value in {**row, **scores}.items():
        if key in out or key in ("seconds", "wall_seconds") or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[key] = value
    return out


def _decoding(decoding: Any) -> str:
    if isinstance(decoding, dict):
        method = decoding.get("method", "?")
        return f"beam {decoding.get('beam_size')}" if method == "beam" else str(method)
    return "-" if decoding in (None, "") else str(decoding)


def read_training_data(directory: str | Path) -> list[str]:
    """The `training_data` list in the YAML header of an existing card, or []."""
    path = Path(directory) / CARD
    if not path.is_file():
        return []
    import yaml  # not huggingface_hub.repocard: its import costs every model load ~0.3 s

    try:
        header = _YAML_HEADER.match(path.read_text(encoding="utf-8-sig"))
        meta = yaml.safe_load(header[1]) if header else {}
        if not isinstance(meta, dict | None):
            raise ValueError("the header is not a mapping")
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:  # hand-written card
        log.warning("%s: unreadable YAML header (%s)", path, e)
        return []
    data = (meta or {}).get("training_data") or []
    return [str(d) for d in data] if isinstance(data, list) else []


def _architecture(config: Mapping[str, Any]) -> list[str]:
    tr = config.get("translator")
    if tr:
        return [
            f"- Translator {str(tr.get('src_lang', '?')).upper()}->"
            f"{str(tr.get('tgt_lang', '?')).upper()}: bidirectional "
            f"{str(tr.get('encoder_cell', '?')).upper()} encoder, "
            f"{str(tr.get('decoder_cell', '?')).upper()} decoder with "
            f"{tr.get('attention', '?')} attention, hidden {tr.get('hidden_dim')}, "
            f"{tr.get('vocab_size')} SentencePiece subwords shared by both languages"
        ]
    enc = config.get("encoder") or {}
    lines = [f"- Encoder: `{enc.get('name', '?')}` (weights `{enc.get('weights')}`)"]
    dec = config.get("decoder")
    if dec:
        attention = "soft attention" if dec.get("attention") == "soft" else "no attention"
        lines.append(
            f"- Caption decoder: {str(dec.get('cell', '?')).upper()} with {attention}, "
            f"hidden {dec.get('hidden_dim')}, vocabulary {dec.get('vocab_size')} words, "
            f"captions up to {config.get('max_length')} words"
        )
    if config.get("recognition"):
        lines.append("- Tagger: a classification head on the encoder's pooled features")
    sent = config.get("sentiment")
    if sent:
        lines.append(
            f"- Sentiment of the caption: {str(sent.get('cell', '?')).upper()} "
            f"({' / '.join(sent.get('labels', []))})"
            + (
                f", word embeddings started from {VECTORS.get(sent['vectors'], sent['vectors'])}"
                if sent.get("vectors")
                else ""
            )
        )
    return lines


def _score_table(scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    metrics: list[str] = []
    for row in scores.values():
        metrics += [k for k in row if k not in ("n", "decoding") and k not in metrics]
    lines = [
        "| data / split | items | decoding | " + " | ".join(metrics) + " |",
        "|---|---|---|" + "---|" * len(metrics),
    ]
    for name, row in scores.items():
        cells = [_cell(row.get(m)) for m in metrics]
        lines.append(
            f"| {name} | {row.get('n', '-')} | {row.get('decoding', '-')} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):  # BLEU on sacrebleu's 0-100 scale keeps 2 decimals
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return "-" if value is None else str(value)


def render_card(
    config: Mapping[str, Any],
    *,
    training_data: Sequence[str] = (),
    scores: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The text of README.md for a model directory with this `config.json`."""
    from huggingface_hub import ModelCardData

    data = split_specs(training_data)
    kind = _kind(config)
    meta = ModelCardData(
        library_name="captioner",
        license="mit",
        pipeline_tag=kind["pipeline"],
        tags=kind["tags"],
        training_data=data,
    ).to_yaml()
    name = config.get("name", "captioner model")
    lines = [f"---\n{meta}\n---", MARKER, "", f"# {name}", ""]
    lines += [
        kind["intro"],
        "",
        "## Model",
        "",
        *_architecture(config),
        "",
        "## Training data and its terms",
        "",
    ]
    if data:
        for spec in data:
            what, terms = data_terms(spec)
            lines.append(f"- `{spec}`: {what}. Terms: {terms}.")
    else:
        lines.append(
            "- Not recorded: nothing says which data trained this model. Find out, and check "
            "that data's terms, before sharing it."
        )
    enc = config.get("encoder") or {}
    if enc.get("weights") and not config.get("translator"):  # a translator has no image encoder
        lines.append(
            f"- The encoder `{enc.get('name')}` starts from pretrained weights "
            f"(`{enc.get('weights')}`) learnt on {PRETRAINED_TERMS}."
        )
    lines += ["", "## Scores", ""]
    if scores:
        lines += _score_table(scores)
        lines += ["", kind["scores"]]
    else:
        lines.append(f"None recorded (no `{SCORES}` in the model directory when this was written).")
    lines += ["", "## Intended use", "", kind["use"], "", "## Limits", "", kind["limits"], ""]
    return "\n".join(lines)


def _kind(config: Mapping[str, Any]) -> dict[str, Any]:
    """What differs between the card of an image model and that of a caption translator."""
    if config.get("translator"):
        return {"pipeline": "translation", "tags": ["translation", "rnn", "attention"],
                "intro": TRANSLATOR_INTRO, "scores": TRANSLATOR_SCORES,
                "use": TRANSLATOR_USE, "limits": TRANSLATOR_LIMITS}  # fmt: skip
    dec = config.get("decoder") or {}
    tags = ["image-captioning", "image-to-text", "rnn"]
    tags += [
        t for t in (dec.get("cell"), "attention" if dec.get("attention") == "soft" else None) if t
    ]
    return {"pipeline": "image-to-text" if dec else "image-classification", "tags": tags,
            "intro": IMAGE_INTRO, "scores": "COCO caption metrics (CIDEr-D on pycocoevalcap's "
            "x10 scale).", "use": INTENDED_USE, "limits": LIMITS}  # fmt: skip


def write_card(
    directory: str | Path,
    config: Mapping[str, Any],
    *,
    training_data: Sequence[str] | None = None,
) -> Path | None:
    """Write README.md into `directory` (atomically). `training_data=None` keeps the list of
    the card already there. A hand-written card (no marker) is kept: returns None then."""
    directory = Path(directory)
    path = directory / CARD
    if path.is_file() and MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        log.info("%s: written by hand; left as it is", path)
        return None
    if training_data is None:
        training_data = read_training_data(directory)
    text = render_card(config, training_data=training_data, scores=read_scores(directory))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{CARD}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def record_scores(directory: str | Path, rows: Mapping[str, Mapping[str, Any]]) -> Path:
    """Add `rows` ({"DATA/SPLIT": {"n": ..., metric: value}}) to the `scores.json` of a model
    directory (a row of the same name is replaced) and rewrite its card to show them."""
    directory = Path(directory)
    path = directory / SCORES
    try:
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        old = {}
    merged = {**(old if isinstance(old, dict) else {}), **rows}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{SCORES}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=2, ensure_ascii=False)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    write_card(directory, config)
    return path
