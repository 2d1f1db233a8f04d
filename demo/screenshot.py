"""Drive the demo in headless Chromium (system package `chromium`, through Playwright's
Python package; no `playwright install`): upload an image, wait for the answer, screenshot.

    python -m captioner.demo.screenshot [--out docs/demo.png] [--model DIR] [--image PATH]
    make screenshot                     # the same, for the README's docs/demo.png

Used by tests/demo/test_demo_browser.py and to make the README's docs/demo.png (the bundled
models, the bundled coffee photo, 1280 px wide, reduced to 256 colours).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """The system Chromium (Debian package `chromium`), or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class BrowserResult:
    caption: str
    notes: str
    tags: str  # the text of the tags label
    attention_images: int  # images in the attention gallery
    screenshot: Path
    requests: int  # URLs the page asked for
    external_requests: list[str]  # ... of them outside the demo's own server


@contextlib.contextmanager
def open_demo(url: str, *, chromium: str | None = None, size=(1280, 1000), timeout_s=60.0):
    """A Playwright page showing the demo at `url`, in headless system Chromium."""
    from playwright.sync_api import sync_playwright

    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError("no chromium executable (install the Debian package `chromium`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.set_default_timeout(timeout_s * 1000)
            page.requested = []  # every URL the page asks for (fonts, scripts, API calls)
            page.on("request", lambda request: page.requested.append(request.url))
            page.goto(url)
            page.wait_for_selector("#run")
            yield page
        finally:
            browser.close()


def upload_and_run(page, image: str | Path) -> None:
    """Put `image` in the image input and press Caption."""
    page.locator("#image-input input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#image-input img")
    page.locator("#run").click()


def caption_in_browser(
    url: str, image: str | Path, screenshot: str | Path, **kwargs
) -> BrowserResult:
    """Open the demo at `url`, upload `image`, press Caption, wait for the caption (or, for a
    tagger-only model, the tags and the notice), and save a full-page screenshot."""
    with open_demo(url, **kwargs) as page:
        upload_and_run(page, image)
        page.wait_for_function(
            """() => {
                const c = document.querySelector('#caption textarea');
                const n = document.querySelector('#notes');
                return (c && c.value.length > 0) || (n && n.innerText.includes('No caption'));
            }"""
        )
        page.wait_for_function("() => document.querySelector('#tags').innerText.trim() !== 'Tags'")
        page.wait_for_timeout(500)  # let the gallery's images finish drawing
        page.screenshot(path=str(screenshot), full_page=True)
        return BrowserResult(
            caption=page.locator("#caption textarea").input_value(),
            notes=page.locator("#notes").inner_text(),
            tags=page.locator("#tags").inner_text(),
            attention_images=page.locator("#attention img").count(),
            screenshot=Path(screenshot),
            requests=len(page.requested),
            external_requests=[
                u for u in page.requested if not u.startswith((url.rstrip("/"), "data:", "blob:"))
            ],
        )


def error_in_browser(url: str, image: str | Path, **kwargs) -> str:
    """Upload an unreadable `image`, press Caption, and return the error toast's text."""
    with open_demo(url, **kwargs) as page:
        page.locator("#image-input input[type=file]").set_input_files(str(image))
        page.wait_for_timeout(500)
        page.locator("#run").click()
        toast = page.locator(".toast-body").first
        toast.wait_for()
        return toast.inner_text()


SAMPLE_IMAGE = Path(__file__).parent / "examples" / "photo-coffee.jpg"


def main(argv: list[str] | None = None) -> int:
    from captioner.demo.env import prepare_environment

    prepare_environment()  # before gradio is imported
    from captioner.demo.app import EXAMPLES_DIR, build_app, launch_app, load_models

    p = argparse.ArgumentParser(prog="python -m captioner.demo.screenshot", description=__doc__)
    p.add_argument("--out", default="docs/demo.png", help="PNG to write (default %(default)s)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="model directory or bundled model name to offer too; repeatable (default: none)",
    )
    p.add_argument(
        "--no-default", action="store_true", help="leave out the bundled default (default: off)"
    )
    p.add_argument(
        "--image", default=str(SAMPLE_IMAGE), help="image to upload (default: %(default)s)"
    )
    args = p.parse_args(argv)
    models = load_models(args.model, default=not args.no_default, device="cpu")
    app = build_app(models, examples=sorted(EXAMPLES_DIR.glob("*.jpg")))
    _, url, _ = launch_app(app, prevent_thread_lock=True, quiet=True)
    try:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        r = caption_in_browser(url, args.image, out)
    finally:
        app.close()
    from PIL import Image

    with Image.open(out) as shot:  # 256 colours: a third of the size, for the docs
        small = shot.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(out, optimize=True)
    top_tag = (r.tags.splitlines()[1:] or ["none"])[0]  # the label's first line is "Tags"
    print(f"{out}: caption {r.caption!r}, top tag {top_tag!r}, {r.attention_images} maps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
