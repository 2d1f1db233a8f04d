"""The demo's caption language picker (issues 13, 16): English plus every installed
translator's language; captions, batch rows and API answers in the chosen language with the
English caption beside them; no translator, English only, and nothing breaks."""

from __future__ import annotations

import csv
import socket

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from tests_support import tiny_captioner, tiny_translator

from captioner import translation
from captioner.demo import batch as batching
from captioner.demo import ui
from captioner.demo.handlers import Handlers, caption_languages
from captioner.translation import TranslatorNotFoundError

GERMAN = [("en", "English"), ("de", "German")]


@pytest.fixture(scope="module")
def german():
    return tiny_translator("de")


@pytest.fixture
def installed(german, monkeypatch):
    """The German translator as if bundled: listed, and found by `find_translator`."""
    loads = []

    def find(lang, **kwargs):
        loads.append(lang)
        if lang != "de":
            raise TranslatorNotFoundError(f"no EN->{lang.upper()} translator bundled")
        return german

    monkeypatch.setattr(translation, "available_languages", lambda src="en": GERMAN)
    monkeypatch.setattr(translation, "find_translator", find)
    return loads


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def cap():
    return tiny_captioner()


@pytest.mark.slow
def test_captions_in_the_chosen_language_keep_the_english_beside(
    installed, german, cap, photo, tmp_path
):
    h = Handlers({"tiny": cap}, languages=caption_languages(), work_dir=tmp_path)
    assert h.languages == dict(GERMAN)
    english = cap.caption(photo)[0]
    shown, kept, tags, mood, gallery, notes = h.describe_ui(
        str(photo), "tiny", "beam", 3, 1.0, 5, "de"
    )
    assert kept == english and shown == german.translate(english)[0] != english
    assert len(gallery) == len(english.split())  # the maps are of the English words
    assert tags is None and "no recognition head" in notes  # a model without a tagger
    assert h.describe_ui(str(photo), "tiny", "beam", 3, 1.0, 5, "en")[:2] == (english, None)
    assert h.caption(str(photo), "tiny", "beam", 3, 1.0, "de") == shown
    record = h.describe(str(photo), "tiny", "beam", 3, 1.0, 5, "de")
    assert record["caption"] == english and record["translations"] == {"de": shown}
    assert "translations" not in h.describe(str(photo), "tiny", "beam", 3, 1.0, 5)
    assert installed == ["de"]  # loaded once, then kept

    table, downloads, status = h.label([str(photo)], "tiny", "beam", 3, 1.0, 5, "de")
    assert list(table.columns) == ["path", "caption_de", *batching.TABLE_COLUMNS[1:]]
    row = table.iloc[0]
    assert (row["caption_de"], row["caption"]) == (shown, english)
    assert "Labelled 1 of 1" in status and len(downloads) == 2
    with open(downloads[0], newline="", encoding="utf-8") as f:  # labels.csv
        (saved,) = csv.DictReader(f)
    assert (saved["caption"], saved["caption_de"]) == (english, shown)
    english_table = h.label([str(photo)], "tiny", "beam", 3, 1.0, 5)[0]
    assert list(english_table.columns) == list(batching.TABLE_COLUMNS)
    assert ui.column_widths(table.columns)[1] == ui.TABLE_WIDTHS["caption"]


def test_without_translators_the_picker_offers_english_only(cap, photo, tmp_path, monkeypatch):
    monkeypatch.setattr(translation, "BUNDLED_DIR", tmp_path / "no-models")
    assert caption_languages() == [("en", "English")]

    def unreadable(src="en"):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(translation, "available_languages", unreadable)
    assert caption_languages() == [("en", "English")]
    app = ui.build_app({"tiny": cap}, work_dir=tmp_path)
    (picker,) = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "language"]
    assert picker.choices == [("English", "en")] and picker.value == "en"
    h = Handlers({"tiny": cap}, work_dir=tmp_path)
    with pytest.raises(gr.Error, match=r"no translator for 'de' here; choose one of: en"):
        h.caption(str(photo), "tiny", "beam", 3, 1.0, "de")
    assert h.caption(str(photo), "tiny", "beam", 3, 1.0, "en") == cap.caption(photo)[0]


def test_a_listed_translator_that_fails_to_load_is_a_message(cap, photo, tmp_path, monkeypatch):
    def broken(lang, **kwargs):
        raise translation.ckpt.CheckpointError(f"translate-en-{lang}/config.json: not JSON")

    monkeypatch.setattr(translation, "find_translator", broken)
    h = Handlers({"tiny": cap}, languages=GERMAN[1:], work_dir=tmp_path)
    assert h.languages == dict(GERMAN)  # English is always offered, first
    with pytest.raises(gr.Error, match=r"captions in German are unavailable: .*not JSON"):
        h.describe_ui(str(photo), "tiny", "beam", 3, 1.0, 5, "de")
    assert h.describe_ui(str(photo), "tiny", "beam", 3, 1.0, 5, "en")[0] == cap.caption(photo)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_api_endpoints_take_the_language_last(installed, german, cap, photo):
    from gradio_client import Client, handle_file

    from captioner.demo.app import launch_app

    app = ui.build_app({"tiny": cap})  # the languages of `available_languages` (patched)
    _, url, _ = launch_app(app, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        english = cap.caption(photo)[0]
        image = handle_file(str(photo))
        assert c.predict(image, api_name="/caption") == english
        assert c.predict(image, lang="de", api_name="/caption") == german.translate(english)[0]
        record = c.predict(image, lang="de", api_name="/describe")
        assert record["caption"] == english and set(record["translations"]) == {"de"}
        table, _, _ = c.predict([image], lang="de", api_name="/label")
        assert table["headers"][:3] == ["path", "caption_de", "caption"]
        with pytest.raises(Exception, match="fr is not in the list of choices"):
            c.predict(image, lang="fr", api_name="/caption")
    finally:
        app.close()
