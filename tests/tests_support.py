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


def tiny_decoder(vocab: Vocabulary, feature_dim: int, attention: str = "soft") -> CaptionDecoder:
    return CaptionDecoder(
        DecoderConfig(
            vocab_size=len(vocab),
            feature_dim=feature_dim,
            embed_dim=16,
            hidden_dim=32,
            attention_dim=16,
            attention=attention,
            dropout=0.0,
        )
    )


def tiny_sentiment(texts: list[str]) -> dict:
    """`sentiment` and `sentiment_vocab` keyword arguments of `Captioner`."""
    vocab = Vocabulary.build(texts)
    model = SentimentModel(
        SentimentConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8, dropout=0.0)
    )
    return {"sentiment": model, "sentiment_vocab": vocab}


def tiny_captioner(
    *, attention: str = "soft", sentiment: bool = True, encoder: str = "resnet18"
) -> Captioner:
    torch.manual_seed(0)
    enc = build_encoder(encoder, weights=None)
    vocab = Vocabulary.build(CAPTIONS)
    dec = tiny_decoder(vocab, enc.out_channels, attention)
    kw = tiny_sentiment(["good bad lovely awful day circle square"]) if sentiment else {}
    return Captioner(encoder=enc, decoder=dec, vocab=vocab, device="cpu", name="tiny", **kw)


def tiny_model_dir(directory: Path, **kw) -> Path:
    return tiny_captioner(**kw).save_pretrained(Path(directory) / "tiny-model")


def tiny_translator(tgt: str = "de"):
    """An EN->`tgt` `TranslationModel` with random weights over subwords learnt from a few
    captions; `</s>` is suppressed, so every translation is non-empty and equally long."""
    from captioner.subwords import Subwords
    from captioner.translation import TranslationModel
    from captioner.translator_net import EOS_ID, Translator, TranslatorConfig

    torch.manual_seed(0)
    subwords = Subwords.train(CAPTIONS + ["ein roter kreis", "un carré bleu"], vocab_size=60)
    config = TranslatorConfig(vocab_size=len(subwords), tgt_lang=tgt, embed_dim=8,
                              hidden_dim=8, attention_dim=8, dropout=0.0)  # fmt: skip
    model = Translator(config)
    with torch.no_grad():
        model.out_bias[EOS_ID] = -50.0
    return TranslationModel(model, subwords, name=f"tiny-en-{tgt}")


def npm_tarball(path: Path, files: dict[str, str]) -> Path:
    """A .tgz laid out as `npm pack` writes it (`files`: name under package/ -> text)."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
