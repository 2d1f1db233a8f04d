"""`--graft-sentiment SENT_DIR --into MODEL_DIR`: only the sentiment part of a model
directory is replaced; everything else is kept byte for byte."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tests_support import tiny_model_dir

from captioner import Captioner
from captioner.checkpoint import CheckpointError
from captioner.model_dir import load_sentiment
from captioner.pipelines import release
from captioner.sentiment import SentimentConfig, SentimentModel, sentiment_probs
from captioner.text import Vocabulary

TEXTS = ["what a lovely day", "a dog runs across the grass", "awful"]


def assert_same_sentiment(grafted_dir, source_dir, *, atol: float) -> None:
    """The grafted model's probabilities of TEXTS are the source model's, within `atol`."""
    (grafted, vocab), (original, src_vocab) = map(load_sentiment, (grafted_dir, source_dir))
    torch.testing.assert_close(
        sentiment_probs(grafted, vocab, TEXTS), sentiment_probs(original, src_vocab, TEXTS),
        atol=atol, rtol=0,
    )  # fmt: skip


def three_class_dir(tmp_path):
    torch.manual_seed(1)
    vocab = Vocabulary.build(TEXTS)
    model = SentimentModel(SentimentConfig(
        vocab_size=len(vocab), labels=["negative", "neutral", "positive"], embed_dim=8,
        hidden_dim=8, pooling="attention",
    ))  # fmt: skip
    torch.nn.init.normal_(model.head.weight, std=2.0)
    from captioner.encoders import build_encoder

    cap = Captioner(encoder=build_encoder("resnet18", weights=None), sentiment=model,
                    sentiment_vocab=vocab, device="cpu")  # fmt: skip
    return cap.save_pretrained(tmp_path / "sent")


def test_graft_replaces_only_the_sentiment_part(tmp_path):
    target = tiny_model_dir(tmp_path / "bundle")
    Captioner.from_pretrained(target, device="cpu", backend="torch").save_pretrained(
        target, dtype=torch.float16
    )  # as the release bundle stores it
    (target / "README.md").write_text("model card")
    before = load_file(str(target / "model.safetensors"))
    source = three_class_dir(tmp_path)

    assert release.main(["--graft-sentiment", str(source), "--into", str(target)]) == 0

    after = load_file(str(target / "model.safetensors"))
    for k, v in before.items():
        if not k.startswith("sentiment."):
            assert torch.equal(after[k], v), k
    assert all(v.dtype == torch.float16 for k, v in after.items() if k.startswith("sentiment."))
    assert (target / "README.md").read_text() == "model card"
    config = json.loads((target / "config.json").read_text())
    assert config["sentiment"]["labels"] == ["negative", "neutral", "positive"]
    assert_same_sentiment(target, source, atol=5e-3)
    cap = Captioner.from_pretrained(target, device="cpu", backend="torch")
    assert cap.decoder is not None and cap.sentiment_model.config.pooling == "attention"


def test_a_failed_graft_leaves_the_target_as_it_was(tmp_path):
    target = tiny_model_dir(tmp_path / "bundle")
    files = {p.name: p.read_bytes() for p in target.iterdir()}
    no_sentiment = tiny_model_dir(tmp_path / "plain", sentiment=False)
    with pytest.raises(CheckpointError, match="no sentiment part"):
        release.main(["--graft-sentiment", str(no_sentiment), "--into", str(target)])
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files
    with pytest.raises(SystemExit):
        release.main(["--graft-sentiment", str(no_sentiment)])  # --into missing


def test_old_two_label_configs_still_load():
    old = {
        "vocab_size": 12,
        "labels": ["negative", "positive"],
        "embed_dim": 4,
        "hidden_dim": 4,
        "cell": "lstm",
        "bidirectional": True,
        "num_layers": 1,
        "dropout": 0.3,
        "max_length": 64,
    }  # fmt: skip  (a config written before pooling)
    config = SentimentConfig.from_dict(old)
    assert config.pooling == "last_max" and SentimentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown sentiment config key"):
        SentimentConfig.from_dict({**old, "poolng": "max_mean"})
    with pytest.raises(ValueError, match="pooling must be one of"):
        SentimentConfig(vocab_size=5, pooling="sum")


def test_load_sentiment_names_the_broken_file(tmp_path):
    source = three_class_dir(tmp_path)
    (source / "sentiment_vocab.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="sentiment_vocab.json"):
        load_sentiment(source)
    (source / "sentiment_vocab.json").unlink()
    with pytest.raises(CheckpointError, match="sentiment_vocab.json"):
        load_sentiment(source)


def big_sentiment_dir(tmp_path, name: str, seed: int):
    """A sentiment-only model whose embedding (600 x 128) is large enough to be stored int8."""
    torch.manual_seed(seed)
    vocab = Vocabulary.build([*TEXTS, " ".join(f"w{i}" for i in range(600))])
    model = SentimentModel(SentimentConfig(
        vocab_size=len(vocab), labels=["negative", "neutral", "positive"], embed_dim=128,
        hidden_dim=8,
    ))  # fmt: skip
    torch.nn.init.normal_(model.head.weight, std=2.0)
    from captioner.encoders import build_encoder

    cap = Captioner(encoder=build_encoder("resnet18", weights=None), sentiment=model,
                    sentiment_vocab=vocab, device="cpu")  # fmt: skip
    return cap.save_pretrained(tmp_path / name)


def test_graft_into_an_int8_bundle_keeps_it_int8(tmp_path):
    from captioner.checkpoint import INT8_SCALE

    target = big_sentiment_dir(tmp_path, "bundle", seed=1)
    Captioner.from_pretrained(target, device="cpu", backend="torch").save_pretrained(
        target, dtype=torch.int8
    )  # as the bundled default stores its large matrices
    before = load_file(str(target / "model.safetensors"))
    assert before["sentiment.embed.weight"].dtype == torch.int8
    source = big_sentiment_dir(tmp_path, "new", seed=2)
    size = (target / "model.safetensors").stat().st_size

    assert release.main(["--graft-sentiment", str(source), "--into", str(target)]) == 0

    after = load_file(str(target / "model.safetensors"))
    assert after["sentiment.embed.weight"].dtype == torch.int8
    assert after[INT8_SCALE + "sentiment.embed.weight"].shape == (len(Vocabulary.load(
        source / "sentiment_vocab.json")),)  # fmt: skip
    assert not torch.equal(after["sentiment.embed.weight"], before["sentiment.embed.weight"])
    assert (target / "model.safetensors").stat().st_size < 1.1 * size  # not dequantized
    assert_same_sentiment(target, source, atol=2e-2)  # int8 rows
