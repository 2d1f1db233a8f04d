"""Hugging Face hub datasets (or local copies) -> our caption schema.

`hf:OWNER/NAME` opens the dataset with `datasets.load_dataset` (network needed the first
time; `datasets` caches it). `hf:PATH` opens a local copy: a `save_to_disk` folder with
`load_from_disk`, any other folder or data file with `load_dataset(PATH)`.

Column mapping (ours:theirs): `columns="image:img,captions:sentences"`; `image_id` and
`split` may be mapped too. Unmapped names are guessed (image / img / file_name; captions /
caption / sentences / text; image_id / img_id / id). A `split` column, when present,
re-splits the rows (some hub copies of Flickr30k ship one split with such a column). Splits
named val / dev / restval are renamed; missing validation / test splits are carved from
train by a hash of the image id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from captioner.data.common import (
    SPLITS,
    DataError,
    OnError,
    Problems,
    clean_caption,
    hash_split,
    image_problem,
    normalise_split,
)
from captioner.data.tables import parse_columns

GUESS = {
    "image": ("image", "img", "file_name", "filename", "image_path"),
    "captions": ("captions", "caption", "sentences", "sentence", "text", "raw"),
    "image_id": ("image_id", "img_id", "imgid", "cocoid", "id"),
    "split": ("split",),
}


def open_hf(name: str, *, config: str | None = None, revision: str | None = None, **kwargs):
    """A DatasetDict from the hub id or local path `name`."""
    import datasets

    path = Path(name).expanduser()
    if path.is_dir() and (
        (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
    ):
        ds = datasets.load_from_disk(str(path))
    else:
        try:
            ds = datasets.load_dataset(name, config, revision=revision, **kwargs)
        except FileNotFoundError as e:
            raise DataError(f"hf:{name}: dataset not found ({e})") from None
        except ConnectionError as e:
            raise DataError(
                f"hf:{name}: cannot reach the hub and no local copy is cached ({e})"
            ) from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict(train=ds)
    return ds


def resolve_columns(
    name: str,
    features: Sequence[str],
    mapping: Mapping[str, str],
    required: Sequence[str],
    guesses: Mapping[str, Sequence[str]],
) -> dict[str, str]:
    """Our column name -> theirs, from the mapping or the guesses; error if a required one is missing."""
    out = {}
    for ours, options in guesses.items():
        theirs = mapping.get(ours) or next((c for c in options if c in features), None)
        if theirs is not None and theirs not in features:
            raise DataError(
                f"hf:{name}: column {theirs!r} (for {ours!r}) not found; columns are {list(features)}"
            )
        if theirs is not None:
            out[ours] = theirs
        elif ours in required:
            raise DataError(
                f"hf:{name}: no {ours!r} column among {list(features)}; map one with columns='{ours}:NAME'"
            )
    return out


def split_indices(
    name: str,
    dsd,
    cols: Mapping[str, str],
    keys: Mapping[str, list[str]],
    *,
    seed: int,
    fractions: Sequence[float],
) -> dict[str, list[tuple[str, int]]]:
    """Our split -> [(their split, row)], from split names, a split column, or a hash of `keys`."""
    out: dict[str, list[tuple[str, int]]] = {}
    for theirs, ds in dsd.items():
        if "split" in cols:
            for i, s in enumerate(ds[cols["split"]]):
                ours = normalise_split(s)
                if ours is None:
                    raise DataError(
                        f"hf:{name}[{theirs}] row {i}: unknown split {s!r} in column {cols['split']!r}"
                    )
                out.setdefault(ours, []).append((theirs, i))
            continue
        ours = normalise_split(theirs) or theirs
        out.setdefault(ours, []).extend((theirs, i) for i in range(len(ds)))
    if "train" in out and not all(out.get(s) for s in SPLITS[1:]):
        missing = [s for s in SPLITS[1:] if not out.get(s)]
        keep = []
        for theirs, i in out["train"]:
            s = hash_split(keys[theirs][i], seed=seed, fractions=fractions)
            (out.setdefault(s, []) if s in missing else keep).append((theirs, i))
        out["train"] = keep
    return out


def load_hf_captions(
    name: str,
    *,
    columns: str | Mapping[str, str] | None = None,
    config: str | None = None,
    revision: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
    **kwargs,
):
    """A hub (or local) caption dataset in our schema (extra keyword arguments go to
    `datasets.load_dataset`)."""
    from datasets import DatasetDict, Image, List, Value, concatenate_datasets

    dsd = open_hf(name, config=config, revision=revision, **kwargs)
    problems = Problems(f"hf:{name}", on_error)
    first = next(iter(dsd.values()))
    cols = resolve_columns(
        name, list(first.features), parse_columns(columns), ("image", "captions"), GUESS
    )
    keep: dict[str, list[int]] = {}
    parts = {}
    for theirs, ds in dsd.items():
        caps, ids, good = [], [], []
        id_col = list(ds[cols["image_id"]]) if "image_id" in cols else None
        for i, raw in enumerate(ds[cols["captions"]]):
            where = f"[{theirs}] row {i}"
            raw = [raw] if isinstance(raw, str) else raw
            raw = [r.get("raw") if isinstance(r, dict) else r for r in raw or []]
            texts = [clean_caption(r) for r in raw if isinstance(r, str)]
            if len(texts) != len(raw) or not texts or not all(texts):
                kind = "empty caption" if len(texts) == len(raw) else "malformed line"
                problems.bad(kind, f"hf:{name}", where, f"column {cols['captions']!r} has {raw!r}")
                texts = [t for t in texts if t]
                if not texts:
                    caps.append(None)
                    ids.append("")
                    continue
            caps.append(texts)
            ids.append(str(id_col[i]) if id_col is not None else f"{theirs}-{i}")
            good.append(i)
        img = ds.features[cols["image"]]
        part = ds.select_columns([cols["image"]]).rename_column(cols["image"], "image")
        if not isinstance(img, Image):
            if verify_images and img == Value("string"):
                paths, readable = list(part["image"]), []
                for i in good:
                    bad = image_problem(Path(paths[i]))
                    if bad:
                        problems.bad(bad[0], f"hf:{name}", f"[{theirs}] row {i}", bad[1])
                    else:
                        readable.append(i)
                good = readable
            part = part.cast_column("image", Image())
        part = part.add_column("captions", [c or [] for c in caps], feature=List(Value("string")))
        part = part.add_column("image_id", ids, feature=Value("string"))
        if "split" in cols:
            part = part.add_column(
                "split", [str(s) for s in ds[cols["split"]]], feature=Value("string")
            )
        parts[theirs], keep[theirs] = part, good
    keys = {t: list(p["image_id"]) for t, p in parts.items()}
    wanted = split_indices(
        name,
        parts,
        {"split": "split"} if "split" in cols else {},
        keys,
        seed=seed,
        fractions=fractions,
    )
    out = DatasetDict()
    for split in [*SPLITS, *(s for s in wanted if s not in SPLITS)]:
        chunks = []
        for theirs in parts:
            good = set(keep[theirs])
            rows = [i for t, i in wanted.get(split, []) if t == theirs and i in good]
            chunk = parts[theirs].select(rows)
            chunks.append(chunk.remove_columns("split") if "split" in chunk.column_names else chunk)
        out[split] = concatenate_datasets(chunks) if len(chunks) > 1 else chunks[0]
    out.report = problems.finish()
    return out
