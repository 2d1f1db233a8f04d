"""More sentiment sources: GLUE SST-2 in its TSV layout, and descriptive captions as the
`neutral` class.

- `sst2:DIR`: `train.tsv` and `dev.tsv` (-> validation), each with a header row naming a
  `label` column (0 = negative, 1 = positive) and a text column (`sentence`, `content` or
  `text`; GLUE writes `sentence<TAB>label`, other copies `label<TAB>sentence`). `test.tsv`
  becomes the test split when it has labels; GLUE's own has none (`index<TAB>sentence`), so
  the test split is then empty (noted) and dev is the split to report, as GLUE papers do.
- `neutral:CAPTIONS`: captions of photos or scenes, every one labelled `neutral`, per split.
  CAPTIONS joins parts with `+`: `flickr8k:DIR` (the captions of each official split's
  images, read from the token file; no image is opened), `scenes[:N]` (N generated scene
  captions for train, up to 1,000 for validation / test, a different seed per split) or a
  UTF-8 FILE with one text a line (train only).
"""

from __future__ import annotations

from pathlib import Path

from captioner.data.common import DataError, OnError, Problems
from captioner.data.sentiment_corpora import build_sentiment_dict, label_name

SST2_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
_SST2_TEXT = ("sentence", "content", "text")


def _read_sst2_file(path: Path, problems: Problems) -> list[tuple[str, str, str]] | None:
    """[(text, label name, 'sst2')], or None for a file without a label column."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [h.strip().lower() for h in (lines[0].split("\t") if lines else [])]
    text_col = next((header.index(c) for c in _SST2_TEXT if c in header), None)
    if text_col is None:
        raise DataError(
            f"{path}: the first line must be a header naming a text column "
            f"({' / '.join(_SST2_TEXT)}), got {lines[0][:80] if lines else ''!r}"
        )
    if "label" not in header:
        return None
    label_col = header.index("label")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if not line.strip():
            continue
        if len(cells) != len(header):
            problems.bad("malformed line", path, n, f"expected {len(header)} tab-separated cells")
            continue
        name, text = label_name(cells[label_col]), cells[text_col].strip()
        if name not in ("negative", "positive"):
            problems.bad(
                "malformed line", path, n, f"label must be 0 or 1, got {cells[label_col]!r}"
            )
        elif not text:
            problems.bad("empty caption", path, n, "empty sentence")
        else:
            rows.append((text, name, "sst2"))
    return rows


def load_sst2(path: str | Path, *, on_error: OnError = "raise"):
    """GLUE SST-2 from a folder holding train.tsv / dev.tsv [/ test.tsv]."""
    folder = Path(path).expanduser()
    missing = [f for s, f in SST2_FILES.items() if s != "test" and not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"sst2:{folder}: no {' / '.join(missing)} in that folder")
    problems = Problems(f"sst2:{folder}", on_error)
    rows: dict[str, list] = {}
    for split, name in SST2_FILES.items():
        if not (folder / name).is_file():
            continue
        got = _read_sst2_file(folder / name, problems)
        if got is None:
            problems.note(f"{name} has no label column (GLUE hides test labels): no test split")
        else:
            rows[split] = got
    return build_sentiment_dict(rows, problems.finish())


def _flickr8k_captions(root: Path, split: str) -> list[str]:
    from captioner.data.sources import (
        FLICKR_TOKEN_FILES,
        _flickr8k_split_lists,
        _read_token_file,
        find_file,
    )

    token = find_file(root, FLICKR_TOKEN_FILES["flickr8k"])
    if token is None:
        raise DataError(f"flickr8k:{root}: no {FLICKR_TOKEN_FILES['flickr8k']} found")
    lists = _flickr8k_split_lists(token.parent, root)
    if lists is None:
        raise DataError(f"flickr8k:{root}: no Flickr_8k.{{train,dev,test}}Images.txt split lists")
    captions, _ = _read_token_file(token, Problems(f"flickr8k:{root}", "skip"))
    names = lists[split].read_text(encoding="utf-8").split()
    return [c for name in names for c in captions.get(name, [])]


def _scene_captions(count: int, seed: int) -> list[str]:
    import numpy as np

    from captioner.data.scenes import generate_scene
    from captioner.scene_grammar import canonical_caption

    rng = np.random.default_rng(seed)
    return [canonical_caption(generate_scene(rng)) for _ in range(count)]


def caption_texts(spec: str, split: str = "train", *, seed: int = 0) -> list[str]:
    """The texts of a neutral-caption spec (see the module docstring) for one split."""
    if split not in SST2_FILES:
        raise ValueError(f"split must be one of {list(SST2_FILES)}, got {split!r}")
    out: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        kind, _, arg = part.partition(":")
        if kind == "flickr8k" and arg:
            out += _flickr8k_captions(Path(arg).expanduser(), split)
        elif kind == "scenes" and (not arg or arg.isdigit()):
            n = int(arg or 1000)
            offset = list(SST2_FILES).index(split)
            out += _scene_captions(n if split == "train" else min(n, 1000), seed + 7919 * offset)
        elif Path(part).is_file():
            if split == "train":
                try:
                    lines = Path(part).read_text(encoding="utf-8").splitlines()
                except UnicodeDecodeError as e:
                    raise ValueError(f"{part}: not UTF-8 text ({e})") from None
                out += [line.strip() for line in lines if line.strip()]
        else:
            raise FileNotFoundError(
                f"neutral captions {part!r}: no such file (use flickr8k:DIR, scenes[:N] or "
                "a text FILE, one text a line)"
            )
    return out


def load_neutral_captions(spec: str, *, seed: int = 0):
    """Captions labelled `neutral`, per split (see the module docstring)."""
    rows = {
        split: [(text, "neutral", spec) for text in caption_texts(spec, split, seed=seed)]
        for split in SST2_FILES
    }
    return build_sentiment_dict(rows, Problems(f"neutral:{spec}").finish())
