"""The `Captioner` facade: caption, tag and judge the sentiment of images in one object.

Inference follows preprocess -> _forward -> postprocess, batching happens in one place
(`_batches`), and everything runs under `torch.inference_mode()`. Beside it: `model_dir` (name
-> folder, load, save), `object_slots` (novel-object words), `records` (what comes out).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captioner.decoders import CaptionDecoder
from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.devices import resolve_device
from captioner.encoders import ImageTransform
from captioner.errors import MissingHeadError, check_batch_size
from captioner.imageio import load_image
from captioner.models import BUNDLED_DIR
from captioner.object_slots import (
    detected_words,
    has_slots,
    name_objects_in,
    slot_bias,
    slot_constraints,
)
from captioner.records import MIN_TAG_SCORE as MIN_TAG
from captioner.records import SCORE_DIGITS, Description, Heads, attention_maps, image_record
from captioner.sentiment import SentimentModel, sentiment_probs
from captioner.text import Vocabulary

log = logging.getLogger(__name__)

# the record types and builder are `captioner.records`'; imported from here too
__all__ = ["SCORE_DIGITS", "Captioner", "Description", "Heads", "image_record"]


def _as_list(images: Any) -> list:
    """One image or many -> a list of images."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, Tensor) and images.ndim == 4:
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


