"""Tux Paint stamps: descriptions with locale lines / BOM / cp1252, mirror images, SVG-only
stamps, bad stamps, and fetching from a .deb with the real package layout (built here)."""

import io
import shutil
import tarfile

import pytest
from PIL import Image

from captioner.data import DataError, load_caption_dataset
from captioner.data import tuxpaint as tp
from captioner.data.fetch import FetchError, extract_deb

STAMPS = "usr/share/tuxpaint/stamps"
SVG = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg  PUBLIC '-//W3C//DTD SVG 1.1//EN'  'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd' [
\t<!ENTITY ns_svg "http://www.w3.org/2000/svg">
\t<!ENTITY ns_xlink "http://www.w3.org/1999/xlink">
]>
<svg xmlns="&ns_svg;" xmlns:xlink="&ns_xlink;" width="40" height="20" viewBox="0 0 40 20">
<rect width="40" height="20" fill="#c00"/><text>Fish &amp; chips</text></svg>
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))


def png(path, color=(200, 0, 0, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (10, 8), color).save(path)


def make_stamps(root):
    """A stamps tree with the quirks of the real package."""
    png(root / "animals/cat.png")
    (root / "animals/cat.txt").write_text(
        "A cat.\naf.utf8='n Kat.\nde.utf8=Eine Katze.\n", encoding="utf-8"
    )
    png(root / "animals/cat_mirror.png")  # a pre-flipped cat: not a stamp of its own
    png(root / "people/wig.png")
    png(root / "people/wig2.png")
    (root / "people/wig.txt").write_bytes("\ufeffHair.\r\nfr.utf8=Cheveux.\r\n".encode())
    (root / "people/wig2.txt").write_text("Hair.\n")
    png(root / "town/stop.png")
    (root / "town/stop.txt").write_bytes(
        "A \u201cStop\u201d sign\u2014stop here.\n".encode("cp1252")
    )
    png(root / "symbols/wheel.png")
    (root / "symbols/wheel.txt").write_text("fr.utf8=Une roue.\nen_GB.utf8=A colour wheel.\n")
    (root / "food").mkdir()
    (root / "food/fish.svg").write_bytes(SVG)
    (root / "food/fish.txt").write_text("Fish and chips.\n")
    (root / "seasonal").mkdir()
    (root / "seasonal/gift.txt").write_text("A gift.\n")  # a description without an image
    (root / "seasonal/gift.ogg").write_bytes(b"OggS")
    return root


def fake_renderer(*, bytestring=None, url=None, output_width=None, output_height=None):
    assert b"<!ENTITY" not in bytestring and b"http://www.w3.org/2000/svg" in bytestring
    w, h = (output_width, output_width // 2) if output_width else (output_height * 2, output_height)
    buf = io.BytesIO()
    Image.new("RGBA", (w, h), (0, 0, 200, 255)).save(buf, format="PNG")
    return buf.getvalue()


def test_stamps_without_svg_renderer(tmp_path):
    dsd = tp.load_tuxpaint(make_stamps(tmp_path / "stamps"), render_svg=False)
    rows = {r["image_id"]: r for ds in dsd.values() for r in ds}
    assert set(rows) == {"animals/cat", "people/wig", "people/wig2", "town/stop", "symbols/wheel"}
    assert rows["animals/cat"]["captions"] == ["A cat."]
    assert rows["people/wig"]["captions"] == ["Hair."]  # BOM and CRLF gone
    assert rows["town/stop"]["captions"] == ['A "Stop" sign - stop here.']  # cp1252, typography
    assert rows["symbols/wheel"]["captions"] == ["A colour wheel."]
    assert rows["animals/cat"]["image"].mode == "RGBA" and rows["animals/cat"]["image"].size == (
        10,
        8,
    )
    notes = " ".join(dsd.report.notes)
    assert "1 mirror image(s) and 1 description(s) without an image" in notes
    assert "1 SVG-only stamp(s) left out" in notes and "cp1252" in notes
    wig_split = [s for s, ds in dsd.items() if "people/wig" in ds["image_id"]]
    assert wig_split == [s for s, ds in dsd.items() if "people/wig2" in ds["image_id"]]


def test_svg_only_stamp_is_rendered(tmp_path, monkeypatch):
    monkeypatch.setattr(tp, "svg_renderer", lambda: fake_renderer)
    dsd = tp.load_tuxpaint(make_stamps(tmp_path / "stamps"), svg_size=64)
    rows = {r["image_id"]: r for ds in dsd.values() for r in ds}
    assert rows["food/fish"]["captions"] == ["Fish and chips."]
    assert rows["food/fish"]["image"].size == (64, 32)
    cached = list((tmp_path / "cache" / "svg-renders").glob("*.png"))
    assert len(cached) == 1
    monkeypatch.setattr(tp, "render_svg_png", lambda *a: pytest.fail("rendered twice"))
    again = tp.load_tuxpaint(tmp_path / "stamps", svg_size=64)  # served from the cache
    assert "food/fish" in [i for ds in again.values() for i in ds["image_id"]]


def test_real_cairosvg_renders_illustrator_entities(tmp_path):
    pytest.importorskip("cairosvg")
    (tmp_path / "f.svg").write_bytes(SVG)
    img = Image.open(io.BytesIO(tp.render_svg_png(tmp_path / "f.svg", tp.svg_renderer(), 32)))
    assert img.size == (32, 16) and img.convert("RGB").getpixel((16, 8))[0] > 150


def test_expand_entities():
    out = tp.expand_entities(SVG)
    assert b"<!DOCTYPE" not in out and b'xmlns="http://www.w3.org/2000/svg"' in out
    assert b"&amp;" in out and tp.expand_entities(b"<svg/>") == b"<svg/>"


@pytest.mark.parametrize("kind", ["empty caption", "no description", "unreadable image"])
def test_bad_stamp_names_the_file(tmp_path, kind):
    root = make_stamps(tmp_path / "stamps")
    if kind == "empty caption":
        (root / "animals/cat.txt").write_text("\n   \nfr.utf8=Un chat.\n")
        expect = "animals/cat.txt:1: empty caption"
    elif kind == "no description":
        png(root / "animals/dog.png")
        expect = "animals/dog.png: empty caption: no description file animals/dog.txt"
    else:
        (root / "animals/cat.png").write_bytes(b"\x89PNG broken")
        expect = "animals/cat.png: unreadable image"
    with pytest.raises(DataError, match=expect.replace(".", r"\.")):
        tp.load_tuxpaint(root, render_svg=False)
    dsd = tp.load_tuxpaint(root, render_svg=False, on_error="skip")
    assert dsd.report.num_skipped == 1 and expect in str(dsd.report.skipped[0])


def make_deb(tmp_path, stamps):
    """A .deb as Debian builds it: ar archive of debian-binary, control.tar.xz, data.tar.xz."""

    def tar_xz(add) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tar:
            add(tar)
        return buf.getvalue()

    control = tmp_path / "control"
    control.write_text(
        "Package: tuxpaint-stamps-default\nVersion: 2022.06.04-1\nArchitecture: all\n"
        "Maintainer: nobody <nobody@example.org>\nDescription: stamps\n"
    )
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", tar_xz(lambda t: t.add(control, arcname="./control"))),
        ("data.tar.xz", tar_xz(lambda t: t.add(stamps, arcname=f"./{STAMPS}"))),
    ]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    deb = tmp_path / "tuxpaint-stamps-default_2022.06.04-1_all.deb"
    deb.write_bytes(out)
    return deb


@pytest.mark.parametrize("use_dpkg", [False, True], ids=["python", "dpkg-deb"])
def test_extract_deb(tmp_path, use_dpkg):
    if use_dpkg and shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed")
    deb = make_deb(tmp_path, make_stamps(tmp_path / "src"))
    extract_deb(deb, tmp_path / "out", use_dpkg=use_dpkg)
    assert (tmp_path / "out" / STAMPS / "animals/cat.txt").read_text().startswith("A cat.")
    (tmp_path / "bad.deb").write_bytes(b"not an archive")
    with pytest.raises(FetchError, match="bad.deb"):
        extract_deb(tmp_path / "bad.deb", tmp_path / "out2", use_dpkg=use_dpkg)


def test_fetch_from_deb_then_spec_finds_the_cache(tmp_path):
    deb = make_deb(tmp_path, make_stamps(tmp_path / "src"))
    stamps = tp.fetch_tuxpaint(deb=deb)
    assert stamps == tmp_path / "cache" / "tuxpaint" / STAMPS
    assert not list(stamps.rglob("*.ogg"))  # sounds are not kept
    assert tp.fetch_tuxpaint(deb=tmp_path / "missing.deb") == stamps  # cached: no refetch
    dsd = load_caption_dataset("tuxpaint?render_svg=false")
    assert sum(len(ds) for ds in dsd.values()) == 5
    for where in (stamps, stamps.parent, tmp_path / "cache" / "tuxpaint"):
        assert tp.find_stamps_dir(where) == stamps
    with pytest.raises(FileNotFoundError, match="fetch tuxpaint"):
        tp.load_tuxpaint(tmp_path / "empty-dir", fetch=False)
