"""Issue 26: changing the caption language after a caption is shown writes the caption shown
again in the new language, from its English, without running the image model again."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from tests_support import tiny_captioner, tiny_translator

from captioner import translation
from captioner.demo import ui
from captioner.demo.handlers import Handlers

LANGUAGES = [("en", "English"), ("de", "German"), ("fr", "French")]


@pytest.fixture(scope="module")
def translators():
    return {"de": tiny_translator("de"), "fr": tiny_translator("fr")}


@pytest.fixture
def installed(translators, monkeypatch):
    loads = []

    def find(lang, **kwargs):
        loads.append(lang)
        return translators[lang]

    monkeypatch.setattr(translation, "find_translator", find)
    return loads


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_the_handler_translates_the_english_caption_again(installed, translators, tmp_path):
    h = Handlers({"tiny": tiny_captioner()}, languages=LANGUAGES, work_dir=tmp_path)
    english = "a red circle left of a blue square"
    german = translators["de"].translate(english)[0]
    assert h.retranslate(english, "de") == (german, english)
    assert h.retranslate(english, "fr") == (translators["fr"].translate(english)[0], english)
    assert h.retranslate(english, "en") == (english, None)
    assert h.retranslate(english, None) == (english, None)
    assert installed == ["de", "fr"]  # each translator loaded once
    with pytest.raises(gr.Error, match="no translator for 'cs' here"):
        h.retranslate(english, "cs")


def language_change(app):
    """The function the language picker's change event runs."""
    (picker,) = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "language"]
    (fn,) = [f for f in app.fns.values() if (picker._id, "change") in map(tuple, f.targets)]
    names = [getattr(c, "elem_id", None) for c in fn.inputs]
    outputs = [getattr(c, "elem_id", None) for c in fn.outputs]
    assert names == ["caption", "caption-en", "language"] and outputs == ["caption", "caption-en"]
    return fn.fn


def test_changing_the_language_rewrites_the_caption_shown_without_the_image_model(
    installed, translators, photo, tmp_path, monkeypatch
):
    cap = tiny_captioner()
    app = ui.build_app({"tiny": cap}, languages=LANGUAGES, work_dir=tmp_path)
    change = language_change(app)
    h = Handlers({"tiny": cap}, languages=LANGUAGES, work_dir=tmp_path)
    shown, english = h.describe_ui(str(photo), "tiny", "beam", 3, 1.0, 5, "de")[:2]
    assert english == cap.caption(photo)[0] and shown != english

    def no_image_model(*args, **kwargs):
        raise AssertionError("the image model must not run again for a new language")

    monkeypatch.setattr(cap, "describe", no_image_model)
    monkeypatch.setattr(cap, "caption", no_image_model)
    caption_box, english_box = change(shown, english, "fr")  # German shown -> French
    assert caption_box.value == translators["fr"].translate(english)[0]
    assert caption_box.label == "Caption (French)"
    assert english_box.value == english and english_box.visible
    caption_box, english_box = change(caption_box.value, english, "en")  # -> English
    assert (caption_box.value, caption_box.label) == (english, "Caption")
    assert english_box.value is None and not english_box.visible
    caption_box, english_box = change(english, None, "de")  # English shown -> German
    assert caption_box.value == shown and english_box.value == english


def test_without_a_caption_shown_a_new_language_changes_nothing(installed, tmp_path):
    app = ui.build_app({"tiny": tiny_captioner()}, languages=LANGUAGES, work_dir=tmp_path)
    change = language_change(app)
    skipped = change("", None, "de")
    assert all(isinstance(x, dict) and x.get("__type__") == "update" and len(x) == 1
               for x in skipped), skipped  # fmt: skip
    assert installed == []  # nothing translated, no translator loaded