class Captioner:
    """A CNN encoder with up to three heads: caption decoder, recognition head, sentiment model."""

    def __init__(
        self,
        *,
        encoder,
        decoder: CaptionDecoder | None = None,
        vocab: Vocabulary | None = None,
        recognizer=None,
        sentiment: SentimentModel | None = None,
        sentiment_vocab: Vocabulary | None = None,
        device: str | torch.device | None = None,
        name: str = "custom",
        max_length: int = 20,
        generation: dict[str, Any] | None = None,
    ):
        if (decoder is None) != (vocab is None):
            raise ValueError(
                "a caption decoder needs its vocabulary (and a vocabulary its decoder)"
            )
        if (sentiment is None) != (sentiment_vocab is None):
            raise ValueError("a sentiment model needs its vocabulary (and a vocabulary its model)")
        self.device = resolve_device(device)
        self.encoder, self.decoder, self.vocab = encoder, decoder, vocab
        self.recognizer, self.sentiment_model, self.sentiment_vocab = (
            recognizer,
            sentiment,
            sentiment_vocab,
        )
        self.name, self.max_length = name, max_length
        # The model's own decoding defaults (config.json "generation"), e.g. trigram blocking.
        self.generation_defaults = dict(generation) if generation else None
        # What a model directory remembers beyond weights: the dtype its weights were stored
        # in (save_pretrained keeps it) and the data it was trained on (for the model card).
        self.storage_dtype: torch.dtype | None = None
        self.training_data: list[str] = []
        self.translators: dict[str, Any] = {}  # language -> TranslationModel (use_translator)
        self.special_ids = SpecialIds.from_vocab(vocab) if vocab is not None else None
        for module in self._modules():
            module.to(self.device).eval()

    def _modules(self) -> list[torch.nn.Module]:
        return [
            m
            for m in (self.encoder, self.decoder, self.recognizer, self.sentiment_model)
            if m is not None
        ]

    def use_backend(self, backend: str = "auto", *, cache_dir: str | Path | None = None) -> str:
        """Choose where the encoder runs and return the choice: "onnx" (ONNX Runtime, CPU
        only, several times faster than PyTorch eager; exported once, cached and checked
        against PyTorch within 1e-3), "torch", or "auto" (onnx on CPU when onnxruntime is
        installed, else torch). Decoding and the heads stay in PyTorch either way."""
        from captioner.onnx_backend import encoder_for_backend

        self.encoder, chosen = encoder_for_backend(
            self.encoder, backend, self.device, cache_dir=cache_dir
        )
        return chosen

    def use_translator(self, lang: str, translator: Any = None) -> Any:
        """Make captions in `lang` ("de", "fr", "cs") available and return the translator:
        `translator` is a `captioner.translation.TranslationModel`, a translator directory,
        or None for the bundled `captioner/models/translate-en-LANG` (when none is bundled,
        the error says how to train one). "en" needs none (returns None)."""
        from captioner.translation import use_translator

        return use_translator(self, lang, translator)

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = "default",
        *,
        device: str | torch.device | None = None,
        backend: str = "auto",
        revision: str | None = None,
    ) -> Captioner:
        """Load a model.

        Args:
            name_or_path: a local model directory, a bundled model name ("default") or a
                Hugging Face hub id. A bundled model's bare name means the bundled model
                even when a folder of that name is in the current directory: write
                "./default" (or an absolute path, or a `Path`) for the folder.
            device: "auto" or None (cuda when available, else cpu), "cpu", "cuda", "cuda:N".
            backend: where the image encoder runs (see `use_backend`): "auto" (ONNX Runtime
                on CPU when installed: exported once, cached, several times faster),
                "onnx", or "torch" (PyTorch eager: what training and fine-tuning need).
            revision: for a hub id, the branch, tag or commit to load (pins the model).
        """
        model = cls._load(name_or_path, device=device, revision=revision)
        model.use_backend(backend)
        return model

    @classmethod
    def _load(cls, name_or_path: str | Path, *, device, revision=None) -> Captioner:
        from captioner.model_dir import imagenet_tagger, model_directory

        directory = model_directory(name_or_path, revision=revision, folder=BUNDLED_DIR)
        if directory is not None:
            return cls._load_dir(directory, device=device)
        return imagenet_tagger(cls, device=device, folder=BUNDLED_DIR)

    @classmethod
    def _load_dir(cls, directory: Path, *, device=None) -> Captioner:
        from captioner.model_dir import load_captioner

        return load_captioner(cls, directory, device=device)

    def save_pretrained(
        self,
        directory: str | Path,
        *,
        include_encoder: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> Path:
        """Write a model directory. The encoder's weights are stored only when they were
        trained (`trainable_blocks > 0`) or `include_encoder=True`; otherwise they come from
        the encoder's own pretrained weights at load time. `dtype` (e.g. torch.float16)
        stores floating-point weights in that type (default: the type they were loaded from,
        so a float16 model stays float16); loading casts them back. torch.int8 stores large
        weight matrices as int8 with one scale per row (`checkpoint.quantize_int8`): half the
        size of float16. Also writes the model card README.md (see `captioner.model_card`)."""
        from captioner.model_dir import save_captioner

        return save_captioner(self, directory, include_encoder=include_encoder, dtype=dtype)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> str:
        """Save the model (with its card) and upload it to the Hugging Face hub as
        `repo_id`, created if missing; `revision` names a branch. Returns the commit URL."""
        from captioner.hub import push_captioner

        return push_captioner(
            self, repo_id, token=token, private=private, revision=revision,
            commit_message=commit_message, dtype=dtype,
        )  # fmt: skip

    # ------------------------------------------------------------------ inference
    def preprocess(self, images: Sequence[Any]) -> Tensor:
        """Images -> normalised batch (B, 3, S, S) on the model's device: the encoder's
        `ImageTransform.pixels` of each, normalised as a batch (as `captioner label` does)."""
        t = self.encoder.transform
        if not isinstance(t, ImageTransform):  # a custom transform: PIL -> float (3, S, S)
            return torch.stack([t(load_image(im)) for im in images]).to(self.device)
        pixels = torch.from_numpy(np.stack([t.pixels(im) for im in images]))
        return t.normalise(pixels.to(self.device, non_blocking=True))

    def _batches(self, images: Any, batch_size: int) -> Iterator[list]:
        check_batch_size(batch_size)
        items = _as_list(images)
        for i in range(0, len(items), batch_size):
            yield items[i : i + batch_size]

    def generation_config(
        self, generation: GenerationConfig | None = None, **overrides: Any
    ) -> GenerationConfig:
        """`generation` (default: beam 3 with the model's own `generation_defaults`) with
        `overrides` (GenerationConfig fields) applied and max_length None replaced by the
        model's own. A whole `generation` with nothing to change is returned as it is."""
        if generation is not None and not overrides and generation.max_length is not None:
            return generation
        base = generation or GenerationConfig(**(self.generation_defaults or {}))
        config = dataclasses.replace(base, **overrides)
        if config.max_length is None:
            config = dataclasses.replace(config, max_length=self.max_length)
        return config

    def _require(self, part: str) -> None:
        missing = {
            "caption": self.decoder is None,
            "tag": self.recognizer is None,
            "sentiment": self.sentiment_model is None,
        }[part]
        if missing:
            raise MissingHeadError(
                f"model {self.name!r} has no {part} head; load one that does "
                f"(e.g. Captioner.from_pretrained('default') once bundled)"
            )

    @torch.inference_mode()
    def caption(
        self,
        images: Any,
        *,
        generation: GenerationConfig | None = None,
        batch_size: int = 32,
        lang: str = "en",
        translator: Any = None,
        **decoding: Any,
    ) -> list[str]:
        """Images (paths, PIL, numpy, tensors; one or many) -> one caption each.

        Args:
            images: one image or a list of them.
            generation: how to search (default: beam search of width 3).
            batch_size: images per forward pass.
            lang: the captions' language: "en" (default), or "de" / "fr" / "cs" through a
                translator (see `use_translator`).
            translator: for `lang`: a translator directory or model (default: bundled).
            **decoding: `GenerationConfig` fields overriding `generation` (beam_size,
                method, max_length, temperature, top_k, top_p, seed, ...).
        """
        self._require("caption")
        found = self.describe(
            images, generation=generation, batch_size=batch_size, tags=0, sentiment=False,
            lang=lang, translator=translator, **decoding,
        )  # fmt: skip
        return [d.caption if not d.translations else next(iter(d.translations.values()))
                for d in found]  # fmt: skip

    @torch.inference_mode()
    def tag(
        self, images: Any, *, top_k: int = 5, min_score: float = MIN_TAG, batch_size: int = 32
    ) -> list[list[tuple[str, float]]]:
        """Per image, the `top_k` (label, probability) pairs >= `min_score`, highest first."""
        self._require("tag")
        out: list[list[tuple[str, float]]] = []
        for batch in self._batches(images, batch_size):
            _, pooled = self.encoder(self.preprocess(batch))
            out.extend(self.recognizer.predict(pooled, top_k=top_k, threshold=min_score))
        return out

    @torch.inference_mode()
    def sentiment(
        self, texts: str | Sequence[str], *, batch_size: int = 256
    ) -> list[tuple[str, float]]:
        """Texts -> (label, probability) each."""
        self._require("sentiment")
        check_batch_size(batch_size)
        texts = [texts] if isinstance(texts, str) else list(texts)
        probs = sentiment_probs(self.sentiment_model, self.sentiment_vocab, texts,
                                batch_size=batch_size, device=self.device)  # fmt: skip
        p, k = probs.max(dim=-1)
        labels = self.sentiment_model.config.labels
        return [(labels[j], float(q)) for j, q in zip(k.tolist(), p.tolist())]

    @torch.inference_mode()
    def describe(
        self,
        images: Any,
        *,
        generation: GenerationConfig | None = None,
        tags: int = 5,
        min_tag_score: float = MIN_TAG,
        sentiment: bool = True,
        attention: bool = False,
        batch_size: int = 32,
        lang: str = "en",
        translator: Any = None,
        **decoding: Any,
    ) -> list[Description]:
        """Caption, tags and caption sentiment for each image. Heads the model lacks give None.

        Args:
            images: one image or a list of them (paths, PIL, numpy, tensors).
            generation: how to search captions (default: beam search of width 3).
            tags: top tags per image (0: none).
            min_tag_score: leave out less probable tags (0.05 on every path; 0 keeps all).
            sentiment: judge each caption's sentiment.
            attention: also return one attention map per caption word.
            batch_size: images per forward pass.
            lang: also translate each caption into this language ("de", "fr", "cs"): the
                description keeps the English caption and adds `translations`.
            translator: for `lang`: a translator directory or model (default: bundled).
            **decoding: `GenerationConfig` fields overriding `generation`.
        """
        if self.decoder is None and tags == 0:
            self._require("caption")
        if lang != "en" and (translator is not None or lang not in self.translators):
            self.use_translator(lang, translator)
        config = self.generation_config(generation, **decoding)
        results: list[Description] = []
        for batch in self._batches(images, batch_size):
            grid, pooled = self.encoder(self.preprocess(batch))
            results.extend(
                self.describe_features(
                    grid,
                    pooled,
                    generation=config,
                    tags=tags,
                    min_tag_score=min_tag_score,
                    sentiment=sentiment,
                    attention=attention,
                    lang=lang,
                )  # fmt: skip
            )
        return results

    @torch.inference_mode()
    def describe_features(
        self,
        grid: Tensor,
        pooled: Tensor,
        *,
        generation: GenerationConfig | None = None,
        tags: int = 5,
        min_tag_score: float = MIN_TAG,
        sentiment: bool = True,
        attention: bool = False,
        decoder: CaptionDecoder | None = None,
        lang: str = "en",
    ) -> list[Description]:
        """`describe` from encoder features grid (B, N, C) and pooled (B, C); `decoder`
        replaces the model's own (e.g. an int8 copy from `quantize_decoder`); `lang` other
        than "en" translates the captions (bundled translator unless `use_translator`)."""
        heads = Heads.select(self, tags=tags > 0, sentiment=sentiment)
        n = grid.size(0)
        captions: list[str | None] = [None] * n
        maps: list[Any] = [None] * n
        if heads.caption:
            config = self.generation_config(generation)
            step, state = (decoder or self.decoder).start(grid, pooled)
            detected = detected_words(self.recognizer, pooled)  # bias, constraints and fill
            bias = slot_bias(self.vocab, detected, config.slot_boost, pooled.device)
            wanted = slot_constraints(self.vocab, detected, config.slot_min_score)
            dec = generate(step, state, self.special_ids, config, bias=bias, constraints=wanted)
            captions = [self.vocab.decode(t) for t in dec.tokens]
            if config.name_objects or has_slots(self.vocab):
                captions = name_objects_in(
                    captions, pooled, self.recognizer, swap=config.name_objects, detected=detected
                )
            if attention:
                maps = [attention_maps(t, a, self.vocab) for t, a in zip(dec.tokens, dec.alphas)]
        tag_lists: list[Any] = [None] * n
        if heads.tags:
            tag_lists = self.recognizer.predict(pooled, top_k=tags, threshold=min_tag_score)
        elif self.recognizer is not None:
            tag_lists = [[] for _ in range(n)]  # asked for no tags
        moods: list[Any] = self.sentiment(captions) if heads.sentiment else [None] * n
        from captioner.translation import translations_of

        translated = translations_of(self, captions, lang)
        return [Description(*row) for row in zip(captions, tag_lists, moods, maps, translated)]
