"""Multi30k task 1 (Elliott et al. 2016): Flickr30k captions with German, French and Czech
translations, for the translator (`multi30k:DIR` specs).

The folder layout is the published one:

    DIR/raw/{train,val,test_2016_flickr,...}.{en,de,fr,cs}.gz   one sentence a line, aligned
    DIR/tok/{val,test_2016_flickr,...}.lc.norm.tok.{lang}       lower-cased, Moses-tokenised

`load_multi30k(DIR, src="en", tgt="de")` gives a DatasetDict with `source`, `target` and
`id` (the line number): `train`, `validation` (val), `test` (test_2016_flickr, the split of
the published scores) and every other test set present under its own name
(`test_2017_flickr`, `test_2017_mscoco`, `test_2018_flickr`). `tokenised_references` reads
the `tok/` file of a split, the references the published BLEU scores use.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from captioner.data.common import DataError

# split name in the DatasetDict -> file stem
STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
EXTRA_TESTS = ("test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


def stem_of(split: str) -> str:
    return STEMS.get(split, split)


def read_lines(path: Path) -> list[str]:
    """A gzipped (.gz) or plain UTF-8 text file, one sentence a line."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read().splitlines()
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: missing (a Multi30k folder has raw/SPLIT.LANG.gz)") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None


def _lang(code: str, what: str) -> str:
    from captioner.translation import LANGUAGES  # the one language list (Multi30k's)

    if code not in LANGUAGES:
        raise DataError(f"multi30k: {what} must be one of {', '.join(LANGUAGES)}, got {code!r}")
    return code


def read_pairs(directory: str | Path, split: str, src: str, tgt: str) -> tuple[list, list]:
    """(source sentences, target sentences) of one split, checked to be aligned."""
    raw = Path(directory) / "raw"
    a, b = (raw / f"{stem_of(split)}.{lang}.gz" for lang in (src, tgt))
    sources, targets = read_lines(a), read_lines(b)
    if len(sources) != len(targets):
        raise DataError(f"{a} has {len(sources)} lines but {b} has {len(targets)}: not aligned")
    return sources, targets


def load_multi30k(directory: str, *, src: str = "en", tgt: str = "de", limit: int | None = None):
    """DatasetDict(train/validation/test[/test_2017_flickr...]) with `source`, `target`, `id`.
    `limit` keeps the first N pairs of every split (quick trials)."""
    from datasets import Dataset, DatasetDict

    root = Path(directory)
    if not (root / "raw").is_dir():
        raise DataError(f"multi30k:{directory}: no raw/ folder (expected DIR/raw/train.en.gz ...)")
    src, tgt = _lang(src, "src"), _lang(tgt, "tgt")
    if src == tgt:
        raise DataError(f"multi30k: source and target are both {src!r}")
    splits = dict.fromkeys(STEMS)
    splits.update({s: None for s in EXTRA_TESTS if (root / "raw" / f"{s}.{tgt}.gz").is_file()})
    out = {}
    for split in splits:
        sources, targets = read_pairs(root, split, src, tgt)
        n = len(sources) if limit is None else min(limit, len(sources))
        out[split] = Dataset.from_dict(
            {"source": sources[:n], "target": targets[:n], "id": list(range(n))}
        )
    return DatasetDict(out)


def tokenised_references(directory: str | Path, split: str, lang: str) -> list[str] | None:
    """The lower-cased, tokenised `tok/` file of a split (None when the folder lacks it)."""
    path = Path(directory) / "tok" / f"{stem_of(split)}.lc.norm.tok.{lang}"
    return read_lines(path) if path.is_file() else None
