"""Helpers shared by tests: tiny models built in seconds, with random weights."""

from __future__ import annotations

from pathlib import Path

import torch

from captioner import Captioner
from captioner.decoders import CaptionDecoder, DecoderConfig
from captioner.encoders import build_encoder
from captioner.sentiment import SentimentConfig, SentimentModel
from captioner.text import Vocabulary

CAPTIONS = ["a red circle", "a blue square left of a green star", "two small yellow triangles"]


def tiny_captioner(
    *, attention: str = "soft", sentiment: bool = True, encoder: str = "resnet18"
) -> Captioner:
    torch.manual_seed(0)
    enc = build_encoder(encoder, weights=None)
    vocab = Vocabulary.build(CAPTIONS)
    dec = CaptionDecoder(
        DecoderConfig(
            vocab_size=len(vocab),
            feature_dim=enc.out_channels,
            embed_dim=16,
            hidden_dim=32,
            attention_dim=16,
            attention=attention,
            dropout=0.0,
        )
    )
    kw = {}
    if sentiment:
        svocab = Vocabulary.build(["good bad lovely awful day circle square"])
        kw = dict(
            sentiment=SentimentModel(
                SentimentConfig(vocab_size=len(svocab), embed_dim=8, hidden_dim=8, dropout=0.0)
            ),
            sentiment_vocab=svocab,
        )
    return Captioner(encoder=enc, decoder=dec, vocab=vocab, device="cpu", name="tiny", **kw)


def tiny_model_dir(directory: Path, **kw) -> Path:
    return tiny_captioner(**kw).save_pretrained(Path(directory) / "tiny-model")
