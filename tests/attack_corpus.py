"""The attack corpus (issue 14): reproducible hostile files, no tests here.

Three generators, each returning what it made and what must happen:
- `photo_folder_attacks(folder, outside)`: special files named like images, formula-like
  names, planted links at output names, stale temporary files of a killed export.
- `model_dir_attacks(base, root)`: copies of a good model directory, each with one defect
  -> the error substring loading it must give.
- `data_attacks(root)`: caption sources with one defect each -> (loader, kwargs, error text).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from labeling_support import color_image

FORMULA_NAMES = ["=HYPERLINK(1).jpg", "+cmd.jpg", "-sum.jpg", "@at.jpg"]


def photo_folder_attacks(folder: Path, outside: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    color_image(1).save(folder / "ok.jpg")
    color_image(2).save(folder / "b.jpg")
    for i, name in enumerate(FORMULA_NAMES):
        color_image(10 + i).save(folder / name)
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("pipe.jpg", folder / "to-pipe.jpg")
    victim = outside / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, folder / "b.jpg.xmp")  # a planted link at a sidecar's name
    for name in (".labels.csv.x1y2z3.tmp", ".metadata.jsonl.abc123.tmp", ".ok.jpg.xmp.k9.tmp"):
        (folder / name).write_text("half-written by a killed run")
    return {
        "errors": {"pipe.jpg": "named pipe", "to-pipe.jpg": "named pipe"},
        "victim": victim,
        "stale": [".labels.csv.x1y2z3.tmp", ".metadata.jsonl.abc123.tmp", ".ok.jpg.xmp.k9.tmp"],
    }


def _edit_config(directory: Path, change) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def _replace(directory: Path, name: str, make) -> None:
    (directory / name).unlink()
    make(directory / name)


def model_dir_attacks(base: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """Each entry: a broken copy of `base` -> a substring of the error loading it gives."""
    cases: dict[str, tuple[Any, str]] = {
        "vocab-fifo": (lambda d: _replace(d, "vocab.json", os.mkfifo), "named pipe"),
        "vocab-dev-zero": (
            lambda d: _replace(d, "vocab.json", lambda p: os.symlink("/dev/zero", p)),
            "leads out of the model directory",
        ),
        "vocab-size-1e6": (
            lambda d: _edit_config(d, lambda c: c["decoder"].update(vocab_size=1_000_000)),
            "do not match",
        ),
        "embed-dim-1e6": (
            lambda d: _edit_config(d, lambda c: c["decoder"].update(embed_dim=1_000_000)),
            "do not match",
        ),
        "num-layers-1e6": (
            lambda d: _edit_config(d, lambda c: c["sentiment"].update(num_layers=1_000_000)),
            "num_layers",
        ),
        "max-length-abc": (
            lambda d: _edit_config(d, lambda c: c.update(max_length="abc")),
            "max_length",
        ),
        "max-length-neg": (
            lambda d: _edit_config(d, lambda c: c.update(max_length=-1)),
            "max_length",
        ),
        "small-vocab": (
            lambda d: (d / "vocab.json").write_text(json.dumps({"tokens": list("abcde")})),
            "vocab.json: 5 words",
        ),
        "weights-abs": (
            lambda d: _edit_config(d, lambda c: c["encoder"].update(weights="/etc/passwd")),
            "inside the model directory",
        ),
        "weights-up": (
            lambda d: _edit_config(d, lambda c: c["encoder"].update(weights="../../../etc/passwd")),
            "leads out of the model directory",
        ),
        "config-deep": (
            lambda d: (d / "config.json").write_text("[" * 100_000 + "]" * 100_000),
            "config.json: malformed JSON",
        ),
        "config-digits": (
            lambda d: (d / "config.json").write_text('{"max_length": ' + "9" * 5000 + "}"),
            "config.json: malformed JSON",
        ),
        "vocab-link-out": (
            lambda d: _replace(d, "vocab.json", lambda p: os.symlink("/etc/hostname", p)),
            "vocab.json: leads out",
        ),
    }
    out = {}
    for name, (break_it, expected) in cases.items():
        target = root / name
        shutil.copytree(base, target, symlinks=True)
        break_it(target)
        out[name] = (target, expected)
    return out


def data_attacks(root: Path) -> dict[str, tuple[str, dict, str]]:
    """Each entry: (loader name in captioner.data, keyword arguments, error substring)."""
    root.mkdir(parents=True, exist_ok=True)
    img = root / "images"
    img.mkdir(exist_ok=True)
    for i in range(40):
        color_image(i, (16, 12)).save(img / f"im{i:02d}.png")
    rows = [f"images/im{i:02d}.png,a picture number {i}" for i in range(1, 40)]
    (root / "unterminated.csv").write_text(
        'image,caption\nimages/im00.png,"a dog that never ends\n' + "\n".join(rows) + "\n"
    )
    (root / "unterminated-closed.csv").write_text(
        'image,caption\nimages/im00.png,"a dog that never ends\n'
        + "\n".join(rows)
        + '\nimages/im39.png,"a quoted caption"\n'
    )
    (root / "longfield.csv").write_text(
        "image,caption\nimages/im00.png,fine\nimages/im01.png," + "x" * 140_000 + "\n"
    )
    (root / "nul.csv").write_text("image,caption\nimages/im00.png,a cat\x00 on a mat\n")
    (root / "nested.jsonl").write_text(
        '{"image": "images/im00.png", "caption": "ok"}\n' + "[" * 100_000 + "\n"
    )
    (root / "latin1.jsonl").write_bytes(
        b'{"image": "images/im00.png", "caption": "ok"}\n'
        b'{"image": "images/im01.png", "caption": "caf\xe9"}\n'
    )
    (root / "escape.jsonl").write_text(
        json.dumps({"image": "../../etc/passwd", "caption": "x"}) + "\n"
    )
    coco = {
        "images": [{"id": 1, "file_name": "/etc/passwd"}, {"id": 2, "file_name": "../../x.png"}],
        "annotations": [{"image_id": 1, "caption": "a"}, {"image_id": 2, "caption": "b"}],
    }
    (root / "coco.json").write_text(json.dumps(coco))
    flickr = root / "flickr"
    flickr.mkdir(exist_ok=True)
    names = [f"im{i:02d}.png" for i in range(3)]
    for name in names:
        shutil.copy(img / name, flickr / name)
    token = "".join(f"{n}#0\tcaption of {n}\n" for n in names)
    (flickr / "Flickr8k.token.txt").write_bytes(b"\xef\xbb\xbf" + token.encode())
    for split, n in zip(("trainImages", "devImages", "testImages"), names, strict=True):
        (flickr / f"Flickr_8k.{split}.txt").write_text(n + "\n")
    bad_flickr = root / "flickr-latin1"
    shutil.copytree(flickr, bad_flickr)
    (bad_flickr / "Flickr8k.token.txt").write_bytes(token.encode() + b"im00.png#1\tun caf\xe9\n")
    bad_split = root / "flickr-split-latin1"
    shutil.copytree(flickr, bad_split)
    (bad_split / "Flickr_8k.devImages.txt").write_bytes(b"im01.png\ncaf\xe9.png\n")
    up_flickr = root / "flickr-up"
    shutil.copytree(flickr, up_flickr)
    (up_flickr / "Flickr8k.token.txt").write_text(token + "../../x.png#0\tclimbing out\n")
    (up_flickr / "Flickr_8k.testImages.txt").write_text("../../x.png\n")
    karpathy = {
        "images": [
            {"filename": "im00.png", "split": "train", "sentences": [{"raw": "fine"}]},
            {"filepath": "../..", "filename": "x.png", "split": "val", "sentences": ["up"]},
        ]
    }
    (root / "karpathy.json").write_text(json.dumps(karpathy))
    return {
        "flickr-split-latin1": (
            "load_flickr",
            {"root": bad_split},
            "Flickr_8k.devImages.txt:2: not UTF-8",
        ),
        "flickr-escape": ("load_flickr", {"root": up_flickr}, "leaves"),
        "karpathy-escape": (
            "load_karpathy",
            {"json_path": root / "karpathy.json", "image_root": img},
            "karpathy.json:images[1]",
        ),
        "csv-unterminated": (
            "load_table",
            {"path": root / "unterminated.csv"},
            "unterminated.csv:2",
        ),
        "csv-unterminated-closed": (
            "load_table",
            {"path": root / "unterminated-closed.csv"},
            "unterminated-closed.csv:2",
        ),
        "csv-long-field": ("load_table", {"path": root / "longfield.csv"}, "longfield.csv:3"),
        "jsonl-nested": ("load_table", {"path": root / "nested.jsonl"}, "nested.jsonl:2"),
        "jsonl-latin1": ("load_table", {"path": root / "latin1.jsonl"}, "latin1.jsonl:2"),
        "jsonl-escape": ("load_table", {"path": root / "escape.jsonl"}, "leaves"),
        "coco-escape": (
            "load_coco",
            {"annotations": root / "coco.json", "image_dir": img},
            "leaves the image folder",
        ),
        "flickr-latin1": ("load_flickr", {"root": bad_flickr}, "Flickr8k.token.txt:4"),
    }
