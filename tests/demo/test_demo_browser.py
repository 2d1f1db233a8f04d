"""The demo in a real browser: headless system Chromium (Debian package `chromium`) driven by
Playwright's Python package, with no `playwright install` (no browser download)."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from tests_support import tiny_captioner, tiny_translator

from captioner.demo.screenshot import (
    caption_in_browser,
    error_in_browser,
    find_chromium,
    open_demo,
    upload_and_run,
)
from captioner.recognition import RecognitionConfig, RecognitionHead

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # each drives Chromium: 9-16 s

CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(
        "no chromium executable: install the Debian package `chromium` "
        "(apt-get install -y chromium) to run the browser test",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="needs the `playwright` Python package")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def german():
    """A tiny EN->DE translator standing in for an installed one (`find_translator`)."""
    from captioner import translation

    translator = tiny_translator("de")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(translation, "find_translator", lambda lang, **kw: translator)
        yield translator


@pytest.fixture(scope="module")
def served(german):
    from captioner.demo.app import EXAMPLES_DIR, build_app, launch_app

    cap = tiny_captioner()  # random weights, soft attention, sentiment
    with torch.no_grad():
        cap.decoder.out.bias[cap.vocab.eos_id] = -50.0  # always max_length words
    cap.recognizer = RecognitionHead(
        RecognitionConfig(in_dim=cap.encoder.out_channels, labels=["circle", "square", "star"])
    ).eval()
    cap.max_length = 4
    languages = [("en", "English"), ("de", "German")]
    app = build_app({"tiny": cap}, examples=sorted(EXAMPLES_DIR.glob("*.jpg")), languages=languages)
    _, url, _ = launch_app(app, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield url, cap
    app.close()


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_upload_caption_attention_and_screenshot(served, tmp_path):
    url, cap = served
    image = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(image)
    shot = tmp_path / "demo.png"
    r = caption_in_browser(url, image, shot, chromium=CHROMIUM)
    assert r.caption == cap.caption(image)[0] and len(r.caption.split()) == 4
    assert r.attention_images == 4  # one heat map per word
    assert r.requests > 10 and r.external_requests == []  # no fonts, scripts, analytics
    assert any(label in r.tags for label in ("circle", "square", "star"))
    width, height = png_size(shot)
    assert width == 1280 and height >= 800


def test_unreadable_upload_shows_a_message_not_a_stack_trace(served, tmp_path):
    url, _ = served
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # a PNG signature, then nothing usable
    text = error_in_browser(url, bad, chromium=CHROMIUM)
    assert "broken.png" in text and "Traceback" not in text


def random_png(path, seed: int):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_a_new_upload_clears_the_last_description_and_maps_sit_tight(served, tmp_path):
    url, _ = served
    first, second = random_png(tmp_path / "a.png", 1), random_png(tmp_path / "b.png", 2)
    with open_demo(url, chromium=CHROMIUM) as page:
        # no empty attention box or sentiment placeholder before the first caption
        assert not page.locator("#attention").is_visible()
        assert not page.locator("#sentiment").is_visible()
        upload_and_run(page, first)
        page.wait_for_function("() => document.querySelectorAll('#attention img').length === 4")
        page.wait_for_timeout(300)
        gallery = page.locator("#attention").bounding_box()
        tile = page.locator("#attention img").first.bounding_box()
        # four small maps in one row, not a fixed 450 px box with empty space under them
        assert tile["width"] < 260 and gallery["height"] < tile["height"] + 100, (gallery, tile)
        assert any(t in page.locator("#tags").inner_text() for t in ("circle", "square", "star"))
        page.locator("#image-input input[type=file]").set_input_files(str(second))
        page.wait_for_function("() => document.querySelector('#caption textarea').value === ''")
        page.wait_for_function("() => document.querySelectorAll('#attention img').length === 0")
        tags = page.locator("#tags").inner_text()
        assert not any(t in tags for t in ("circle", "square", "star")), tags
        assert not page.locator("#sentiment").is_visible()


HEADER_LINES = """() => [...document.querySelectorAll('#batch-table th')].map(th => {
    // the most lines any one visible text node of the header is drawn on
    const walk = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    let most = 0;
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        most = Math.max(most, new Set(rects.map(r => Math.round(r.top))).size);
    }
    return [th.innerText.trim(), most];
}).filter(([text]) => text.length > 0)"""


def test_batch_table_and_scene_tab_are_labelled_and_readable(served, tmp_path):
    from captioner.demo.batch import TABLE_COLUMNS

    url, _ = served
    files = [str(random_png(tmp_path / f"photo-{i}.png", i)) for i in range(2)]
    with open_demo(url, chromium=CHROMIUM) as page:
        page.get_by_role("tab", name="Batch").click()
        page.locator("#batch-files input[type=file]").set_input_files(files)
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Label all").click()
        page.get_by_text("Labelled 2 of 2 images").wait_for()
        headers = page.evaluate(HEADER_LINES)
        assert [text for text, _ in headers] == list(TABLE_COLUMNS)  # no empty `folder`
        assert all(lines == 1 for _, lines in headers), headers  # no "sentimen t"
        if pytest.importorskip("captioner.data.scenes"):
            page.get_by_role("tab", name="Scene world").click()
            page.get_by_role("button", name="Caption this scene").click()
            page.wait_for_function(
                "() => document.querySelector('#scene-truth textarea').value.length > 0"
            )
            assert "Ground truth captions" in page.locator("#scene-truth").inner_text()
            truth = page.locator("#scene-truth textarea").input_value().splitlines()
            assert len(truth) == 5 and truth[0].startswith("1. ")


def pick_language(page, name: str) -> None:
    page.locator("#language input").click()
    page.get_by_role("option", name=name).click()


def test_captions_in_the_picked_language_keep_the_english(served, german, tmp_path):
    from captioner.demo.batch import TABLE_COLUMNS

    url, cap = served
    photo = random_png(tmp_path / "photo.png", 3)
    english = cap.caption(photo)[0]
    with open_demo(url, chromium=CHROMIUM) as page:
        assert not page.locator("#caption-en").is_visible()  # English: one caption
        pick_language(page, "German")
        upload_and_run(page, photo)
        page.wait_for_function("() => document.querySelector('#caption textarea').value !== ''")
        assert page.locator("#caption textarea").input_value() == german.translate(english)[0]
        assert page.locator("#caption-en textarea").input_value() == english
        assert "Caption (German)" in page.locator("#caption").inner_text()
        page.locator("#image-input input[type=file]").set_input_files(str(random_png(
            tmp_path / "next.png", 4)))  # fmt: skip
        page.wait_for_function("() => document.querySelector('#caption textarea').value === ''")
        assert not page.locator("#caption-en").is_visible()  # nothing of the last photo stays

        page.get_by_role("tab", name="Batch").click()
        page.locator("#batch-files input[type=file]").set_input_files(str(photo))
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Label all").click()
        page.get_by_text("Labelled 1 of 1 images").wait_for()
        headers = page.evaluate(HEADER_LINES)
        assert [text for text, _ in headers] == ["path", "caption_de", *TABLE_COLUMNS[1:]]
        assert all(lines == 1 for _, lines in headers), headers
        assert german.translate(english)[0] in page.locator("#batch-table").inner_text()


def test_screenshot_is_one_command(served, tmp_path, capsys):
    from captioner.demo import screenshot

    _, cap = served
    model_dir = cap.save_pretrained(tmp_path / "tiny")
    out = tmp_path / "docs" / "demo.png"
    assert screenshot.main(["--no-default", "--model", str(model_dir), "--out", str(out)]) == 0
    assert png_size(out)[0] == 1280
    with Image.open(out) as shot:
        assert shot.mode == "P"  # reduced to 256 colours for the docs
    said = capsys.readouterr().out
    assert f"{out}: caption '{cap.caption(screenshot.SAMPLE_IMAGE)[0]}'" in said
    assert "4 maps" in said


def test_a_new_language_rewrites_the_caption_shown(served, german, tmp_path):
    """Issue 26: the caption on screen follows the language picker, from its English."""
    url, cap = served
    photo = random_png(tmp_path / "photo.png", 5)
    english = cap.caption(photo)[0]
    shown = "() => document.querySelector('#caption textarea').value"
    with open_demo(url, chromium=CHROMIUM) as page:
        upload_and_run(page, photo)  # captioned in English
        page.wait_for_function(f"() => ({shown})() === {english!r}")
        assert not page.locator("#caption-en").is_visible()
        pick_language(page, "German")  # no new Caption press
        page.wait_for_function(f"() => ({shown})() === {german.translate(english)[0]!r}")
        assert page.locator("#caption-en textarea").input_value() == english
        assert "Caption (German)" in page.locator("#caption").inner_text()
        pick_language(page, "English")
        page.wait_for_function(f"() => ({shown})() === {english!r}")
        assert not page.locator("#caption-en").is_visible()
        assert "Caption (German)" not in page.locator("#caption").inner_text()
