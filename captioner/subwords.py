"""Subword vocabulary of the translator: a SentencePiece model, trained by the translation
recipe and stored as `subwords.model` (SentencePiece's own protobuf file, no pickle) in the
model directory.

Ids are fixed so the model code never asks the tokenizer: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>
(`captioner.translator_net.PAD_ID` ...). One joint model covers both languages, so source and
target can share an embedding table.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence

from captioner.translator_net import BOS_ID, EOS_ID, PAD_ID, UNK_ID

log = logging.getLogger(__name__)
FILENAME = "subwords.model"
MODEL_TYPES = ("bpe", "unigram")


class Subwords:
    """A loaded SentencePiece model: `encode(texts)`, `decode(ids)`, `len()`."""

    def __init__(self, model_proto: bytes, *, source: str = FILENAME):
        import sentencepiece as spm

        try:
            self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"{source}: not a SentencePiece model ({e})") from None
        specials = [self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()]
        if specials != [PAD_ID, UNK_ID, BOS_ID, EOS_ID]:
            raise ValueError(
                f"{source}: special ids <pad> <unk> <s> </s> are {specials}, expected 0 1 2 3"
            )
        self.proto = model_proto

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int = 8000,
        model_type: str = "bpe",
        character_coverage: float = 1.0,
        seed_sentences: int = 1_000_000,
    ) -> Subwords:
        """Learn a subword model from `texts` (both languages for a joint vocabulary).
        `vocab_size` is a ceiling: a small corpus gets fewer pieces."""
        import sentencepiece as spm

        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
        lines = [t.strip() for t in texts if t and t.strip()]
        if not lines:
            raise ValueError("no text to learn subwords from")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            hard_vocab_limit=False, input_sentence_size=seed_sentences,
            shuffle_input_sentence=True, minloglevel=2, num_threads=1,
        )  # fmt: skip
        out = cls(buf.getvalue())
        log.info("learnt %d %s subwords from %d sentences", len(out), model_type, len(lines))
        return out

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Texts -> subword ids each (no <s> / </s>)."""
        return self.sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        """Subword ids -> text (special ids dropped)."""
        return self.sp.decode([i for i in ids if i > EOS_ID])

    def to_bytes(self) -> bytes:
        return self.proto
