"""The Gradio web demo: caption, tag and judge one image (with attention maps), label a batch,
and caption random scenes from the scene world against their ground truth.

    captioner demo [--model DIR ...] [--host 127.0.0.1] [--port 7860] [--share]

`build_app(models)` makes the `gr.Blocks`; `launch_app(app, ...)` serves it with the queue,
upload limit and offline theme; `serve(args)` runs it for `captioner demo` (the command,
in `captioner.cli.demo`; also `python -m captioner.demo`). Named API endpoints, for
`gradio_client.Client(url).predict(handle_file(path), api_name=...)`: `/caption` (a
caption string), `/describe` (caption, tags, sentiment as JSON), `/label` (files -> table
and CSV / JSONL) and `/scene` (seed -> scene, truth, prediction, scores).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from captioner.demo.env import DEFAULT_HOST, stop_on_sigterm, temp_dir
from captioner.demo.ui import build_app
from captioner.errors import CaptionerError

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "examples"
__all__ = ["DEFAULT_HOST", "build_app", "launch_app", "load_models", "serve", "theme"]


def theme() -> gr.themes.Base:
    """System fonts only: nothing is fetched from a font service."""
    return gr.themes.Soft(
        primary_hue="indigo",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


CSS = """
#caption textarea { font-size: 1.3rem; font-weight: 600; }
.gallery-item .caption-label { font-size: 0.95rem; }
/* attention maps: small tiles whatever the word count, and no fixed 450 px box around them */
#attention .grid-wrap {
  min-height: 0 !important; max-height: none !important; padding-top: 2rem;
}
#attention .grid-container {
  grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)) !important;
}
/* batch table headers break between words only */
#batch-table th, #batch-table th * { word-break: keep-all; overflow-wrap: normal; }
"""


def launch_app(
    app: gr.Blocks,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    share: bool = False,
    max_file_size: str | int = "20mb",
    concurrency: int = 1,
    max_queue: int = 32,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> tuple[Any, str, str | None]:
    """Serve `app`. The queue runs at most `concurrency` model calls at once (the rest wait
    their turn, up to `max_queue` waiting) so many users never run the machine out of memory.
    Returns Gradio's (FastAPI app, local URL, share URL or None)."""
    if concurrency < 1 or max_queue < 1:
        raise ValueError("concurrency and max_queue must be >= 1")
    app.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    # Gradio's own start-up lines tell users to "set share=True in launch()": ours name the flag.
    served = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=max_file_size,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        ssr_mode=False,
        run_history=False,
        mcp_server=False,
        footer_links=["api", "settings"],
        theme=theme(),
        css=CSS,
    )
    if not quiet:
        print(f"* Running on local URL:  {served[1]}")
        print(
            f"* Public link: {served[2]}"
            if served[2]
            else "* To create a public link, run `captioner demo --share`."
        )
    if not prevent_thread_lock:
        app.block_thread()
    return served


def _unique_name(name: str, taken: Mapping[str, Any]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    return out


BUNDLED = ("default", "scenes")  # photos; the scene world (the scene tab's model)


def bundled_models() -> list[str]:
    """The bundled model names that exist in this installation ("default" always: without
    its directory it is the ImageNet tagger alone)."""
    from captioner.api import BUNDLED_DIR

    return [n for n in BUNDLED if n == "default" or (BUNDLED_DIR / n / "config.json").is_file()]


def load_models(
    dirs: Sequence[str], *, default: bool = True, device: str | None = None
) -> dict[str, Any]:
    """The bundled models (the photo captioner `default` and the scene-world `scenes`, unless
    `default=False`) and every model directory, by name.

    Raises:
        CaptionerError: naming every model that could not be loaded (the demo never serves
            a page for a model that does not work), or when no model is asked for.
    """
    from captioner.api import Captioner

    models: dict[str, Any] = {}
    errors: list[str] = []
    for spec in (bundled_models() if default else []) + list(dirs):
        try:
            model = Captioner.from_pretrained(spec, device=device)
        except Exception as e:  # any failure: collect it, so one message names them all
            errors.append(str(e) if spec in str(e) else f"{spec}: {type(e).__name__}: {e}")
            continue
        name = spec if spec in BUNDLED else Path(spec).name or str(spec)
        models[_unique_name(name, models)] = model
    if errors:
        raise CaptionerError("could not load model(s):\n  " + "\n  ".join(errors))
    if not models:
        raise CaptionerError("no model to serve: drop --no-default or add --model DIR")
    return models


def serve(args: Any) -> None:
    """Load and check every model of `captioner demo`'s parsed flags, then serve the app
    until interrupted."""
    models = load_models(args.model, default=not args.no_default, device=args.device)
    examples = sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in (".png", ".jpg"))
    work_dir = temp_dir()
    app = build_app(models, examples=examples, max_batch_images=args.max_batch, work_dir=work_dir)
    if args.share:
        log.warning("--share: the demo gets a public URL; anyone with it can use your machine")
    log.info("temporary files go to %s (removed at exit)", work_dir)
    stop_on_sigterm()  # `kill` stops the server like Ctrl-C: the exit handlers remove uploads
    launch_app(
        app,
        host=args.host,
        port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
        concurrency=args.concurrency,
        max_queue=args.max_queue,
    )
