"""Splitting a labeling job into N shards: who labels which image, and the shard files.

An image belongs to shard `blake2b(folder index, relative path) mod N`: every process that
walks the same folders (in the same order on the command line) agrees without talking to the
others, and an image keeps its shard when files are added or removed between runs, so a
rerun of a killed shard finds its own journal's images again. Shard K of N writes
`labels.shard-0000K-of-0000N.jsonl` beside the main journal, and its settings (model, search,
tags, selection) to `labels.shard-0000K-of-0000N.settings.jsonl`: shards labelled with
different settings are never merged into one file.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captioner.labeling.safefiles import read_head, replaced
from captioner.labeling.writers import JournalError

MAX_SETTINGS = 1 << 20

SHARD_RE = r"\.shard-(\d{5})-of-(\d{5})"
SETTINGS_SUFFIX = ".settings.jsonl"


class ShardError(JournalError):
    """Shards that cannot be merged (settings differ, some unfinished, another split)."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 99_999 or not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index}/{self.count}: need K/N with N from 1 to 99999 and K from "
                "0 to N-1 (e.g. --shard 0/4 ... --shard 3/4)"
            )

    def owns(self, folder_index: int, rel: str) -> bool:
        return shard_of(folder_index, rel, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """ "K/N" -> Shard(K, N); ValueError naming the problem otherwise."""
    k, sep, n = text.strip().partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"shard {text!r}: expected K/N, e.g. 0/4 (shard K of N, K from 0)")
    return Shard(int(k), int(n))


def shard_of(folder_index: int, rel: str, count: int) -> int:
    data = f"{folder_index}\0{rel}".encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") % count


def shard_journal(main: Path, shard: Shard) -> Path:
    """labels.jsonl -> labels.shard-00001-of-00004.jsonl"""
    return main.with_name(f"{main.stem}.shard-{shard.index:05d}-of-{shard.count:05d}{main.suffix}")


def settings_path(journal: Path) -> Path:
    return journal.with_name(journal.stem + SETTINGS_SUFFIX)


def find_shards(main: Path) -> dict[Path, Shard]:
    """The shards of `main` with a journal or a settings file in its folder (a shard with
    no image has only the latter): journal path -> shard, in shard order."""
    name = re.compile(
        re.escape(main.stem) + SHARD_RE + f"({re.escape(main.suffix)}|{re.escape(SETTINGS_SUFFIX)})"
    )
    found = {}
    for path in sorted(main.parent.glob(f"{glob.escape(main.stem)}.shard-*")):
        m = name.fullmatch(path.name)
        if m:
            shard = Shard(int(m.group(1)), int(m.group(2)))
            found[shard_journal(main, shard)] = shard
    return dict(sorted(found.items(), key=lambda item: item[1].index))


def read_settings(journal: Path) -> dict[str, Any] | None:
    path = settings_path(journal)
    try:  # never blocks on a pipe, never reads more than a settings file holds
        data = read_head(path, MAX_SETTINGS + 1)
        if data is None:
            return None
        if len(data) > MAX_SETTINGS:
            raise ValueError("larger than 1 MiB")
        return json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as e:  # UnsafeFileError (a pipe) is a ValueError too
        raise ShardError(f"{path}: unreadable shard settings ({e}); remove it") from None


def _difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


def check_shards(main: Path, count: int | None, settings: dict[str, Any] | None) -> int:
    """Refuse shard files of `main` from another split or with other settings (than
    `settings`, or than each other). Returns the split's N (or `count`; 0: no shards)."""
    shards = find_shards(main)
    counts = {s.count for s in shards.values()}
    if count is not None:
        counts.add(count)
    if len(counts) > 1:
        files = ", ".join(p.name for p in shards)
        raise ShardError(
            f"{main.parent}: shard files of different splits ({files}; N = "
            f"{', '.join(map(str, sorted(counts)))}): finish and merge one split, or remove "
            "the other's files"
        )
    reference, source = settings, "this run"
    for path in shards:
        theirs = read_settings(path)
        if theirs is None:
            continue
        if reference is None:
            reference, source = theirs, path.name
        elif theirs != reference:
            raise ShardError(
                f"{path.name} was labelled with other settings than {source} "
                f"({_difference(theirs, reference)}); label every shard with the same "
                "command, or remove that shard's files to label it again"
            )
    return counts.pop() if counts else 0


def write_settings(journal: Path, settings: dict[str, Any]) -> None:
    with replaced(settings_path(journal), within=journal.parent) as f:
        f.write(json.dumps(settings, sort_keys=True) + "\n")
