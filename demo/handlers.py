"""What the demo's buttons and API endpoints do, over a dict of models. Errors a user can fix
(no image, unreadable file, a head the model lacks) are raised as `gr.Error` with a message
naming the file or the model, never a stack trace.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from captioner import translation
from captioner.decoding import METHODS
from captioner.demo import batch as batching
from captioner.demo import render
from captioner.demo.env import temp_dir
from captioner.demo.scene import make_scene, scene_world_error, score_rows
from captioner.errors import CaptionerError
from captioner.imageio import ImageLoadError, load_image
from captioner.records import MIN_TAG_SCORE

log = logging.getLogger(__name__)
SCENE_MODEL = "scenes"  # the bundled scene-world captioner
TAGGER_ONLY = (
    "**No caption:** model `{name}` has no caption decoder; it is an ImageNet tagger only "
    "(the bundled captioner has not been trained yet)."
)


def read_image(image: str | None) -> Image.Image:
    """An uploaded file path -> RGB image, or a `gr.Error` naming the file and the problem."""
    if image is None:
        raise gr.Error("No image yet: upload one, take a photo, paste one or pick an example.")
    try:
        return load_image(image)
    except ImageLoadError as e:
        message = str(e).replace(str(image), Path(image).name)
        raise gr.Error(message, title="Unreadable image", print_exception=False) from None


def decoding_options(cap: Any, method: str, beam_size: float, temperature: float) -> dict:
    """The page's decoding controls over `cap`'s own settings: {"generation": the one
    `GenerationConfig` of this request}."""
    if method not in METHODS:
        raise gr.Error(f"decoding must be one of {', '.join(METHODS)}, not {method!r}")
    if not temperature > 0:
        raise gr.Error(f"temperature must be above 0, got {temperature}")
    chosen = {"method": method, "beam_size": max(1, int(beam_size))}
    chosen["temperature"] = float(temperature)
    try:
        return {"generation": cap.generation_config(**chosen)}
    except ValueError as e:
        raise gr.Error(f"decoding: {e}", print_exception=False) from None


def caption_languages() -> list[tuple[str, str]]:
    """The language picker's (code, name) pairs: English and every installed translator's
    language; English alone when listing them fails."""
    try:
        return translation.available_languages()
    except OSError as e:  # an unreadable models folder must not take the page down
        log.warning("captions in English only: cannot list the translators (%s)", e)
        return [(translation.SOURCE, translation.LANGUAGES[translation.SOURCE])]


class Handlers:
    """The event functions of one app. `models` maps the names in the model picker to
    `Captioner`s; `languages` lists the (code, name) pairs of the language picker (English
    is always offered, first); batch files go to a fresh directory under `work_dir` per request."""

    def __init__(
        self,
        models: Mapping[str, Any],
        *,
        languages: Sequence[tuple[str, str]] = (("en", "English"),),
        work_dir: str | Path | None = None,
        max_batch_images: int = 200,
        batch_size: int = 16,
    ):
        if not models:
            raise ValueError("the demo needs at least one model")
        self.models = dict(models)
        english = {translation.SOURCE: translation.LANGUAGES[translation.SOURCE]}
        self.languages = {**english, **dict(languages)}  # English first, always
        self.translators: dict[str, Any] = {}  # language -> TranslationModel, loaded on first use
        self.work_dir = Path(work_dir or temp_dir())
        self.max_batch_images, self.batch_size = max_batch_images, batch_size

    def model(self, name: str) -> Any:
        if name not in self.models:
            raise gr.Error(f"unknown model {name!r}; choose one of: {', '.join(self.models)}")
        return self.models[name]

    def translation(self, lang: str | None) -> dict[str, Any]:
        """`describe` / `caption` keyword arguments for captions in `lang`: {} for English,
        else the language and its translator (loaded once, then kept)."""
        lang = lang or translation.SOURCE
        if lang == translation.SOURCE:
            return {}
        if lang not in self.languages:
            known = ", ".join(f"{c} ({n})" for c, n in self.languages.items())
            raise gr.Error(f"no translator for {lang!r} here; choose one of: {known}")
        if lang not in self.translators:
            try:
                self.translators[lang] = translation.find_translator(lang)
            except (CaptionerError, OSError, ValueError) as e:
                name = self.languages[lang]
                raise gr.Error(
                    f"captions in {name} are unavailable: {e}", print_exception=False
                ) from None
        return {"lang": lang, "translator": self.translators[lang]}

    @staticmethod
    def _run(cap: Any, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ValueError) as e:  # e.g. asking a tagger for a caption
            message = str(e) if repr(cap.name) in str(e) else f"model {cap.name!r}: {e}"
            raise gr.Error(message, print_exception=False) from None

    # ------------------------------------------------------------------ one image
    def describe_ui(self, image, model, method, beam_size, temperature, num_tags, lang="en"):
        """-> caption (in `lang`), the English caption (None for English), tags, sentiment,
        attention gallery, notes (Markdown)."""
        cap, img = self.model(model), read_image(image)
        opts = decoding_options(cap, method, beam_size, temperature) | self.translation(lang)
        d = self._run(cap, cap.describe, [img], tags=int(num_tags), attention=True,
                      min_tag_score=MIN_TAG_SCORE, **opts)[0]  # fmt: skip
        notes = []
        if d.caption is None:
            notes.append(TAGGER_ONLY.format(name=cap.name) + " Its top tags are shown instead.")
        elif not d.caption:
            notes.append("The model produced an empty caption.")
        elif not d.attention:
            notes.append("No attention maps: this model's decoder has no soft attention.")
        if not d.tags:
            notes.append("No tags: this model has no recognition head.")
        gallery = render.attention_gallery(img, d.attention)
        tags, mood = render.tags_value(d.tags), render.sentiment_value(d.sentiment)
        if d.translations:
            return d.translations[lang], d.caption, tags, mood, gallery, "\n\n".join(notes)
        return d.caption or "", None, tags, mood, gallery, "\n\n".join(notes)

    def retranslate(self, english: str, lang: str | None) -> tuple[str, str | None]:
        """The caption shown, written again in `lang` from its English (no image model runs):
        -> (caption in `lang`, the English caption or None for English)."""
        lang = lang or translation.SOURCE
        if lang == translation.SOURCE:
            return english, None
        translator = self.translation(lang)["translator"]
        try:
            (found,) = translation.translate_captions([english], translator)
        except (RuntimeError, ValueError) as e:
            name = self.languages.get(lang, lang)
            raise gr.Error(f"captions in {name}: {e}", print_exception=False) from None
        return found or "", english

    def caption(self, image, model, method, beam_size, temperature, lang="en") -> str:
        """The caption of one image in `lang` (an error for a tagger-only model)."""
        cap, img = self.model(model), read_image(image)
        opts = decoding_options(cap, method, beam_size, temperature) | self.translation(lang)
        return self._run(cap, cap.caption, [img], **opts)[0]

    def describe(self, image, model, method, beam_size, temperature, num_tags, lang="en"):
        """Caption (null for a tagger-only model), tags and caption sentiment, as JSON; with
        `lang`, the caption's translation under `translations`."""
        cap, img = self.model(model), read_image(image)
        opts = decoding_options(cap, method, beam_size, temperature) | self.translation(lang)
        d = self._run(cap, cap.describe, [img], tags=int(num_tags),
                      min_tag_score=MIN_TAG_SCORE, **opts)[0]  # fmt: skip
        return {**d.to_record(), "model": cap.name}

    # ------------------------------------------------------------------ batch
    def label(
        self, files, model, method, beam_size, temperature, num_tags, lang="en", progress=None
    ):
        """Images (or zips of images) -> table (with a `caption_LANG` column before the
        English caption for `lang`), [labels.csv, labels.jsonl], summary."""
        if not files:
            raise gr.Error("No files yet: upload images or a .zip of images first.")
        cap = self.model(model)
        opts = decoding_options(cap, method, beam_size, temperature) | self.translation(lang)
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        total = batching.count_batch_inputs(paths)
        todo = min(total, self.max_batch_images)
        self._forget_old_batches()
        out_dir = Path(tempfile.mkdtemp(prefix="batch-", dir=self.work_dir))
        start = time.perf_counter()
        items = batching.iter_batch_items(
            paths,
            work_dir=out_dir,
            max_images=self.max_batch_images,
            transform=getattr(cap.encoder, "transform", None),
        )
        report = None if progress is None else (lambda n: progress((n, todo), unit="images"))
        rows = self._run(
            cap,
            batching.describe_items,
            cap,
            items,
            batch_size=self.batch_size,
            progress=report,
            tags=int(num_tags),
            min_tag_score=MIN_TAG_SCORE,  # the same cut as `captioner label`
            **opts,
        )
        lang = opts.get("lang")
        csv_path, jsonl_path = batching.write_records(rows, out_dir, lang)
        errors = sum(r["error"] is not None for r in rows)
        status = (
            f"Labelled {len(rows) - errors} of {len(rows)} images with `{cap.name}` in "
            f"{time.perf_counter() - start:.1f} s ({errors} unreadable)."
        )
        if total > len(rows):
            status += f" Stopped at the limit of {self.max_batch_images} images ({total} uploaded)."
            gr.Warning(f"Only the first {self.max_batch_images} of {total} images were labelled.")
        columns = batching.table_columns(lang)
        table = pd.DataFrame(batching.table_rows(rows, lang), columns=list(columns))
        return table, [str(csv_path), str(jsonl_path)], status

    def _forget_old_batches(self, max_age_s: float = 3 * 3600) -> None:
        """A long-running demo keeps only the last few hours of batch results on disk."""
        now = time.time()
        for old in self.work_dir.glob("batch-*"):
            try:
                if now - old.stat().st_mtime > max_age_s:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                continue

    # ------------------------------------------------------------------ scene world
    def scene(self, seed, model, method, beam_size, temperature):
        """-> seed, scene image, true captions (Markdown), predicted caption, scores, notes."""
        problem = scene_world_error()
        if problem:
            raise gr.Error(problem)
        if seed is None or not 0 <= int(seed) < 2**63:
            raise gr.Error("the seed must be a whole number from 0 to 2**63 - 1")
        # the scene-world model when it is loaded (the photo model never saw a scene)
        cap = self.model(SCENE_MODEL if SCENE_MODEL in self.models else model)
        opts = decoding_options(cap, method, beam_size, temperature)
        scene = make_scene(int(seed))
        truth = "\n".join(f"{i}. {c}" for i, c in enumerate(scene.captions, 1))
        if cap.decoder is None:
            return scene.seed, scene.image, truth, "", None, TAGGER_ONLY.format(name=cap.name)
        caption = self._run(cap, cap.caption, [scene.image], **opts)[0]
        rows = score_rows(scene.scene_json, caption)
        scores = pd.DataFrame(rows, columns=["facts", "precision", "recall", "F1"])
        return scene.seed, scene.image, truth, caption, scores, ""

    def random_scene(self, model, method, beam_size, temperature):
        return self.scene(random.randrange(2**31), model, method, beam_size, temperature)
