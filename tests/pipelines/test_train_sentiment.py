"""The sentiment training recipe on a tiny separable corpus (CPU, seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from training_support import corpus, tiny_config, toy_dataset

from captioner import Captioner
from captioner.pipelines import sentiment_data as sd
from captioner.pipelines import train_sentiment as ts
from captioner.pipelines.runstate import read_metrics


def test_learns_separable_corpus_and_exports_a_loadable_model(tmp_path):
    out = tmp_path / "model"
    report = ts.train(tiny_config(out), dataset=toy_dataset())

    records = read_metrics(out / "run" / "metrics.jsonl")
    steps = [r["loss"] for r in records if r["type"] == "step"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 6
    assert sum(steps[-5:]) / 5 < 0.5 * sum(steps[:5]) / 5  # the loss went down
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert report["test"]["accuracy"] > 0.9
    assert report["validation"]["accuracy"] > 0.9
    assert 0.1 <= report["temperature"] <= 10.0
    assert json.loads((out / "run" / "test_metrics.json").read_text()) == report

    cap = Captioner.from_pretrained(out, device="cpu")
    assert cap.decoder is None and cap.recognizer is None
    assert cap.sentiment_model.config.labels == ["negative", "positive"]
    assert len(cap.training_data) == 1 and (out / "README.md").is_file()  # the model card
    (pos, p_pos), (neg, p_neg) = cap.sentiment(["the food was great", "the phone was awful"])
    assert (pos, neg) == ("positive", "negative")
    assert p_pos > 0.5 and p_neg > 0.5


def test_resume_continues_exactly(tmp_path):
    full, parts = tmp_path / "full", tmp_path / "parts"
    data = toy_dataset(96, 24)
    ts.train(tiny_config(full, epochs=4, word_dropout=0.2), dataset=data)
    ts.train(tiny_config(parts, epochs=4, word_dropout=0.2, stop_after=2), dataset=data)
    assert [r["epoch"] for r in read_metrics(parts / "run" / "metrics.jsonl")
            if r["type"] == "epoch"] == [1, 2]  # fmt: skip
    ts.train(tiny_config(parts, epochs=4, word_dropout=0.2, resume=True), dataset=data)

    def final_weights(out):
        last = json.loads((out / "run" / "checkpoints" / "last.json").read_text())
        assert last["epoch"] == 4
        return load_file(str(out / "run" / "checkpoints" / last["dir"] / "model.safetensors"))

    a, b = final_weights(full), final_weights(parts)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    epochs_full = [r for r in read_metrics(full / "run" / "metrics.jsonl") if r["type"] == "epoch"]
    epochs_parts = [
        r for r in read_metrics(parts / "run" / "metrics.jsonl") if r["type"] == "epoch"
    ]
    assert [r["train_loss"] for r in epochs_full] == [r["train_loss"] for r in epochs_parts]


def test_cli_with_a_jsonl_file_and_neutral_texts(tmp_path):
    texts, labels = corpus(120, 3)
    rows = [{"text": t, "label": ["negative", "positive"][y]} for t, y in zip(texts, labels)]
    table = tmp_path / "reviews.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    neutral = tmp_path / "neutral.txt"
    neutral.write_text("a red circle left of a blue square\n\na phone on a table\n" * 20)
    out = tmp_path / "cli-model"
    argv = ["--dataset", f"sentiment-jsonl:{table}", "--out", str(out), "--epochs", "3",
            "--embed-dim", "8", "--hidden-dim", "8", "--neutral", str(neutral), "--lr", "0.01",
            "--no-neutral-class",
            "--device", "cpu", "--limit", "80", "--plot-every", "0"]  # fmt: skip
    assert ts.main(argv) == 0
    config = json.loads((out / "run" / "config.json").read_text())
    assert config["recipe"] == "sentiment" and config["limit"] == 80
    report = json.loads((out / "run" / "test_metrics.json").read_text())
    assert set(report["neutral_probes"]) == set(ts.NEUTRAL_PROBES)
    epochs = [r for r in read_metrics(out / "run" / "metrics.jsonl") if r["type"] == "epoch"]
    assert len(epochs) == 3
    steps = [r for r in read_metrics(out / "run" / "metrics.jsonl") if r["type"] == "step"]
    assert any("neutral_loss" in r for r in steps)
    cap = Captioner.from_pretrained(out, device="cpu")
    assert "circle" in cap.sentiment_vocab  # neutral texts are part of the vocabulary


def test_neutral_texts_sources(tmp_path):
    scenes = sd.neutral_texts("scenes:20", seed=0)
    assert len(scenes) == 20 and all(isinstance(t, str) and t for t in scenes)
    assert scenes == sd.neutral_texts("scenes:20", seed=0)
    assert sd.neutral_texts("") == []
    with pytest.raises(FileNotFoundError, match="no-such-file.txt"):
        sd.neutral_texts(str(tmp_path / "no-such-file.txt"))


def test_neutral_loss_pulls_towards_equal_probabilities():
    cfg = tiny_config("unused", neutral_weight=1.0)
    model = torch.nn.Linear(1, 2)

    class Fake(torch.nn.Module):
        def forward(self, ids, lengths):
            return model(ids.float()[:, :1])

    batch = sd.collate([([1], 0), ([2], -1)])
    loss, extra = ts.sentiment_loss_fn(cfg, unk_id=3)(Fake(), batch)
    assert loss.requires_grad and "neutral_loss" in extra
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    _, extra = ts.sentiment_loss_fn(cfg, unk_id=3)(Fake(), batch)
    assert extra["neutral_loss"] == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)


def test_temperature_is_recovered_and_folded_into_the_head():
    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 2, generator=gen) * 2
    labels = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=gen).squeeze(1)
    temperature = ts.fit_temperature(true_logits * 3, labels.tolist())
    assert temperature == pytest.approx(3.0, rel=0.1)

    model = ts.SentimentModel(ts.SentimentConfig(vocab_size=10, embed_dim=4, hidden_dim=4))
    model.eval()
    ids, lengths = torch.tensor([[4, 5, 6]]), torch.tensor([3])
    before = model(ids, lengths)
    ts.apply_temperature(model, 2.5)
    torch.testing.assert_close(model(ids, lengths), before / 2.5)


def test_word_dropout_only_touches_real_tokens():
    torch.manual_seed(0)
    ids = torch.tensor([[5, 6, 7, 0, 0]] * 200)
    dropped = sd.drop_words(ids, 0.5, unk_id=3)
    assert (dropped[:, 3:] == 0).all()
    rate = (dropped[:, :3] == 3).float().mean().item()
    assert 0.4 < rate < 0.6
    assert torch.equal(sd.drop_words(ids, 0.0, unk_id=3), ids)


def test_missing_validation_split_is_a_clear_error(tmp_path):
    data = toy_dataset(40, 10)
    del data["validation"]
    with pytest.raises(ValueError, match="'validation' split"):
        ts.train(tiny_config(tmp_path / "m"), dataset=data)


def test_cli_reports_a_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert ts.main(["--dataset", f"sentiment-jsonl:{missing}", "--out", str(tmp_path / "m")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_three_class_model_with_neutral_captions_trains_calibrates_and_loads(tmp_path):
    from captioner.model_dir import load_sentiment
    from captioner.sentiment import sentiment_probs

    out = tmp_path / "three"
    cfg = tiny_config(out, neutral="scenes:80", epochs=8)
    report = ts.train(cfg, dataset=toy_dataset())
    assert report["labels"] == ["negative", "neutral", "positive"]
    # validation / test hold the scene captions of their own split as neutral rows
    assert report["validation"]["neutral_share"] > 0.9
    assert report["test"]["binary_accuracy"] > 0.9 and report["test"]["accuracy"] > 0.9
    assert set(report["calibration"]) == {"ece_before", "ece_after", "ece_with_neutral_captions"}
    probes = report["neutral_probes"]["a red circle left of a blue square"]
    assert max(probes, key=probes.get) == "neutral"

    model, vocab = load_sentiment(out)  # the sentiment part alone, no image encoder
    assert model.config.labels == ["negative", "neutral", "positive"]
    assert model.config.pooling == "max_mean"
    texts = ["the food was great", "the phone was awful", "two small yellow triangles"]
    probs = sentiment_probs(model, vocab, texts)
    assert [model.config.labels[k] for k in probs.argmax(-1)] == [
        "positive",
        "negative",
        "neutral",
    ]
    cap = Captioner.from_pretrained(out, device="cpu", backend="torch")
    assert [label for label, _ in cap.sentiment(texts)] == ["positive", "negative", "neutral"]


def test_text_only_recipe_never_builds_the_image_encoder(tmp_path, monkeypatch):
    import captioner.encoders as encoders

    def refuse(*a, **k):
        raise AssertionError("the sentiment recipe built an image encoder")

    monkeypatch.setattr(encoders, "build_encoder", refuse)
    report = ts.train(tiny_config(tmp_path / "m", epochs=2), dataset=toy_dataset())
    assert 0 <= report["test"]["accuracy"] <= 1
    monkeypatch.undo()  # loading the directory as a Captioner builds the referenced default
    cap = Captioner.from_pretrained(tmp_path / "m", device="cpu", backend="torch")
    assert cap.encoder.name == "efficientnet_lite0" and cap.sentiment_model is not None


@pytest.mark.slow
def test_save_dtype_stores_the_final_model_smaller_with_the_same_labels(tmp_path):
    data = toy_dataset()
    dims = dict(embed_dim=128, hidden_dim=128)  # LSTM matrices of 512 x 128: stored int8
    ts.train(tiny_config(tmp_path / "f32", **dims), dataset=data)
    ts.train(tiny_config(tmp_path / "i8", **dims, save_dtype="int8"), dataset=data)
    weights = load_file(str(tmp_path / "i8" / "model.safetensors"))
    assert weights["sentiment.rnn.weight_ih_l0"].dtype == torch.int8
    size = {k: (tmp_path / k / "model.safetensors").stat().st_size for k in ("f32", "i8")}
    assert size["i8"] < 0.45 * size["f32"]
    texts = data["test"]["text"]
    got = {k: Captioner.from_pretrained(tmp_path / k, device="cpu").sentiment(texts)
           for k in ("f32", "i8")}  # fmt: skip
    assert [label for label, _ in got["i8"]] == [label for label, _ in got["f32"]]
    assert max(abs(a[1] - b[1]) for a, b in zip(got["i8"], got["f32"])) < 0.05
