"""Text-only caption corpora: captions of everyday scenes without their photos.

Spec forms (joined with '+'):

    coco-text:FILE        COCO captions as JSON lines {"image_id", "captions": [...]}
                          (../shared/data/coco/val2017_text.jsonl)
    flickr30k-text:FILE   Flickr30k captions as JSON lines {"image", "split", "captions"}
                          (../shared/data/flickr30k_text/captions.jsonl)
    cc-text:FILE          Conceptual Captions, one caption a line (../shared/data/cc_val/captions.txt)
    text:FILE             any of the two layouts above

`load_text_captions(spec)` gives one `datasets.Dataset` with `captions` (list of str, the
captions of one photo, or one caption) and `image_id` ("KIND:ID" or "KIND:LINE"). These feed
the language side of `captioner train everyday`; a photo is paired with them by concepts.
"""

from __future__ import annotations

import json
from pathlib import Path

from captioner.data.common import DataError

TEXT_KINDS = ("coco-text", "flickr30k-text", "cc-text", "text")
MAX_LINE = 1 << 20  # a longer line is no caption file of ours


def read_text_captions(path: str | Path, *, kind: str = "text") -> list[tuple[str, list[str]]]:
    """(image id, captions) per record of a text-only corpus file: JSON lines with a
    `captions` list, or plain text with one caption a line. Errors name file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{kind}: {path} is not a file")
    out: list[tuple[str, list[str]]] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(iter(lambda: f.readline(MAX_LINE), ""), 1):
            if len(line) >= MAX_LINE:
                raise DataError(f"{path}:{n}: line longer than {MAX_LINE} characters")
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                    caps = record["captions"]
                    if not isinstance(caps, list):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    raise DataError(
                        f"{path}:{n}: expected a JSON object with a 'captions' list"
                    ) from None
                ident = record.get("image_id", record.get("image", n))
                caps = [str(c).strip() for c in caps if str(c).strip()]
                if caps:
                    out.append((f"{kind}:{ident}", caps))
            else:
                out.append((f"{kind}:{n}", [line]))
    return out


def load_text_captions(spec: str):
    """A `datasets.Dataset` (`captions`, `image_id`) of every part of `spec`."""
    import datasets

    ids: list[str] = []
    caps: list[list[str]] = []
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        kind, sep, path = part.partition(":")
        if kind not in TEXT_KINDS or not sep or not path:
            raise DataError(
                f"bad text corpus spec {part!r}: use {' | '.join(k + ':FILE' for k in TEXT_KINDS)}"
            )
        for ident, captions in read_text_captions(path, kind=kind):
            ids.append(ident)
            caps.append(captions)
    if not ids:
        raise DataError(f"text corpus spec {spec!r} holds no caption")
    return datasets.Dataset.from_dict({"captions": caps, "image_id": ids})
