"""The JSONL journals of a labeling run, which folder writes to which, and the files the run
writes beside them (the exports: `captioner.labeling.formats`).

Without sharding a run writes `DIR/labels.jsonl` per folder (or the one `--out` file). A shard
run (`--shard K/N`, a torchrun rank) writes `labels.shard-K-of-N.jsonl` beside it instead,
and counts the rows of the main journal as done too (work merged earlier is never redone).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from captioner.labeling.formats import FORMATS
from captioner.labeling.lock import lock_path
from captioner.labeling.safefiles import output_path
from captioner.labeling.scan import OwnOutputs
from captioner.labeling.shards import Shard, settings_path, shard_journal
from captioner.labeling.writers import Key, LabelStore

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

    def format_files(self, store: LabelStore, formats=FORMATS) -> list[Path]:
        """The files at fixed names that `formats` write for `store` (its CSV, its folders'
        metadata.jsonl, ...): `captioner.labeling.formats.Format.files`."""
        folders = self.folders_of.get(id(store), [])  # a shard's main: the shard's folders
        return [path for name in formats for path in FORMATS[name].files(store.path, folders)]

    def check_outputs(self, formats: tuple[str, ...]) -> None:
        """Refuse at once, before any lock is taken or image labelled, output names that
        hold a named pipe, a device or a folder, or a link leading out of their folder
        (`safefiles.UnsafeFileError`)."""
        for store in self.all_stores():
            store.check_names()
            for path in self.format_files(store, formats):
                output_path(path, path.parent)

    def own_outputs(self) -> OwnOutputs:
        """Every file this run may write (never labelled, wherever --out puts them)."""
        paths: list[Path] = []
        for store in self.all_stores():
            p = store.path
            paths += [p, store.rejected, lock_path(p), settings_path(p)]
            paths += self.format_files(store)
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
