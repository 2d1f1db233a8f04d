"""The Gradio demo, served in-process on 127.0.0.1 and called through gradio_client, plus its
pure helpers (attention overlays, batch rows, zip handling)."""

from __future__ import annotations

import csv
import json
import os
import socket
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from tests_support import tiny_captioner

from captioner.cli import run_command
from captioner.cli.demo import build_parser
from captioner.demo import app as demo_app
from captioner.demo import batch as batching
from captioner.demo.env import temp_dir
from captioner.demo.handlers import Handlers
from captioner.demo.render import attention_overlay, upsample_map
from captioner.errors import CaptionerError
from captioner.recognition import RecognitionConfig, RecognitionHead
from captioner.records import MIN_TAG_SCORE

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

TAGS = ["circle", "square", "star", "triangle", "cross", "diamond"]


def tiny_model_dir(root: Path) -> Path:
    """A saved random-weights model with every head: soft attention, tags, sentiment. Its
    `<end>` is suppressed so every caption has exactly `max_length` words."""
    cap = tiny_captioner()
    with torch.no_grad():
        cap.decoder.out.bias[cap.vocab.eos_id] = -50.0
    cap.recognizer = RecognitionHead(
        RecognitionConfig(in_dim=cap.encoder.out_channels, labels=TAGS)
    )
    cap.recognizer.eval()
    cap.max_length = 5
    return cap.save_pretrained(root / "tiny-model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(url: str) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {}
    for name, size in (("noise.png", (90, 120)), ("wide.jpg", (60, 160))):
        paths[name] = root / name
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(paths[name])
    paths["bad.png"] = root / "bad.png"
    paths["bad.png"].write_bytes(b"this is a text file, not a PNG")
    good = paths["noise.png"].read_bytes()
    paths["cut.png"] = root / "cut.png"
    paths["cut.png"].write_bytes(good[: len(good) // 3])  # valid header, truncated data
    return paths


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo over a model directory (as `--model DIR` loads it), on a free local port."""
    models = demo_app.load_models(
        [str(tiny_model_dir(tmp_path_factory.mktemp("m")))], default=False
    )
    app = demo_app.build_app(models, examples=sorted(demo_app.EXAMPLES_DIR.glob("*.jpg")))
    demo_before = sorted(p.name for p in Path(demo_app.__file__).parent.iterdir())
    cwd, old_cwd = tmp_path_factory.mktemp("cwd"), os.getcwd()
    os.chdir(cwd)  # the app must write nothing here (Gradio's default caches live in the cwd)
    try:
        _, url, share = demo_app.launch_app(
            app, port=free_port(), prevent_thread_lock=True, quiet=True, max_file_size="1mb"
        )
        yield app, url, share, models["tiny-model"]
        app.close()
    finally:
        os.chdir(old_cwd)
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in Path(demo_app.__file__).parent.iterdir()) == demo_before


# ----------------------------------------------------------------------------- helpers


def test_attention_overlay_is_hot_where_the_model_looked():
    alpha = np.zeros((7, 7), np.float32)
    alpha[1, 5] = 1.0  # top right
    smooth = upsample_map(alpha, (140, 70))
    assert smooth.shape == (70, 140) and smooth.max() == pytest.approx(1.0)
    y, x = np.unravel_index(smooth.argmax(), smooth.shape)
    assert x > 100 and y < 20  # the peak stays where it was, scaled to the image
    row = smooth[15, 80:111]  # from a cell and a half left of the peak up to it
    steps = np.diff(row)
    assert 0.0 < row[0] < 0.3 and row[-1] > 0.95  # a ramp up to the peak...
    assert np.all(steps >= 0) and steps.max() < 0.1  # ...that is smooth, not a hard block
    assert smooth[60, 10] == 0.0  # nothing far away
    img = Image.new("RGB", (300, 150), (120, 120, 120))
    out = np.asarray(attention_overlay(img, alpha, max_side=200), np.float32)
    assert out.shape == (100, 200, 3)  # shrunk to max_side, aspect kept
    assert out[14, 157].sum() > 1.5 * out[85, 20].sum()  # bright at the peak, dimmed far away
    with pytest.raises(ValueError, match="2-D"):
        upsample_map(np.zeros(5), (10, 10))


def test_batch_reads_files_and_zips_and_writes_csv_jsonl(tmp_path, images):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(images["noise.png"], "a/one.png")
        zf.writestr("../../escape.png", images["wide.jpg"].read_bytes())
        zf.writestr("broken.jpg", b"\xff\xd8 not really a jpeg")
        zf.writestr("notes.txt", "skipped: not an image name")
        zf.writestr("__MACOSX/a/._one.png", b"resource fork")
    work = tmp_path / "work"
    work.mkdir()
    paths = [images["wide.jpg"], images["bad.png"], archive]
    assert batching.count_batch_inputs(paths) == 5
    items = list(batching.iter_batch_items(paths, work_dir=work))
    names = [it.name for it in items]
    assert names == [
        "wide.jpg",
        "bad.png",
        "photos.zip/a/one.png",
        "photos.zip/../../escape.png",
        "photos.zip/broken.jpg",
    ]
    assert [it.error is None for it in items] == [True, False, True, True, False]
    assert "bad.png: not a recognised image format" in items[1].error
    assert items[4].error.startswith("photos.zip/broken.jpg:")
    assert list(work.iterdir()) == [] and not (tmp_path.parent / "escape.png").exists()
    assert len(list(batching.iter_batch_items(paths, work_dir=work, max_images=2))) == 2

    assert [(it.folder, it.path) for it in items[2:4]] == [
        ("photos.zip", "a/one.png"),
        ("photos.zip", "../../escape.png"),
    ]

    cap = tiny_captioner()
    recs = batching.describe_items(cap, iter(items), batch_size=2, tags=0, method="greedy")
    assert [r["path"] for r in recs] == [
        "wide.jpg",
        "bad.png",
        "a/one.png",
        "../../escape.png",
        "broken.jpg",
    ]
    assert {r["model"] for r in recs} == {"tiny"} and recs[2]["folder"] == "photos.zip"
    assert recs[0]["caption"] == cap.caption(images["wide.jpg"], method="greedy")[0]
    assert recs[1]["caption"] is None and recs[1]["sentiment"] is None
    csv_path, jsonl_path = batching.write_records(recs, tmp_path)
    with csv_path.open(newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == batching.COLUMNS and len(table) == 5  # captioner label's columns
    assert table[1]["error"].startswith("bad.png: not a recognised")
    assert table[0]["sentiment"] in ("negative", "positive") and float(table[0]["sentiment_score"])
    lines = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert lines == json.loads(json.dumps(recs))  # the records, one per line
    assert batching.table_rows(recs)[2][:2] == ["photos.zip/a/one.png", recs[2]["caption"]]
    assert "folder" not in batching.TABLE_COLUMNS and len(batching.table_rows(recs)[0]) == 8


def test_tagger_only_model_says_so_instead_of_crashing(images):
    cap = tiny_captioner(sentiment=False)
    cap.decoder = cap.vocab = None  # what from_pretrained("default") gives until it is trained
    cap.recognizer = RecognitionHead(RecognitionConfig(in_dim=512, labels=TAGS)).eval()
    with torch.no_grad():  # every label about 1/6: all above the --min-tag-score cut
        cap.recognizer.net[-1].weight.zero_()
    h = Handlers({"tagger": cap})
    caption, english, tags, mood, gallery, notes = h.describe_ui(
        str(images["noise.png"]), "tagger", "beam", 3, 1.0, 3
    )
    assert caption == "" and english is None and mood is None and gallery == []
    assert len(tags) == 3 and set(tags) <= set(TAGS)
    assert "no caption decoder" in notes and "tagger only" in notes
    assert h.describe(str(images["noise.png"]), "tagger", "beam", 3, 1.0, 2)["caption"] is None
    with pytest.raises(Exception, match="no caption head"):
        h.caption(str(images["noise.png"]), "tagger", "beam", 3, 1.0)


def test_one_image_tags_leave_out_the_improbable_as_label_does(images):
    """The one-image tab and /describe cut tags at `captioner tag|describe|label`'s default
    --min-tag-score (issue 25: "minibus (0.00)"), however many tags the slider asks for."""
    cap = tiny_captioner(sentiment=False)
    head = RecognitionHead(RecognitionConfig(in_dim=512, labels=TAGS)).eval()
    last = head.net[-1]
    with torch.no_grad():  # "star" ~0.97, each other label ~0.007
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0, 0.0]))
    cap.recognizer = head
    h = Handlers({"m": cap})
    tags = h.describe_ui(str(images["noise.png"]), "m", "greedy", 1, 1.0, 5)[2]
    assert list(tags) == ["star"] and tags["star"] > 0.9
    d = h.describe(str(images["noise.png"]), "m", "greedy", 1, 1.0, 5)
    assert [t["label"] for t in d["tags"]] == ["star"]
    kept = cap.describe(images["noise.png"], tags=5, min_tag_score=MIN_TAG_SCORE)[0].tags
    assert [label for label, _ in kept] == ["star"]


def test_load_models_names_the_directory_that_fails(tmp_path, capsys):
    with pytest.raises(
        CaptionerError, match="(?s)could not load model.*missing-model: no such model directory"
    ):
        demo_app.load_models([str(tmp_path / "missing-model")], default=False)
    # a bad --model is an error before any server starts, even beside a good default
    with socket.socket() as s:  # a free port: the address is checked before the models
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    assert run_command("demo", ["--model", str(tmp_path / "nope"), "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.startswith("captioner demo: error: could not load model") and "nope" in err
    assert run_command("demo", ["--no-default"]) == 2
    assert "no model to serve" in capsys.readouterr().err


# ----------------------------------------------------------------------------- served


@pytest.mark.slow
def test_listens_on_localhost_only_by_default(served):
    app, url, share, _ = served
    assert demo_app.DEFAULT_HOST == "127.0.0.1" == app.server_name
    assert build_parser().parse_args([]).host == "127.0.0.1"
    assert url.startswith("http://127.0.0.1:") and share is None
    page = httpx.get(url, timeout=30).text
    assert "fonts.googleapis.com" not in page and "gradio" in page.lower()


@pytest.mark.slow
def test_caption_and_describe_endpoints(served, images):
    _, url, _, cap = served
    c = client(url)
    api = c.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/caption", "/describe", "/label", "/scene"}
    expected = cap.caption(images["noise.png"], beam_size=3)[0]
    caption = c.predict(handle_file(str(images["noise.png"])), api_name="/caption")
    assert caption == expected and len(caption.split()) == 5
    assert set(caption.split()) <= set(cap.vocab.itos)
    greedy = c.predict(handle_file(str(images["noise.png"])), method="greedy", api_name="/caption")
    assert greedy == cap.caption(images["noise.png"], method="greedy")[0]

    d = c.predict(handle_file(str(images["wide.jpg"])), api_name="/describe")
    want = cap.describe(images["wide.jpg"], min_tag_score=MIN_TAG_SCORE)[0]
    assert d["caption"] == want.caption and d["model"] == cap.name
    assert [t["label"] for t in d["tags"]] == [t for t, _ in want.tags] and len(d["tags"]) <= 5
    assert all(t["score"] >= MIN_TAG_SCORE for t in d["tags"])
    assert d["sentiment"]["label"] == want.sentiment[0]
    assert d["sentiment"]["score"] == pytest.approx(want.sentiment[1], abs=5e-5)  # 4 digits


@pytest.mark.slow
def test_unreadable_uploads_get_a_clear_message(served, images):
    _, url, _, _ = served
    c = client(url)
    with pytest.raises(AppError, match="bad.png: not a recognised image format"):
        c.predict(handle_file(str(images["bad.png"])), api_name="/caption")
    with pytest.raises(AppError, match="cut.png: corrupt or truncated image"):
        c.predict(handle_file(str(images["cut.png"])), api_name="/describe")
    with pytest.raises(AppError, match="nope is not in the list of choices"):
        c.predict(handle_file(str(images["noise.png"])), model="nope", api_name="/caption")


@pytest.mark.slow
def test_uploads_over_the_size_limit_are_refused(served, tmp_path):
    _, url, _, _ = served
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (800, 800, 3), np.uint8)).save(big)
    assert big.stat().st_size > 1024 * 1024
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        client(url).predict(handle_file(str(big)), api_name="/caption")  # the client checks
    with big.open("rb") as f:  # and the server refuses what a client sends anyway
        r = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", f, "image/png")})
    assert r.status_code == 413 and "exceeded maximum allowed size" in r.text


@pytest.mark.slow
def test_eight_simultaneous_clients_all_get_answers(served, images):
    _, url, _, cap = served
    paths = [images["noise.png"], images["wide.jpg"]] * 4
    expected = cap.caption(paths[:2])
    answers: dict[int, str] = {}
    errors: list[BaseException] = []
    active, most, lock = [0], [0], threading.Lock()
    describe = cap.describe

    def counting_describe(*args, **kwargs):  # how many model calls run at the same time
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return describe(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    def user(i: int) -> None:
        try:
            answers[i] = client(url).predict(handle_file(str(paths[i])), api_name="/caption")
        except BaseException as e:  # reported below
            errors.append(e)

    cap.describe = counting_describe
    try:
        threads = [threading.Thread(target=user, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        del cap.describe
    assert not errors, errors
    assert [answers[i] for i in range(8)] == expected * 4
    assert most[0] == 1  # the queue served them in turn (concurrency limit 1)


@pytest.mark.slow
def test_label_endpoint_returns_table_and_files_in_the_temp_dir(served, images, tmp_path):
    _, url, _, cap = served
    stale = temp_dir() / "batch-from-yesterday"
    stale.mkdir()
    os.utime(stale, (time.time() - 86400, time.time() - 86400))
    files = [handle_file(str(images[n])) for n in ("noise.png", "bad.png")]
    table, downloads, status = client(url).predict(files, api_name="/label")
    assert table["headers"] == list(batching.TABLE_COLUMNS)  # labels.csv's, less `folder`
    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    assert [row["path"] for row in rows] == ["noise.png", "bad.png"]
    assert rows[0]["caption"] == cap.caption(images["noise.png"])[0]
    assert rows[0]["tags"].split("; ") == [t for t, _ in cap.tag(images["noise.png"])[0]]
    assert rows[1]["error"].startswith("bad.png: not a recognised image format")
    assert "1 of 2 images" in status
    paths = [Path(f["path"]) for f in downloads]
    assert [p.name for p in paths] == ["labels.csv", "labels.jsonl"]
    assert all(p.resolve().is_relative_to(temp_dir().resolve()) for p in paths)
    assert not stale.exists()  # old batch results are cleared away


@pytest.mark.slow
def test_scene_endpoint_shows_truth_prediction_and_scores(served):
    pytest.importorskip("captioner.data.scenes")
    from captioner.demo.scene import make_scene

    _, url, _, cap = served
    seed, image, truth, predicted, scores, notes = client(url).predict(5, api_name="/scene")
    scene = make_scene(5)
    assert seed == 5 and truth.splitlines() == [
        f"{i}. {c}" for i, c in enumerate(scene.captions, 1)
    ]
    assert predicted == cap.caption(scene.image)[0]
    assert scores["headers"] == ["facts", "precision", "recall", "F1"]
    assert scores["data"][0][0] == "scene" and all(0 <= r[3] <= 1 for r in scores["data"])
    assert Path(image["path"]).resolve().is_relative_to(temp_dir().resolve())
