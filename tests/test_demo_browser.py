"""The demo in a real browser: headless system Chromium (Debian package `chromium`) driven by
Playwright's Python package, with no `playwright install` (no browser download)."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from tests_support import tiny_captioner

from captioner.demo.screenshot import caption_in_browser, error_in_browser, find_chromium
from captioner.recognition import RecognitionConfig, RecognitionHead

pytestmark = pytest.mark.browser

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
def served():
    from captioner.demo.app import EXAMPLES_DIR, build_app, launch_app

    cap = tiny_captioner()  # random weights, soft attention, sentiment
    with torch.no_grad():
        cap.decoder.out.bias[cap.vocab.eos_id] = -50.0  # always max_length words
    cap.recognizer = RecognitionHead(
        RecognitionConfig(in_dim=cap.encoder.out_channels, labels=["circle", "square", "star"])
    ).eval()
    cap.max_length = 4
    app = build_app({"tiny": cap}, examples=sorted(EXAMPLES_DIR.glob("*.jpg")))
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
