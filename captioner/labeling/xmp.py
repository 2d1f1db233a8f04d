"""XMP sidecar files that photo managers read (darktable, digiKam, Lightroom, exiftool).

The caption goes to `dc:description` (a language alternative, `x-default`) and the tags to
`dc:subject` (an unordered bag of keywords). Sidecars are named `photo.jpg.xmp`
(`naming="ext"`: darktable, digiKam) or `photo.xmp` (`naming="stem"`: Lightroom, Bridge).
The image itself is never touched. A sidecar that another program wrote is never replaced:
only files carrying `xmp:CreatorTool="captioner"` are rewritten.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from captioner.atomic import (
    TMP_SUFFIX,
    UnsafePathError,
    remove_stale,
    safe_target,
    write_bytes_atomic,
)
from captioner.imageio import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

NAMINGS = ("ext", "stem")
CREATOR = "captioner"
# Characters XML 1.0 forbids (C0 controls except tab/newline/return, surrogates, U+FFFE/F).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    return escape(_INVALID_XML.sub("", text))


def sidecar_path(image: str | os.PathLike, naming: str = "ext") -> Path:
    image = Path(image)
    if naming == "ext":
        return image.with_name(image.name + ".xmp")
    if naming == "stem":
        return image.with_suffix(".xmp")
    raise ValueError(f"XMP naming must be one of {NAMINGS}, got {naming!r}")


def render(caption: str | None, tags: Iterable[str] | None) -> str:
    """The XMP packet for one image."""
    parts = [
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="captioner">',
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
        '  <rdf:Description rdf:about=""',
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"',
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"',
        f"    xmp:CreatorTool={quoteattr(CREATOR)}>",
    ]
    if caption:
        parts += [
            "   <dc:description>",
            "    <rdf:Alt>",
            f'     <rdf:li xml:lang="x-default">{clean(caption)}</rdf:li>',
            "    </rdf:Alt>",
            "   </dc:description>",
        ]
    tags = [t for t in (tags or []) if clean(t).strip()]
    if tags:
        parts += ["   <dc:subject>", "    <rdf:Bag>"]
        parts += [f"     <rdf:li>{clean(t)}</rdf:li>" for t in tags]
        parts += ["    </rdf:Bag>", "   </dc:subject>"]
    parts += ["  </rdf:Description>", " </rdf:RDF>", "</x:xmpmeta>", '<?xpacket end="w"?>', ""]
    return "\n".join(parts)


def is_ours(path: Path) -> bool:
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return b'xmp:CreatorTool="captioner"' in head or b"<xmp:CreatorTool>captioner<" in head


@lru_cache(maxsize=8)
def _image_stems(folder: str) -> dict[str, int]:
    """stem -> number of image files with that stem in `folder` (for `naming="stem"`)."""
    counts: dict[str, int] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return counts
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS:
            counts[stem] = counts.get(stem, 0) + 1
    return counts


def _stale_sidecar_temps(folder: Path) -> list[Path]:
    """Temporary sidecars (`.photo.jpg.xmp.XXXX.tmp`) a killed run left in `folder`."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [
        folder / n for n in names if n.startswith(".") and ".xmp." in n and n.endswith(TMP_SUFFIX)
    ]


@dataclass
class SidecarStats:
    written: int = 0
    unchanged: int = 0
    foreign: int = 0  # sidecars by another program, left alone
    ambiguous: int = 0  # photo.jpg + photo.png would share photo.xmp: skipped
    unsafe: int = 0  # a symbolic link at the sidecar's name leads out of the folder: skipped


def write_sidecars(records: Iterable[dict[str, Any]], *, naming: str = "ext") -> SidecarStats:
    """Write (or refresh) one sidecar per record labelled without error."""
    stats = SidecarStats()
    _image_stems.cache_clear()
    cleaned: set[str] = set()  # folders whose stale temporary sidecars are removed
    for rec in records:
        if rec.get("error") is not None:
            continue
        tags = [t["label"] for t in rec.get("tags") or []]
        if not rec.get("caption") and not tags:
            continue
        image = Path(rec["folder"]) / rec["path"]
        if not image.is_file():
            continue
        target = sidecar_path(image, naming)
        if naming == "stem" and _image_stems(str(image.parent)).get(image.stem, 0) > 1:
            stats.ambiguous += 1
            continue
        if str(image.parent) not in cleaned:
            cleaned.add(str(image.parent))
            remove_stale(_stale_sidecar_temps(image.parent))
        data = render(rec.get("caption"), tags).encode("utf-8")
        try:
            # a link at the sidecar's name is followed only when it stays in the folder
            target = safe_target(target, rec["folder"])
        except UnsafePathError as e:
            log.warning("%s; sidecar skipped", e)
            stats.unsafe += 1
            continue
        if target.exists():
            if not is_ours(target):
                stats.foreign += 1
                continue
            if target.read_bytes() == data:
                stats.unchanged += 1
                continue
        try:
            write_bytes_atomic(target, data, within=rec["folder"])
        except OSError as e:
            log.warning("%s: could not write XMP sidecar (%s)", target, e.strerror or e)
            continue
        stats.written += 1
    if stats.foreign:
        log.warning(
            "%d XMP sidecar(s) written by other programs were left unchanged", stats.foreign
        )
    if stats.ambiguous:
        log.warning(
            "%d image(s) share a stem with another image (photo.jpg + photo.png): "
            "no photo.xmp written for them; use --xmp-name ext",
            stats.ambiguous,
        )
    return stats
