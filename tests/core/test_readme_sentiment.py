"""The README's `model.sentiment([...])` example shows real outputs of the bundled model, and
docs/sentiment.md's SST-2 dev accuracy is the bundled model's."""

import ast
import re
from pathlib import Path

import pytest

from captioner.model_dir import BUNDLED_DIR, load_sentiment
from captioner.sentiment import sentiment_probs

README = Path(__file__).resolve().parents[2] / "README.md"
SENTIMENT_DOC = Path(__file__).resolve().parents[2] / "docs" / "sentiment.md"
EXAMPLE = re.compile(r"^model\.sentiment\((\[.*?\])\)\s*#\s*->\s*(\[.*?\])\s*$", re.M | re.S)


def readme_example() -> tuple[list[str], list[tuple[str, float]]]:
    match = EXAMPLE.search(README.read_text(encoding="utf-8"))
    assert match, "README.md lost its model.sentiment([...])  # -> [...] example"
    return ast.literal_eval(match[1]), ast.literal_eval(match[2])


def test_readme_example_is_well_formed():
    texts, shown = readme_example()
    assert len(texts) == len(shown) >= 3
    assert {label for label, _ in shown} == {"negative", "neutral", "positive"}


def test_bundled_model_gives_the_labels_the_readme_shows():
    if not (BUNDLED_DIR / "default" / "config.json").is_file():
        pytest.skip("no bundled default model in captioner/models/default")
    model, vocab = load_sentiment(BUNDLED_DIR / "default")
    if "neutral" not in model.config.labels:
        pytest.skip(
            "the bundled default model still holds the old 2-label sentiment model: graft the "
            "SST-2 one (python -m captioner.pipelines.release --graft-sentiment DIR --into "
            "captioner/models/default)"
        )
    texts, shown = readme_example()
    probs = sentiment_probs(model, vocab, texts)
    got = [(model.config.labels[int(p.argmax())], float(p.max())) for p in probs]
    assert [label for label, _ in got] == [label for label, _ in shown]
    for (_, score), (_, want) in zip(got, shown):
        assert score == pytest.approx(want, abs=0.011)  # the README rounds to two decimals


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ROW = re.compile(r"^\| SST-2 dev, accuracy \| 872 \| (0\.\d+) \|", re.M)


@pytest.mark.skipif(
    not (SHARED / "sst2" / "dev.tsv").is_file(),
    reason="SST-2 is not in ../shared/data/sst2 (only the project's machines have it)",
)
def test_bundled_model_scores_the_readme_accuracy_on_sst2_dev():
    from captioner.data import load_sentiment_dataset
    from captioner.sentiment import binary_decision

    match = ROW.search(SENTIMENT_DOC.read_text(encoding="utf-8"))
    assert match, "docs/sentiment.md lost its '| SST-2 dev, accuracy | 872 | ... |' row"
    model, vocab = load_sentiment(BUNDLED_DIR / "default")
    dev = load_sentiment_dataset(f"sst2:{SHARED / 'sst2'}")["validation"]
    probs = sentiment_probs(model, vocab, dev["text"])
    names = dev.features["label"].names  # negative, positive
    truth = [names[y] == "positive" for y in dev["label"]]
    said = binary_decision(probs, model.config.labels).tolist()
    accuracy = sum(int(s) == int(t) for s, t in zip(said, truth)) / len(truth)
    assert accuracy == pytest.approx(float(match[1]), abs=0.0015)  # the page rounds to 3
