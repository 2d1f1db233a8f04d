"""Sentiment scoring for `captioner eval` (captioner.evaluation): binary benchmarks on the
positive-vs-negative decision, the neutral share, calibration error and accuracy per source."""

from types import SimpleNamespace

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from captioner import evaluation

NAMES = ["negative", "neutral", "positive"]


def split(labels, names, sources=None):
    data = {"text": [f"t{i}" for i in range(len(labels))], "label": labels}
    features = {"text": Value("string"), "label": ClassLabel(names=names)}
    if sources:
        data["source"], features["source"] = sources, Value("string")
    return Dataset.from_dict(data, features=Features(features))


def fake_model(monkeypatch, probs):
    model = SimpleNamespace(sentiment_model=SimpleNamespace(config=SimpleNamespace(labels=NAMES)),
                            sentiment_vocab=None)  # fmt: skip
    monkeypatch.setattr(evaluation, "sentiment_probs", lambda *a, **k: torch.tensor(probs))
    return model


def test_binary_benchmark_uses_the_positive_vs_negative_decision(monkeypatch):
    probs = [[0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.3, 0.5, 0.2]]
    model = fake_model(monkeypatch, probs)
    gold = split([1, 0, 1, 1], ["negative", "positive"], ["imdb", "imdb", "yelp", "yelp"])
    r = evaluation.evaluate_sentiment(model, gold)
    # decisions: pos (0.3>0.1), neg, pos, neg -> 3 of 4 right; neutral on top for 2 of 4
    assert r["scores"]["accuracy"] == pytest.approx(0.75)
    assert r["scores"]["neutral_share"] == pytest.approx(0.5)
    assert r["scores"]["accuracy_imdb"] == 1.0 and r["scores"]["accuracy_yelp"] == 0.5
    assert 0.0 <= r["scores"]["ece_binary"] <= 1.0
    assert r["per_class"]["positive"]["support"] == 3 and "neutral" not in r["per_class"]


def test_neutral_captions_score_the_share_called_neutral(monkeypatch):
    model = fake_model(monkeypatch, [[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    r = evaluation.evaluate_sentiment(model, split([1, 1, 1], NAMES))
    assert r["scores"]["accuracy"] == pytest.approx(2 / 3)
    assert r["scores"]["neutral_share"] == pytest.approx(2 / 3)
    assert "ece" in r["scores"] and r["per_class"]["neutral"]["recall"] == pytest.approx(2 / 3)
