"""XMP sidecar files that photo managers read (darktable, digiKam, Lightroom, exiftool).

The caption goes to `dc:description` (a language alternative, `x-default`) and the tags to
`dc:subject` (an unordered bag of keywords). Sidecars are named `photo.jpg.xmp`
(`naming="ext"`: darktable, digiKam) or `photo.xmp` (`naming="stem"`: Lightroom, Bridge).
The image itself is never touched. A sidecar that another program wrote is never replaced:
only files carrying `xmp:CreatorTool="captioner"` are rewritten. A sidecar is written only
inside the labelled folder (not through a link, nor into a linked sub-folder, leading out)
and only over a regular file; one that cannot be written (a name too long) is reported and
the others are written.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from captioner.atomic import TMP_SUFFIX
from captioner.imageio import IMAGE_EXTENSIONS
from captioner.labeling.safefiles import (
    UnsafeFileError,
    output_path,
    read_head,
    removable,
    shown,
    write_replacing,
)

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
        head = read_head(path, 4096) or b""
    except (OSError, UnsafeFileError):
        return False
    return b'xmp:CreatorTool="captioner"' in head or b"<xmp:CreatorTool>captioner<" in head


def _same(path: Path, data: bytes) -> bool:
    """Whether the regular file at `path` holds exactly `data` (reads at most that much)."""
    return read_head(path, len(data) + 1) == data


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
        folder / n
        for n in names
        if n.startswith(".") and ".xmp." in n and n.endswith(TMP_SUFFIX) and removable(folder / n)
    ]


@dataclass
class SidecarStats:
    written: int = 0
    unchanged: int = 0
    foreign: int = 0  # sidecars by another program, left alone
    ambiguous: int = 0  # photo.jpg + photo.png would share photo.xmp: skipped
    unsafe: int = 0  # a link or linked folder leads out, or a pipe/device at the name: skipped
    failed: int = 0  # could not be written (a name too long for the file system, ...)
    errors: list[str] = field(default_factory=list)  # the first few of those, one line each


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
        try:
            _write_one(rec, image, tags, naming, stats, cleaned)
        except UnsafeFileError as e:
            log.warning("%s; sidecar skipped", e)
            stats.unsafe += 1
        except OSError as e:
            stats.failed += 1
            if len(stats.errors) < 10:
                stats.errors.append(_failure(image, naming, e))
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
    if stats.failed:
        log.warning("%d XMP sidecar(s) could not be written", stats.failed)
    return stats


def _failure(image: Path, naming: str, e: OSError) -> str:
    name = sidecar_path(image, naming).name
    if e.errno == errno.ENAMETOOLONG:
        size = len(os.fsencode(name))
        return (
            f"{shown(str(image))}: name too long for its XMP sidecar ({size} bytes with "
            "'.xmp', over the file system's limit); no sidecar written"
        )
    return f"{shown(str(image))}: XMP sidecar not written ({shown(e.strerror or str(e))})"


def _write_one(
    rec: dict[str, Any],
    image: Path,
    tags: list[str],
    naming: str,
    stats: SidecarStats,
    cleaned: set[str],
) -> None:
    if not image.is_file():
        return
    target = sidecar_path(image, naming)
    if naming == "stem" and _image_stems(str(image.parent)).get(image.stem, 0) > 1:
        stats.ambiguous += 1
        return
    # inside the labelled folder only (no link, no linked sub-folder leading out), and
    # only over a regular file
    target = output_path(target, rec["folder"])
    if str(image.parent) not in cleaned:
        cleaned.add(str(image.parent))
        for stale in _stale_sidecar_temps(image.parent):
            stale.unlink(missing_ok=True)
    data = render(rec.get("caption"), tags).encode("utf-8")
    if os.path.lexists(target):
        if not is_ours(target):
            stats.foreign += 1
            return
        if _same(target, data):
            stats.unchanged += 1
            return
    write_replacing(target, data, within=rec["folder"])
    stats.written += 1
