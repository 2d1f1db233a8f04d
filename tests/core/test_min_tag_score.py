"""--min-tag-score: exports leave out improbable tags (issue 10: no "plastic bag 0.0014")."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests_support import tiny_captioner

from captioner.cli.label import main as label_main
from captioner.recognition import RecognitionConfig, RecognitionHead
from captioner.records import MIN_TAG_SCORE

PROBS = {"cat": 0.5, "dog": 0.3, "car": 0.1, "cup": 0.04, "bag": 0.03, "hat": 0.03}


def fixed_head(in_dim: int) -> RecognitionHead:
    """A tagger that gives every image exactly PROBS."""
    head = RecognitionHead(RecognitionConfig(in_dim=in_dim, labels=list(PROBS)))
    linear = head.net[-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([math.log(p) for p in PROBS.values()]))
    return head.eval()


@pytest.fixture()
def model():
    cap = tiny_captioner()
    cap.recognizer = fixed_head(cap.encoder.out_channels)
    return cap


def test_api_tags_below_the_minimum_are_left_out(model):
    image = np.zeros((32, 32, 3), np.uint8)
    (d,) = model.describe(image, tags=5, min_tag_score=0.05)
    assert [t for t, _ in d.tags] == ["cat", "dog", "car"]
    (d,) = model.describe(image, tags=5, min_tag_score=0)  # 0 keeps the top 5
    assert [t for t, _ in d.tags] == ["cat", "dog", "car", "cup", "bag"]
    # the API's default cut is the one the command line, the exports and the demo use
    (d,) = model.describe(image, tags=5)
    assert [t for t, _ in d.tags] == ["cat", "dog", "car"] and MIN_TAG_SCORE == 0.05
    assert [t for t, _ in model.tag(image, top_k=5)[0]] == ["cat", "dog", "car"]
    assert [t for t, _ in model.tag(image, top_k=5, min_score=0.2)[0]] == ["cat", "dog"]


def test_label_exports_cut_at_five_percent_by_default(model, tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    model_dir = model.save_pretrained(tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(photos / "a.jpg")
    base = ["--model", str(model_dir), "--workers", "0", "--backend", "torch"]
    assert label_main([str(photos), *base]) == 0
    (row,) = [json.loads(line) for line in (photos / "labels.jsonl").read_text().splitlines()]
    assert [t["label"] for t in row["tags"]] == ["cat", "dog", "car"]
    assert label_main([str(photos), *base, "--overwrite", "--min-tag-score", "0"]) == 0
    (row,) = [json.loads(line) for line in (photos / "labels.jsonl").read_text().splitlines()]
    assert len(row["tags"]) == 5
    assert label_main([str(photos), *base, "--min-tag-score", "1.5"]) == 2  # not a probability


def test_one_min_tag_score_default_for_tag_describe_label_and_the_demo():
    """Issue 25: `tag` used to keep tags down to 0.0 ("minibus (0.00)")."""
    from captioner.cli import infer
    from captioner.cli.label_flags import build_parser as label_parser

    defaults = {c: infer.build_parser(c).parse_args(["x.jpg"]).min_tag_score
                for c in ("tag", "describe")}  # fmt: skip
    defaults["label"] = label_parser().parse_args(["photos"]).min_tag_score
    assert defaults == dict.fromkeys(("tag", "describe", "label"), MIN_TAG_SCORE)
    assert MIN_TAG_SCORE == 0.05
    source = (Path(__file__).resolve().parents[2] / "demo" / "handlers.py").read_text()
    assert "min_tag_score=MIN_TAG_SCORE" in source
