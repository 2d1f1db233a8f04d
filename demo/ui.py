"""The demo's page: an image tab (caption, tags, sentiment, attention maps), a batch tab and a
scene-world tab, all over the model picked at the top. `build_app` only builds; serving is
`captioner.demo.app.launch_app`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import UnidentifiedImageError

from captioner import translation
from captioner.decoding import METHODS
from captioner.demo import render
from captioner.demo.batch import TABLE_COLUMNS
from captioner.demo.env import temp_dir
from captioner.demo.handlers import Handlers, caption_languages

# Batch table column widths: wide enough that no header ("sentiment_score") wraps mid-word;
# a translated caption (`caption_de`) is as wide as the English one.
TABLE_WIDTHS = {
    "path": "170px",
    "caption": "260px",
    "tags": "230px",
    "tag_scores": "140px",
    "sentiment": "120px",
    "sentiment_score": "170px",
    "error": "220px",
    "model": "110px",
}


def column_widths(columns: Sequence[str]) -> list[str]:
    return [TABLE_WIDTHS.get(c, TABLE_WIDTHS["caption"]) for c in columns]


TITLE = "captioner: image captioning with CNN + RNN"
INTRO = (
    "A CNN encodes the image; an LSTM/GRU decoder writes the caption word by word, looking at "
    "image regions as it goes (attention); a classifier tags the image and a recurrent "
    "sentiment model reads the caption."
)


def image_input(**kwargs: Any) -> gr.Image:
    """A `gr.Image` whose unreadable uploads end in a clear `gr.Error` naming the file, not a
    stack trace (Gradio opens the upload with PIL before our function runs). The instance's
    `preprocess` is wrapped: subclassing a component would make Gradio write a .pyi stub
    beside this file."""
    component = gr.Image(**kwargs)
    preprocess = component.preprocess

    def guarded(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as e:
            path = str(getattr(payload, "path", "") or "")
            name = getattr(payload, "orig_name", None) or Path(path).name or "the upload"
            if isinstance(e, UnidentifiedImageError):
                reason = "not a recognised image format (try a JPEG, PNG, WebP, GIF or BMP file)"
            else:
                message = str(e).replace(path, name) if path else str(e)
                reason = f"cannot read this image ({message})"
            raise gr.Error(
                f"{name}: {reason}", title="Unreadable image", print_exception=False
            ) from None

    component.preprocess = guarded  # type: ignore[method-assign]
    return component


def build_app(
    models: Mapping[str, Any] | Any,
    *,
    examples: Sequence[str | os.PathLike] = (),
    max_batch_images: int = 200,
    batch_size: int = 16,
    work_dir: str | os.PathLike | None = None,
    title: str = TITLE,
    languages: Sequence[tuple[str, str]] | None = None,
) -> gr.Blocks:
    """The demo over `models` ({name: Captioner}, or one Captioner, named by its `.name`),
    writing captions in `languages` ((code, name) pairs; default: English and every installed
    translator's language, `captioner.translation.available_languages`).

    Public API endpoints: /caption, /describe, /label, /scene; the first three take the
    caption language last (default "en"). Every model call shares one queue limit
    (concurrency id "model"), set by `launch_app`."""
    if not isinstance(models, Mapping):
        models = {models.name: models}
    h = Handlers(
        models,
        languages=caption_languages() if languages is None else languages,
        work_dir=work_dir or temp_dir(),
        max_batch_images=max_batch_images,
        batch_size=batch_size,
    )
    names = list(h.models)

    def show_description(*args):  # gallery and sentiment show only when they have content
        caption, english, tags, mood, maps, notes = h.describe_ui(*args)
        label = "Caption" if english is None else caption_label(args[-1])
        return (
            gr.Textbox(value=caption, label=label),
            gr.Textbox(value=english, visible=english is not None),
            tags,
            gr.Label(value=mood, visible=mood is not None),
            gr.Gallery(value=maps, visible=bool(maps)),
            notes,
        )

    def caption_label(lang: str) -> str:
        return "Caption" if lang == translation.SOURCE else f"Caption ({h.languages[lang]})"

    def retranslated(shown, english, lang):  # the language changed: the caption shown follows
        source = english or shown  # the English box is filled whenever a translation is shown
        if not source:  # no caption yet (or a tagger-only model): nothing to write again
            return gr.skip(), gr.skip()
        caption, kept = h.retranslate(source, lang)
        return (
            gr.Textbox(value=caption, label=caption_label(lang)),
            gr.Textbox(value=kept, visible=kept is not None),
        )

    def cleared(_image):  # a new image: nothing of the last one's description stays
        return (
            gr.Textbox(value="", label="Caption"),
            gr.Textbox(value=None, visible=False),
            None,
            gr.Label(value=None, visible=False),
            gr.Gallery(value=None, visible=False),
            "",
        )

    def label(files, model, method, beam_size, temperature, num_tags, lang, progress=gr.Progress()):  # noqa: B008
        return h.label(
            files, model, method, beam_size, temperature, num_tags, lang, progress=progress
        )

    def label_ui(
        files, model, method, beam_size, temperature, num_tags, lang,
        progress=gr.Progress(),  # noqa: B008
    ):  # fmt: skip
        table, downloads, status = label(
            files, model, method, beam_size, temperature, num_tags, lang, progress=progress
        )  # the table's columns (and so their widths) follow the language
        return (
            gr.Dataframe(value=table, column_widths=column_widths(table.columns)),
            downloads,
            status,
        )

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3 * 3600)) as app:
        gr.Markdown(f"# {title}\n{INTRO}")
        with gr.Row(equal_height=True):
            model = gr.Dropdown(names, value=names[0], label="Model", scale=1)
            language = gr.Dropdown(
                [(name, code) for code, name in h.languages.items()],
                value=translation.SOURCE,
                label="Caption language",
                elem_id="language",
                scale=1,
            )
            card = gr.Markdown(render.model_card(h.models[names[0]]), elem_id="model-card")
        with gr.Accordion("Decoding", open=True), gr.Row():
            method = gr.Radio(list(METHODS), value="beam", label="Decoding")
            beam_size = gr.Slider(1, 10, value=3, step=1, label="Beam size")
            temperature = gr.Slider(
                0.1, 2.0, value=1.0, step=0.05, label="Temperature", visible=False
            )
            num_tags = gr.Slider(1, 20, value=5, step=1, label="Tags")
        decoding = [model, method, beam_size, temperature]

        with gr.Tabs():
            with gr.Tab("Image"):
                with gr.Row():
                    with gr.Column():
                        image = image_input(
                            sources=["upload", "webcam", "clipboard"],
                            type="filepath",
                            elem_id="image-input",
                            label="Image",
                            height=340,
                        )
                        describe_btn = gr.Button("Caption", variant="primary", elem_id="run")
                        if examples:
                            gr.Examples(
                                [[str(p)] for p in examples],
                                inputs=[image],
                                label="Examples",
                                cache_examples=False,
                            )
                    with gr.Column():
                        caption = gr.Textbox(label="Caption", elem_id="caption", interactive=False)
                        english = gr.Textbox(
                            label="English caption",
                            elem_id="caption-en",
                            interactive=False,
                            visible=False,
                        )
                        notes = gr.Markdown(elem_id="notes")
                        with gr.Row():
                            tags = gr.Label(label="Tags", elem_id="tags")
                            mood = gr.Label(
                                label="Sentiment of the caption", elem_id="sentiment", visible=False
                            )
                gallery = gr.Gallery(
                    label="Attention: where the model looked for each word",
                    columns=6,
                    height=None,
                    object_fit="contain",
                    elem_id="attention",
                    visible=False,  # shown with the first maps (no empty box before)
                )
            with gr.Tab("Batch"):
                files = gr.File(
                    file_count="multiple",
                    elem_id="batch-files",
                    file_types=["image", ".zip"],
                    label=f"Images or .zip archives (up to {max_batch_images} images)",
                )
                label_btn = gr.Button("Label all", variant="primary")
                batch_status = gr.Markdown()
                table = gr.Dataframe(
                    headers=list(TABLE_COLUMNS),
                    label="Labels",
                    wrap=True,
                    column_widths=column_widths(TABLE_COLUMNS),
                    elem_id="batch-table",
                )
                downloads = gr.File(label="labels.csv / labels.jsonl", file_count="multiple")
            with gr.Tab("Scene world"):
                gr.Markdown(
                    "Synthetic scenes with known facts, captioned by the bundled `scenes` "
                    "model (trained on the scene world) when it is loaded."
                )
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Scene seed")
                    scene_btn = gr.Button("Caption this scene", variant="primary")
                    random_btn = gr.Button("New random scene")
                with gr.Row():
                    scene_image = gr.Image(type="pil", format="png", label="Scene", height=340)
                    with gr.Column():
                        truth = gr.Textbox(
                            label="Ground truth captions (what the scene world says)",
                            lines=5,
                            interactive=False,
                            elem_id="scene-truth",
                        )
                        predicted = gr.Textbox(label="Predicted caption", interactive=False)
                        scores = gr.Dataframe(
                            label="Scene facts stated correctly", interactive=False
                        )
                        scene_notes = gr.Markdown()

        # API-only endpoints get hidden triggers and outputs.
        caption_out = gr.Textbox(visible=False, label="caption")
        describe_out = gr.JSON(visible=False, label="description")
        caption_trigger, describe_trigger, label_trigger = (
            gr.Button(visible=False) for _ in range(3)
        )

        private = {"api_visibility": "private"}
        model_call = {"concurrency_id": "model"}  # one queue limit for every model call
        model.change(lambda n: render.model_card(h.model(n)), model, card, **private)
        method.change(
            lambda m: (gr.Slider(visible=m == "beam"), gr.Slider(visible=m == "sample")),
            method,
            [beam_size, temperature],
            **private,
        )
        described = [caption, english, tags, mood, gallery, notes]
        image.change(cleared, image, described, **private)
        # a new caption language re-translates the caption shown from its English: the image
        # model does not run again
        language.change(
            retranslated, [caption, english, language], [caption, english], **private,
            **model_call,
        )  # fmt: skip
        describe_btn.click(
            show_description,
            [image, *decoding, num_tags, language],
            described,
            **private,
            **model_call,
        )
        caption_trigger.click(
            h.caption, [image, *decoding, language], caption_out, api_name="caption", **model_call
        )
        describe_trigger.click(
            h.describe,
            [image, *decoding, num_tags, language],
            describe_out,
            api_name="describe",
            **model_call,
        )
        batch_in, batch_out = (
            [files, *decoding, num_tags, language],
            [table, downloads, batch_status],
        )
        label_btn.click(label_ui, batch_in, batch_out, **private, **model_call)
        label_trigger.click(label, batch_in, batch_out, api_name="label", **model_call)
        scene_outputs = [seed, scene_image, truth, predicted, scores, scene_notes]
        scene_btn.click(h.scene, [seed, *decoding], scene_outputs, api_name="scene", **model_call)
        random_btn.click(h.random_scene, decoding, scene_outputs, **private, **model_call)
    return app
