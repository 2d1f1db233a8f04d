"""Labelled image data for the recognizer recipe: `image`, `labels` (list of str), `image_id`.

Sources: class subfolders as torchvision's ImageFolder reads them (`ROOT/<label>/*.jpg`, or
`ROOT/<split>/<label>/*.jpg`); Hugging Face image datasets with a ClassLabel (or list of
ClassLabels, or text) column; any caption dataset spec whose label column holds text or a
list of text (e.g. `imagefolder:DIR` with `metadata.jsonl` rows `{"file_name", "tags"}`).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import torch
from torch import Tensor

from captioner.data.common import SPLITS, DataError, normalise_split
from captioner.imageio import IMAGE_EXTENSIONS


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_class_folder(root: Path) -> bool:
    """An ImageFolder layout: no metadata file, and subfolders of images."""
    has_meta = any(root.glob("metadata.*")) or any(root.glob("*/metadata.*"))
    return root.is_dir() and not has_meta and bool(_class_dirs(root))


def load_class_folder(
    root: str | Path, *, seed: int = 0, fractions=(0.8, 0.1, 0.1)
) -> datasets.DatasetDict:
    """`ROOT/<label>/*.jpg` (or `ROOT/<split>/<label>/*.jpg`) -> DatasetDict with `image`,
    `labels` ([label]) and `image_id` (path relative to ROOT). Without split folders each
    class is shuffled with `seed` and cut by `fractions`."""
    from captioner.data.sentiment_corpora import stratified_split

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    subdirs = _class_dirs(root)
    split_dirs = {normalise_split(p.name): p for p in subdirs if normalise_split(p.name)}
    items: dict[str, list[tuple[Path, str]]] = {}
    if split_dirs:
        for split, folder in split_dirs.items():
            items[split] = [(f, c.name) for c in _class_dirs(folder) for f in _images_in(c)]
    else:
        pairs = [(f, c.name) for c in subdirs for f in _images_in(c)]
        items = stratified_split(pairs, key=lambda x: x[1], seed=seed, fractions=fractions)
    if not any(items.values()):
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"{root}: no images ({exts}) in class subfolders ROOT/<label>/")
    out = datasets.DatasetDict()
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "labels": datasets.List(datasets.Value("string")),
            "image_id": datasets.Value("string"),
        }
    )
    for split in [*SPLITS, *(s for s in items if s not in SPLITS)]:
        rows = items.get(split, [])
        out[split] = datasets.Dataset.from_dict(
            {
                "image": [str(f) for f, _ in rows],
                "labels": [[label] for _, label in rows],
                "image_id": [str(f.relative_to(root)) for f, _ in rows],
            },
            features=features,
        )
    return out


def _label_names(feature) -> list[str] | None:
    """The names of a ClassLabel column (or of a list of ClassLabels), else None."""
    inner = getattr(feature, "feature", feature)  # List(ClassLabel) / Sequence(ClassLabel)
    return list(inner.names) if isinstance(inner, datasets.ClassLabel) else None


def _as_labels(value, names: list[str] | None) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [names[v] if names is not None and isinstance(v, int) else str(v) for v in values]


def load_hf_labels(
    name: str,
    *,
    label_column: str = "label",
    columns=None,
    seed: int = 0,
    fractions=(0.8, 0.1, 0.1),
    **kwargs,
) -> datasets.DatasetDict:
    """A hub (or local `save_to_disk`) image dataset whose `label_column` holds a ClassLabel,
    a list of ClassLabels, a string or a list of strings. Missing validation / test splits
    are carved from train by a hash of the image id (or row)."""
    from captioner.data.hf_datasets import GUESS, open_hf, resolve_columns, split_indices
    from captioner.data.tables import parse_columns

    dsd = open_hf(name, **kwargs)
    first = next(iter(dsd.values()))
    guesses = {"image": GUESS["image"], "labels": (label_column,),
               "image_id": GUESS["image_id"], "split": GUESS["split"]}  # fmt: skip
    mapping = {**parse_columns(columns), "labels": label_column}
    cols = resolve_columns(name, list(first.features), mapping, ("image", "labels"), guesses)
    keys = {
        theirs: [str(v) for v in ds[cols["image_id"]]]
        if "image_id" in cols
        else [f"{theirs}/{i}" for i in range(len(ds))]
        for theirs, ds in dsd.items()
    }
    where = split_indices(name, dsd, cols, keys, seed=seed, fractions=fractions)
    features = datasets.Features({"image": datasets.Image(),
                                  "labels": datasets.List(datasets.Value("string")),
                                  "image_id": datasets.Value("string")})  # fmt: skip
    out = datasets.DatasetDict()
    for split in [*SPLITS, *(s for s in where if s not in SPLITS)]:
        parts = []
        for theirs in sorted({t for t, _ in where.get(split, [])}):
            rows = [i for t, i in where[split] if t == theirs]
            ds = dsd[theirs].select(rows)
            names = _label_names(ds.features[cols["labels"]])
            labels = [_as_labels(v, names) for v in ds[cols["labels"]]]
            part = ds.select_columns([cols["image"]]).rename_column(cols["image"], "image")
            part = part.add_column("labels", labels).add_column(
                "image_id", [keys[theirs][i] for i in rows]
            )
            parts.append(part.cast(features))
        out[split] = (
            datasets.concatenate_datasets(parts)
            if parts
            else datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        )
    return out


def load_labelled(spec: str, *, label_column: str = "", seed: int = 0) -> datasets.DatasetDict:
    """The dataset named by `spec` with `image`, `labels` (list of str) and `image_id` per
    split: class folders (`imagefolder:DIR` or `DIR`), `hf:NAME` (ClassLabel or text labels,
    `--label-column`, default `label`), or any caption spec whose `label_column` holds text."""
    from captioner.data import load_caption_dataset, parse_spec
    from captioner.data.tables import parse_columns

    kind, _, arg = spec.partition(":")
    folder = Path(arg.partition("?")[0] if kind == "imagefolder" else spec)
    if not label_column and is_class_folder(folder):
        return load_class_folder(folder, seed=seed)
    if kind == "hf":
        (part,) = parse_spec(spec)
        options = {"seed": seed, **part.options}
        return load_hf_labels(part.args[0], label_column=label_column or "label", **options)
    if not label_column:
        raise ValueError(
            f"--dataset {spec!r}: not an image folder with class subfolders; "
            "name the column holding the labels with --label-column (e.g. tags)"
        )
    # The caption loaders read a text-or-list column; point their `captions` at the labels.
    (part,) = parse_spec(spec)
    columns = {**parse_columns(part.options.get("columns")), "captions": label_column}
    dsd = load_caption_dataset(spec, columns=columns)
    return datasets.DatasetDict({k: v.rename_column("captions", "labels") for k, v in dsd.items()})


def load_caption_objects(spec: str) -> datasets.DatasetDict:
    """Any caption dataset with `labels` = the object words its captions name
    (`captioner.tagwords.caption_objects`: "a dog chases a ball" -> ball, dog)."""
    from captioner.data import load_caption_dataset
    from captioner.tagwords import caption_objects

    dsd = load_caption_dataset(spec)
    return datasets.DatasetDict({
        k: v.map(lambda caps: {"labels": caption_objects(caps)}, input_columns="captions",
                 remove_columns=["captions"], desc=f"caption objects ({k})")
        for k, v in dsd.items()
    })  # fmt: skip


def label_set(train: datasets.Dataset, *, multi_label: bool, min_images: int = 1) -> list[str]:
    """The sorted labels of the training split held by at least `min_images` images."""
    counts: dict[str, int] = {}
    for i, row in enumerate(train["labels"]):
        if not multi_label and len(set(row)) != 1:
            ident = train[i]["image_id"]
            raise DataError(
                f"image {ident}: {len(set(row))} labels {sorted(set(row))[:5]} in a single-label "
                "dataset (use --multi-label for several labels per image)"
            )
        for name in set(row):
            counts[name] = counts.get(name, 0) + 1
    labels = {name for name, n in counts.items() if n >= min_images}
    if not labels:
        raise DataError(f"no label is held by {min_images} or more training images "
                        f"(labels: {sorted(counts)[:10]})")  # fmt: skip
    if len(labels) < 2 and not multi_label:
        raise DataError(
            f"a single-label recognizer needs at least 2 labels, found {sorted(labels)}"
        )
    return sorted(labels)


def targets(rows: list[list[str]], labels: list[str], *, multi_label: bool) -> Tensor:
    """Single-label: class ids (n,); multi-label: multi-hot (n, L). Unknown labels (seen only
    outside the training split) are dropped from the targets."""
    index = {name: i for i, name in enumerate(labels)}
    if not multi_label:
        return torch.tensor([index.get(row[0], -100) for row in rows])  # -100: ignored
    hot = torch.zeros(len(rows), len(labels))
    for i, row in enumerate(rows):
        for name in row:
            if name in index:
                hot[i, index[name]] = 1.0
    return hot
