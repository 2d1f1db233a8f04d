"""Sentiment tables (CSV / JSONL) and hub datasets -> the sentiment schema of
`captioner.data.sentiment_corpora` (see its docstring for the columns and label names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from captioner.data.common import SPLITS, OnError, Problems, normalise_split
from captioner.data.sentiment_corpora import (
    LABEL_COLUMNS,
    TEXT_COLUMNS,
    build_sentiment_dict,
    label_name,
    stratified_split,
)
from captioner.data.tables import parse_columns, pick, read_rows


def _rows_with_labels(
    raw: list[tuple[str, object, str | None, object, object]], problems: Problems
):
    """[(text, raw label, split, file, line)] -> [(text, label name, split)], reporting bad ones."""
    ints = {int(v) for _, v, *_ in raw if isinstance(v, int | str) and str(v).strip().isdigit()}
    size = 3 if 2 in ints else 2
    out = []
    for text, value, split, file, line in raw:
        name = label_name(value, size)
        if not isinstance(text, str) or name is None:
            problems.bad(
                "malformed line",
                file,
                line,
                f"needs text and a label (0/1, 0/1/2 or a name), got {value!r}",
            )
        elif not text.strip():
            problems.bad("empty caption", file, line, "empty text")
        else:
            out.append((text.strip(), name, split))
    return out


def _assemble(
    rows: list[tuple[str, str, str | None]],
    source: str,
    problems: Problems,
    *,
    seed: int,
    fractions: Sequence[float],
):
    by_split: dict[str, list] = {}
    loose = []
    for text, name, split in rows:
        (by_split.setdefault(split, []) if split else loose).append((text, name, source))
    if loose:
        for s, items in stratified_split(
            loose, key=lambda r: r[1], seed=seed, fractions=fractions
        ).items():
            by_split.setdefault(s, []).extend(items)
    missing = [s for s in SPLITS[1:] if not by_split.get(s)]
    if missing and by_split.get("train"):
        problems.note(f"carved {', '.join(missing)} out of train (stratified, seed {seed})")
        carved = stratified_split(
            by_split["train"], key=lambda r: r[1], seed=seed, fractions=fractions, only=missing
        )
        by_split.update({s: carved[s] for s in ["train", *missing]})
    return build_sentiment_dict(by_split, problems.finish())


def load_sentiment_table(
    path: str | Path,
    *,
    fmt: str | None = None,
    columns: str | Mapping[str, str] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
):
    """A CSV / JSONL file of texts and labels."""
    path = Path(path)
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    problems = Problems(f"sentiment-{fmt}:{path}", on_error)
    cols = parse_columns(columns)
    raw = []
    for n, row in read_rows(path, fmt):
        tcol = pick(row, cols.get("text"), TEXT_COLUMNS) if isinstance(row, dict) else None
        lcol = pick(row, cols.get("label"), LABEL_COLUMNS) if isinstance(row, dict) else None
        if tcol is None or lcol is None:
            problems.bad(
                "malformed line",
                path,
                n,
                f"needs a text column ({'/'.join(TEXT_COLUMNS)}) and a "
                f"label column ({'/'.join(LABEL_COLUMNS)}); got {str(row)[:120]}",
            )
            continue
        split = row.get(cols.get("split", "split")) or None
        if split is not None and normalise_split(split) is None:
            problems.bad("malformed line", path, n, f"unknown split {split!r}")
            continue
        raw.append((row[tcol], row[lcol], split and normalise_split(split), path, n))
    return _assemble(
        _rows_with_labels(raw, problems), path.stem, problems, seed=seed, fractions=fractions
    )


def load_hf_sentiment(
    name: str,
    *,
    columns: str | Mapping[str, str] | None = None,
    config: str | None = None,
    revision: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
    **kwargs,
):
    """A hub (or local) text-classification dataset with negative/positive(/neutral) labels."""
    from datasets import ClassLabel

    from captioner.data.hf_datasets import open_hf, resolve_columns

    dsd = open_hf(name, config=config, revision=revision, **kwargs)
    problems = Problems(f"hf:{name}", on_error)
    guesses = {"text": TEXT_COLUMNS, "label": LABEL_COLUMNS, "split": ("split",)}
    first = next(iter(dsd.values()))
    cols = resolve_columns(
        name, list(first.features), parse_columns(columns), ("text", "label"), guesses
    )
    raw, unlabelled = [], 0
    for theirs, ds in dsd.items():
        feature = ds.features[cols["label"]]
        splits = list(ds[cols["split"]]) if "split" in cols else [theirs] * len(ds)
        for i, (text, label) in enumerate(zip(ds[cols["text"]], ds[cols["label"]], strict=True)):
            if label is None or label == -1:
                unlabelled += 1
                continue
            if isinstance(feature, ClassLabel):
                label = feature.int2str(label)
            split = normalise_split(splits[i])
            raw.append((text, label, split or str(splits[i]), f"hf:{name}", f"[{theirs}] row {i}"))
    if unlabelled:
        problems.note(f"dropped {unlabelled} unlabelled row(s) (label -1 or missing)")
    return _assemble(
        _rows_with_labels(raw, problems), name, problems, seed=seed, fractions=fractions
    )
