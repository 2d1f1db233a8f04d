"""The JSONL journals of a labeling run, which folder writes to which, and the exports.

Without sharding a run writes `DIR/labels.jsonl` per folder (or the one `--out` file). A shard
run (`--shard K/N`, a torchrun rank) writes `labels.shard-K-of-N.jsonl` beside it instead,
and counts the rows of the main journal as done too (work merged earlier is never redone).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from captioner.labeling.exports import METADATA_NAME, write_csv, write_metadata
from captioner.labeling.lock import lock_path
from captioner.labeling.safefiles import output_path
from captioner.labeling.scan import OwnOutputs
from captioner.labeling.shards import Shard, settings_path, shard_journal
from captioner.labeling.writers import Key, LabelStore
from captioner.labeling.xmp import write_sidecars

log = logging.getLogger(__name__)

JOURNAL_NAME = "labels.jsonl"


class Journals:
    """The JSONL store(s) of a run (`shard`: that shard's files) and their folders."""

    def __init__(
        self, folders: list[str], out: str | os.PathLike | None, shard: Shard | None = None
    ):
        if out is not None:
            override = folders[0] if len(folders) == 1 else None
            groups = [(Path(out), override, folders)]
        else:
            groups = [(Path(f) / JOURNAL_NAME, f, [f]) for f in folders]
        self.stores: list[LabelStore] = []
        self.mains: dict[int, LabelStore] = {}  # shard store -> its main journal
        self.of_folder: dict[str, LabelStore] = {}
        self.folders_of: dict[int, list[str]] = {}
        for path, override, group in groups:
            main = LabelStore(path, folder_override=override)
            store = (
                LabelStore(shard_journal(path, shard), folder_override=override) if shard else main
            )
            self.stores.append(store)
            self.mains[id(store)] = main
            self.of_folder.update({f: store for f in group})
            self.folders_of[id(store)] = group
        self.sharded = shard is not None
        self.dirty: set[int] = set()  # stores that need compaction
        self.models: set[str] = set()  # model names in the journals

    def all_stores(self) -> list[LabelStore]:
        """The run's stores and (for a shard run) their main journals."""
        return list({id(s): s for s in [*self.stores, *self.mains.values()]}.values())

    def check_outputs(self, formats: tuple[str, ...]) -> None:
        """Refuse at once, before any lock is taken or image labelled, output names that
        hold a named pipe, a device or a folder, or a link leading out of their folder
        (`safefiles.UnsafeFileError`)."""
        for store in self.all_stores():
            store.check_names()
            if "csv" in formats:
                output_path(store.path.with_suffix(".csv"), store.path.parent)
        if "metadata" in formats:
            for folder in self.of_folder:
                output_path(Path(folder) / METADATA_NAME, folder)

    def own_outputs(self) -> OwnOutputs:
        """Every file this run may write (never labelled, wherever --out puts them)."""
        paths: list[Path] = []
        for store in self.all_stores():
            p = store.path
            paths += [p, p.with_suffix(".csv"), store.rejected, lock_path(p), settings_path(p)]
        paths += [Path(f) / METADATA_NAME for f in self.of_folder]
        return OwnOutputs.of(paths)

    def load(self, overwrite: bool) -> dict[Key, bool]:
        done: dict[Key, bool] = {}
        for store in self.stores:
            if self.sharded and not overwrite:  # rows merged earlier: read only
                main = self.mains[id(store)]
                done.update((main.key(r), r.get("error") is None) for r in main.iter_records())
            d, stats = store.load()  # raises JournalError for a file that is not ours
            if overwrite and store.path.exists():
                store.path.unlink()
                d, stats = store.load()
            if stats.bad_lines or stats.junk_lines or stats.duplicates or stats.malformed:
                self.dirty.add(id(store))
            self.models |= stats.models
            if len(stats.models) > 1:
                log.warning(
                    "%s holds labels from several models: %s",
                    store.path,
                    ", ".join(sorted(stats.models)),
                )
            done.update(d)
        return done

    def close(self) -> None:
        for store in self.stores:
            store.close()
            if id(store) in self.dirty:
                store.compact()


@dataclass
class ExportProblems:
    count: int = 0  # outputs of single images that could not be written (sidecars)
    errors: list[str] = field(default_factory=list)  # the first few, one line each


def export(
    journals: Journals,
    roots: list[str],
    formats: tuple[str, ...],
    xmp_naming: str,
    stores: list[LabelStore] | None = None,
    problems: ExportProblems | None = None,
) -> list[str]:
    """Regenerate the CSV, metadata.jsonl and XMP sidecars from each journal (or those of
    `stores`); returns what was written. Files whose sidecar could not be written (a name
    too long) are added to `problems`, one line each, and the export goes on."""
    outputs = []
    wanted = set(roots)
    for store in journals.stores if stores is None else stores:
        if not store.path.exists():
            continue
        outputs.append(str(store.path))
        if "csv" in formats:
            csv_path = store.path.with_suffix(".csv")
            langs = sorted({k for r in store.iter_records() for k in r.get("translations") or ()})
            write_csv(store.iter_records(), csv_path, mode_of=store.path, languages=langs)
            outputs.append(str(csv_path))
        folders = journals.folders_of[id(store)]
        if "metadata" in formats:
            write_metadata(store.iter_records(), folders, mode_of=store.path)
            outputs += [os.path.join(f, "metadata.jsonl") for f in folders]
        if "xmp" in formats:
            records = (r for r in store.iter_records() if r.get("folder") in wanted)
            stats = write_sidecars(records, naming=xmp_naming)
            failed = f", {stats.failed} not written (see the errors)" if stats.failed else ""
            outputs.append(
                f"{stats.written} XMP sidecar(s) written, {stats.unchanged} unchanged{failed}"
            )
            if problems is not None:
                problems.count += stats.failed
                problems.errors += stats.errors
    return outputs
