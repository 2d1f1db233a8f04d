"""Tux Paint stamps (Debian package `tuxpaint-stamps-default`) as a caption corpus.

Each stamp is `NAME.png` and/or `NAME.svg` with `NAME.txt` beside it: the first line is
the English description, further lines `LANG.utf8=...` are translations. `NAME_mirror.*`
files are pre-flipped renderings of NAME, not stamps of their own, and are left out (noted).
PNG is used where a stamp has one; SVG-only stamps are rendered to PNG with cairosvg when it
is installed (`render_svg="auto"`; renderings are cached under ~/.cache/captioner/svg-renders),
else left out with a note saying how many.

Descriptions are read as UTF-8 (with or without BOM), falling back to cp1252 with a note;
if the first line is itself a locale line, the `en*.utf8=` line is used. Captions get the
usual clean-up (typographic quotes and dashes to ASCII). The split is a hash of the
lower-cased caption, so stamps with the same description (the digits, the wigs, the two
knights) never straddle train and test.

The package is fetched offline-first: an existing extracted copy (the cache, or Tux Paint's
own /usr/share/tuxpaint/stamps) is used as is; otherwise `apt-get download` + `dpkg -x`
into ~/.cache/captioner/tuxpaint (`$CAPTIONER_CACHE` moves it), without the package's sound
files (spoken descriptions, 190 of its 230 MB).
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from captioner.atomic import write_bytes_atomic
from captioner.data.common import (
    CaptionRecord,
    OnError,
    Problems,
    build_caption_dict,
    cache_root,
    clean_caption,
    hash_split,
    image_problem,
    logger,
    progress,
)
from captioner.data.fetch import FetchError, apt_download, extract_deb, install_atomically

PACKAGE = "tuxpaint-stamps-default"
STAMPS = Path("usr/share/tuxpaint/stamps")
SYSTEM_DIR = Path("/usr/share/tuxpaint/stamps")
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*\[.*?\]\s*>", re.DOTALL)
_ENTITY = re.compile(rb'<!ENTITY\s+(\w+)\s+"([^"&%<]*)"\s*>')
_LOCALE_LINE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]{2})?(@\w+)?\.utf-?8=", re.IGNORECASE)


def default_dir() -> Path:
    return cache_root() / "tuxpaint"


def find_stamps_dir(path: str | Path | None = None) -> Path | None:
    """The stamps folder in `path` (itself, its `stamps/`, or an unpacked package root);
    without `path`: the cache, then /usr/share/tuxpaint/stamps. None when not found."""
    roots = [Path(path).expanduser()] if path else [default_dir(), SYSTEM_DIR]
    for root in roots:
        for cand in (root / STAMPS, root / "stamps", root):
            if cand.is_dir() and next(cand.rglob("*.txt"), None) is not None:
                return cand
    return None


def fetch_tuxpaint(
    *, cache_dir: str | Path | None = None, deb: str | Path | None = None, force: bool = False
) -> Path:
    """Download (or take `deb`) and unpack the stamps into `cache_dir`; returns the stamps dir."""
    target = Path(cache_dir).expanduser() if cache_dir else default_dir()
    if not force and (target / STAMPS).is_dir():
        return target / STAMPS

    def fill(staging: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            package = Path(deb) if deb else apt_download(PACKAGE, Path(tmp))
            logger.info("unpacking %s into %s", package.name, target)
            extract_deb(package, staging)
        for sound in [*staging.rglob("*.ogg"), *staging.rglob("*.wav")]:
            sound.unlink()  # the spoken descriptions: 190 of the package's 230 MB, unused here
        if not (staging / STAMPS).is_dir():
            raise FetchError(f"{package}: no {STAMPS} inside; is it {PACKAGE}?")

    install_atomically(target, fill)
    return target / STAMPS


def read_description(path: Path, problems: Problems) -> str | None:
    """The English description in a stamp's .txt file (None, reported, when there is none)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
        problems.note(f"{path}: not UTF-8, read as cp1252")
    english = None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not _LOCALE_LINE.match(line):
            return _cleaned(line, path, n, problems)
        lang, _, value = line.partition("=")
        if english is None and lang.lower().startswith("en"):
            english = (value, n)
    if english is not None:
        return _cleaned(english[0], path, english[1], problems)
    problems.bad("empty caption", path, 1, "no English description line")
    return None


def _cleaned(line: str, path: Path, n: int, problems: Problems) -> str | None:
    text = clean_caption(line)
    if not text:
        problems.bad("empty caption", path, n, "the description is empty")
        return None
    return text


