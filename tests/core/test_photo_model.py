"""The bundled photo captioner on real Flickr8k test photos (skipped without ../shared/data).

The expected scores are the README's "first 100 Flickr8k test images" row, measured with
    captioner eval --model default --dataset flickr8k:../shared/data/flickr8k --split test \
        --limit 100 --beam-size 3 --no-meteor
"""

from pathlib import Path

import pytest

FLICKR8K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "flickr8k"
SAMPLE = 100
# README: bundled default, Flickr8k test, first 100 images, beam 3 (no METEOR: Java-free)
EXPECTED = {"BLEU-1": 0.659, "BLEU-4": 0.231, "CIDEr-D": 0.637}

pytestmark = [
    pytest.mark.slow,  # decoding 100 photos: about 30 s
    pytest.mark.skipif(
        not (FLICKR8K / "Flickr8k.token.txt").is_file(),
        reason="Flickr8k is not in ../shared/data/flickr8k (only the project's machines have it)",
    ),
]


@pytest.fixture(scope="module")
def result():
    from captioner.api import Captioner
    from captioner.data import load_caption_dataset
    from captioner.evaluation import evaluate_captions

    model = Captioner.from_pretrained("default", device="cpu")
    split = load_caption_dataset(f"flickr8k:{FLICKR8K}")["test"].select(range(SAMPLE))
    return evaluate_captions(model, split, meteor=False)


@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_bundled_default_scores_within_ten_percent_of_the_readme(result, metric):
    assert result["scores"][metric] == pytest.approx(EXPECTED[metric], rel=0.10)


def test_bundled_default_captions_read_as_finished_sentences(result):
    stats = result["stats"]
    assert stats["dangling_end"] == 0.0
    assert stats["empty"] == 0.0
    assert stats["distinct"] >= 0.5
    assert 6 <= stats["mean_length"] <= 14  # Flickr8k references: about 11 words
