"""Concatenating caption corpora per split (the `scenes+tuxpaint` spec).

The result keeps `image`, `captions`, `image_id` (prefixed `KIND/` so ids stay unique), adds
`source` (the part's kind) and keeps every extra string column of any part (e.g. the scene
world's `scene`), empty (None) in rows of parts that lack it. Splits are the union of the
parts' splits (`test_novel` comes only from the scene world).
"""

from __future__ import annotations

from captioner.data.common import SPLITS, DataReport


def concatenate_caption_dicts(parts: list[tuple[str, object]], *, name: str):
    """[(kind, DatasetDict)] -> one DatasetDict, concatenated split by split."""
    from datasets import Dataset, DatasetDict, Value, concatenate_datasets

    base = ("image", "captions", "image_id")
    extras: dict[str, object] = {}
    for _, dsd in parts:
        for ds in dsd.values():
            for col, feat in ds.features.items():
                if col not in base and col != "source":
                    extras.setdefault(col, feat)
    bad = {c: f for c, f in extras.items() if f != Value("string")}
    if bad:
        raise ValueError(f"cannot combine {name!r}: extra columns must be strings, got {bad}")
    split_names = [*SPLITS]
    for _, dsd in parts:
        split_names += [s for s in dsd if s not in split_names]
    report = DataReport(source=name)
    out = DatasetDict()
    for split in split_names:
        chunks = []
        for kind, dsd in parts:
            if split not in dsd:
                continue
            ds: Dataset = dsd[split]
            n = len(ds)
            ids = [f"{kind}/{i}" for i in ds["image_id"]]
            ds = ds.remove_columns("image_id").add_column("image_id", ids, feature=Value("string"))
            if "source" in ds.column_names:
                ds = ds.remove_columns("source")
            ds = ds.add_column("source", [kind] * n, feature=Value("string"))
            for col in extras:
                if col not in ds.column_names:
                    ds = ds.add_column(col, [None] * n, feature=Value("string"))
            chunks.append(ds.select_columns([*base, "source", *extras]))
        out[split] = concatenate_datasets(chunks)
    for kind, dsd in parts:
        sub = getattr(dsd, "report", None)
        if sub is not None:
            report.skipped += sub.skipped
            report.notes += [f"{kind}: {note}" for note in sub.notes]
    out.report = report
    return out