def svg_renderer():
    """cairosvg's `svg2png`, or None when it (or the cairo library) is not installed."""
    try:
        import cairosvg
    except (ImportError, OSError):
        return None
    return cairosvg.svg2png


def expand_entities(svg: bytes) -> bytes:
    """Inline the simple internal entities (`<!ENTITY ns_svg "...">`) that Illustrator
    exports declare, and drop the DOCTYPE: cairosvg refuses any entity declaration."""
    doctype = _DOCTYPE.search(svg)
    if doctype is None:
        return svg
    entities = dict(_ENTITY.findall(doctype.group(0)))
    body = svg[: doctype.start()] + svg[doctype.end() :]
    return re.sub(rb"&(\w+);", lambda m: entities.get(m.group(1), m.group(0)), body)


def render_svg_png(path: Path, render, size: int) -> bytes:
    """SVG -> PNG bytes with the longer side `size` pixels (portraits are scaled down after)."""
    from PIL import Image

    png = render(bytestring=expand_entities(path.read_bytes()), output_width=size)
    img = Image.open(io.BytesIO(png))
    if img.height <= img.width:
        return png
    img = img.resize((max(1, round(img.width * size / img.height)), size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def rendered_svg(path: Path, render, size: int) -> Path:
    """A PNG rendering of `path`, cached under the cache dir keyed by file, mtime and size."""
    st = path.stat()
    key = hashlib.sha1(
        f"{path.resolve()}:{st.st_mtime_ns}:{st.st_size}:{size}".encode()
    ).hexdigest()
    out = cache_root() / "svg-renders" / f"{key[:20]}.png"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out, render_svg_png(path, render, size))
    return out


def load_tuxpaint(
    path: str | Path | None = None,
    *,
    fetch: bool = True,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    render_svg: bool | str = "auto",
    svg_size: int = 256,
    on_error: OnError = "raise",
    verify_images: bool = True,
    show_progress: bool = False,
):
    """The stamps corpus as a caption DatasetDict (one description per stamp)."""
    stamps = find_stamps_dir(path)
    if stamps is None:
        if path is not None or not fetch:
            where = path or f"{default_dir()} or {SYSTEM_DIR}"
            raise FileNotFoundError(
                f"no Tux Paint stamps found in {where}; run "
                "`python -m captioner.data fetch tuxpaint`"
            )
        stamps = fetch_tuxpaint()
    problems = Problems(f"tuxpaint:{stamps}", on_error)
    render = svg_renderer() if render_svg in (True, "auto") else None
    if render_svg is True and render is None:
        raise ImportError("render_svg=True needs cairosvg (pip install cairosvg)")

    images: dict[str, dict[str, Path]] = {}
    for p in sorted(stamps.rglob("*")):
        if p.suffix.lower() in (".png", ".svg", ".txt") and p.is_file():
            images.setdefault(p.with_suffix("").relative_to(stamps).as_posix(), {})[
                p.suffix.lower()
            ] = p
    mirrors = no_image = svg_skipped = 0
    records: dict[str, list[CaptionRecord]] = {}
    for key, files in progress(
        images.items(), enabled=show_progress, desc="tuxpaint stamps", total=len(images)
    ):
        has_image = ".png" in files or ".svg" in files
        if ".txt" not in files:
            if key.endswith("_mirror") and key[: -len("_mirror")] in images:
                mirrors += has_image
            elif has_image:
                problems.bad(
                    "empty caption",
                    files.get(".png", files.get(".svg")),
                    None,
                    f"no description file {key}.txt beside the image",
                )
            continue
        if not has_image:
            no_image += 1
            continue
        if ".png" not in files and render is None:
            svg_skipped += 1
            continue
        caption = read_description(files[".txt"], problems)
        if caption is None:
            continue
        if ".png" in files:
            bad = image_problem(files[".png"]) if verify_images else None
            if bad:
                problems.bad(bad[0], files[".png"], None, bad[1])
                continue
            image = str(files[".png"])
        else:
            try:
                image = str(rendered_svg(files[".svg"], render, svg_size))
            except Exception as e:  # cairosvg raises many kinds on bad SVG
                problems.bad("unreadable image", files[".svg"], None, f"cannot render SVG ({e})")
                continue
        split = hash_split(caption.lower(), seed=seed, fractions=fractions)
        records.setdefault(split, []).append(CaptionRecord(image, [caption], key))
    problems.note(
        f"{mirrors} mirror image(s) and {no_image} description(s) without an image left out"
    )
    if svg_skipped:
        problems.note(
            f"{svg_skipped} SVG-only stamp(s) left out: no SVG renderer (pip install cairosvg)"
        )
    return build_caption_dict(records, problems.finish())
