"""The `Captioner` facade: caption, tag and judge the sentiment of images in one object.

Inference follows preprocess -> _forward -> postprocess, batching happens in one place
(`_batches`), and everything runs under `torch.inference_mode()`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captioner import checkpoint as ckpt
from captioner.decoders import CaptionDecoder
from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.devices import resolve_device
from captioner.encoders import ImageTransform
from captioner.errors import MissingHeadError, ModelNotFoundError, check_batch_size
from captioner.imageio import load_image
from captioner.model_card import read_training_data, write_card
from captioner.models import BUNDLED_DIR
from captioner.sentiment import SentimentModel, encode_texts
from captioner.tagwords import SLOT, TYPED_SLOTS
from captioner.text import Vocabulary

log = logging.getLogger(__name__)


def _as_list(images: Any) -> list:
    """One image or many -> a list of images."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, Tensor) and images.ndim == 4:
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


SCORE_DIGITS = 4  # scores in records (JSON, CSV, XMP, the demo's table) keep 4 decimals
IMAGENET_CLASSES = 1000  # the tagger whose classes captioner.tagwords knows
NAMING_TOP_K = 10  # tagger classes object naming looks at


@dataclass
class Description:
    """What `Captioner.describe` says about one image. A head the model lacks (or that was
    not asked for) gives None; `tags` is [] when asked for 0 tags."""

    caption: str | None
    tags: list[tuple[str, float]] | None = field(default_factory=list)
    sentiment: tuple[str, float] | None = None
    # One (word, attention map (h, w) over the image grid) per generated word, when asked for
    # and the model has soft attention.
    attention: list[tuple[str, np.ndarray]] | None = None
    # language -> the caption translated (describe(..., lang="de")); None: English only
    translations: dict[str, str] | None = None

    def to_record(self) -> dict[str, Any]:
        """The `caption`, `tags` and `sentiment` fields of a record, as `captioner label`,
        `captioner describe --json` and the demo's batch tab write them: scores rounded to
        `SCORE_DIGITS`, {"label", "score"} objects, None for a missing head. A translated
        description adds `translations` ({"de": "..."}) beside the English `caption`."""

        def scored(label: str, score: float) -> dict[str, Any]:
            return {"label": label, "score": round(float(score), SCORE_DIGITS)}

        record = {
            "caption": self.caption,
            "tags": None if self.tags is None else [scored(t, s) for t, s in self.tags],
            "sentiment": None if self.sentiment is None else scored(*self.sentiment),
        }
        if self.translations is not None:
            record["translations"] = dict(self.translations)
        return record


def image_record(
    path: str, folder: str, fields: dict[str, Any] | None, *, error: str | None, model: str
) -> dict[str, Any]:
    """One image's record as `captioner label` journals it and the demo's batch tab exports
    it: where the image is, what `Description.to_record` gave (`fields`; None: an image that
    could not be read, whose caption, tags and sentiment are None), the error and the model."""
    fields = fields or {"caption": None, "tags": None, "sentiment": None}
    return {"path": path, "folder": folder, **fields, "error": error, "model": model}


@dataclass(frozen=True)
class Heads:
    """Which heads run: the one rule for the API and labeling. Sentiment reads the caption,
    so it runs only with a caption decoder."""

    caption: bool
    tags: bool
    sentiment: bool

    @classmethod
    def select(cls, model: Captioner, *, tags: bool = True, sentiment: bool = True) -> Heads:
        caption = model.decoder is not None
        return cls(
            caption=caption,
            tags=tags and model.recognizer is not None,
            sentiment=sentiment and caption and model.sentiment_model is not None,
        )


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
        from captioner.encoders import build_encoder

        path = Path(name_or_path)
        if revision is not None and (path.exists() or (BUNDLED_DIR / str(name_or_path)).is_dir()):
            raise ValueError(f"{name_or_path}: revision= applies to hub ids, not local models")
        from captioner.model_dir import bundled_model

        bundled = BUNDLED_DIR / str(name_or_path)
        named = bundled_model(name_or_path, BUNDLED_DIR)  # "default": never a folder here
        if named is not None:
            return cls._load_dir(named, device=device)
        if path.is_dir():
            return cls._load_dir(path, device=device)
        if (bundled / ckpt.CONFIG).is_file():
            return cls._load_dir(bundled, device=device)
        if str(name_or_path) == "default":
            from captioner.recognition import RecognitionHead

            log.warning(
                "no bundled default captioner in %s: using the pretrained EfficientNet-Lite0 "
                "ImageNet tagger only (captions and sentiment unavailable)",
                BUNDLED_DIR,
            )
            encoder = build_encoder("efficientnet_lite0", weights="default")
            return cls(
                encoder=encoder,
                recognizer=RecognitionHead.from_imagenet(encoder),
                device=device,
                name="efficientnet_lite0-imagenet",
            )
        if str(name_or_path).count("/") == 1 and not path.exists() and _hub_like(str(name_or_path)):
            from captioner.hub import download

            return cls._load_dir(download(str(name_or_path), revision=revision), device=device)
        raise ModelNotFoundError(
            f"{name_or_path}: no such model directory, bundled model ({_bundled_names()}) or hub id"
        )

    @classmethod
    def _load_dir(cls, directory: Path, *, device=None) -> Captioner:
        from captioner.model_dir import read_parts

        _, parts, _ = read_parts(directory)
        model = cls(**parts, device=device)
        model.storage_dtype = ckpt.stored_dtype(directory)
        model.training_data = read_training_data(directory)
        return model

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
        size of float16. Also writes the model
        card README.md (see `captioner.model_card`)."""
        from captioner.model_dir import pack

        enc = getattr(self.encoder, "torch_encoder", self.encoder)  # also after use_backend
        if include_encoder is None:
            include_encoder = getattr(enc, "trainable_blocks", 0) > 0 or enc.weights is None
        config, tensors, extra = pack(self, include_encoder=include_encoder)
        dtype = dtype or self.storage_dtype
        if dtype == torch.int8:  # large matrices int8 + row scales, the rest float16
            tensors = ckpt.quantize_int8(tensors)
        elif dtype is not None:
            tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        out = ckpt.save_model_dir(directory, config=config, tensors=tensors, extra_json=extra)
        write_card(out, config, training_data=self.training_data)
        return out

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
        import tempfile

        from captioner.hub import push_model_dir

        with tempfile.TemporaryDirectory(prefix="captioner-push-") as tmp:
            staged = self.save_pretrained(Path(tmp) / "model", dtype=dtype)
            return push_model_dir(
                staged,
                repo_id,
                token=token,
                private=private,
                revision=revision,
                commit_message=commit_message,
            )

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
        self, images: Any, *, top_k: int = 5, min_score: float = 0.0, batch_size: int = 32
    ) -> list[list[tuple[str, float]]]:
        """Per image, the `top_k` (label, probability) pairs with probability >= `min_score`,
        highest first."""
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
        labels = self.sentiment_model.config.labels
        out: list[tuple[str, float]] = []
        for i in range(0, len(texts), batch_size):
            ids, lengths = encode_texts(
                texts[i : i + batch_size],
                self.sentiment_vocab,
                self.sentiment_model.config.max_length,
            )
            probs = torch.softmax(self.sentiment_model(ids.to(self.device), lengths), dim=-1)
            p, k = probs.max(dim=-1)
            out.extend((labels[j], float(q)) for j, q in zip(k.tolist(), p.tolist()))
        return out

    @torch.inference_mode()
    def describe(
        self,
        images: Any,
        *,
        generation: GenerationConfig | None = None,
        tags: int = 5,
        min_tag_score: float = 0.0,
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
            min_tag_score: leave out tags less probable than this (exports use 0.05).
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
        min_tag_score: float = 0.0,
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
            detected = self._detected(pooled)  # one detector pass for bias, constraints, fill
            bias = self._slot_bias(detected, config.slot_boost, pooled.device)
            wanted = self._slot_constraints(detected, config.slot_min_score)
            dec = generate(step, state, self.special_ids, config, bias=bias, constraints=wanted)
            captions = [self.vocab.decode(t) for t in dec.tokens]
            slots = any(s in self.vocab for s in (SLOT, *TYPED_SLOTS.values()))
            if config.name_objects or slots:
                captions = self._name_objects(
                    captions, pooled, swap=config.name_objects, detected=detected
                )
            if attention:
                maps = [_attention_maps(t, a, self.vocab) for t, a in zip(dec.tokens, dec.alphas)]
        tag_lists: list[Any] = [None] * n
        if heads.tags:
            tag_lists = self.recognizer.predict(pooled, top_k=tags, threshold=min_tag_score)
        elif self.recognizer is not None:
            tag_lists = [[] for _ in range(n)]  # asked for no tags
        moods: list[Any] = self.sentiment(captions) if heads.sentiment else [None] * n
        from captioner.translation import translations_of

        translated = translations_of(self, captions, lang)
        return [Description(*row) for row in zip(captions, tag_lists, moods, maps, translated)]

    def _detected(self, pooled: Tensor) -> list[list[tuple[str, float]]] | None:
        """Per image, every word of the caption-word detector with its probability, most
        probable first; None when the recognizer is not such a detector."""
        detector = self.recognizer
        if detector is None or not detector.config.caption_objects:
            return None
        return detector.predict(pooled, top_k=None)

    def _typed_slot_ids(self) -> dict[str, int]:
        """{kind: token id} of the typed slots in the vocabulary ({} for a model without)."""
        return {kind: self.vocab.stoi[slot] for kind, slot in TYPED_SLOTS.items()
                if slot in self.vocab.stoi}  # fmt: skip

    def _slot_bias(
        self, detected: list[list[tuple[str, float]]] | None, boost: float, device: torch.device
    ) -> Tensor | None:
        """`GenerationConfig.slot_boost` as a (B, V) log-probability bonus: each typed slot
        gets boost x the caption-word detector's best probability for a word of its kind
        (`detected`: `_detected`'s words). None when off, or without typed slots or a
        detector."""
        from captioner.tagwords import object_kind

        slot_ids = self._typed_slot_ids() if boost and detected is not None else {}
        if not slot_ids:
            return None
        bias = torch.zeros(len(detected), len(self.vocab))
        for row, found in enumerate(detected):
            best: dict[int, float] = {}
            for word, p in found:  # most probable first: the first word of a kind is its best
                slot_id = slot_ids.get(object_kind(word))
                if slot_id is not None:
                    best.setdefault(slot_id, p)
            for slot_id, p in best.items():
                bias[row, slot_id] = boost * p
        return bias.to(device)

    def _slot_constraints(
        self, detected: list[list[tuple[str, float]]] | None, min_score: float
    ) -> list[list[int]] | None:
        """`GenerationConfig.slot_min_score` as constrained beam search's constraints: per
        image, the slot token of each caption-word detector word reaching min_score (most
        probable first, synonyms once, at most MAX_SLOT_CONSTRAINTS). None when off, or
        without typed slots or a detector."""
        from captioner.decoding import MAX_SLOT_CONSTRAINTS
        from captioner.tagwords import object_kind, rank_detected, same_thing

        slot_ids = self._typed_slot_ids() if min_score and detected is not None else {}
        if not slot_ids:
            return None
        out = []
        for found in detected:
            seen: list[str] = []
            confident = [(w, p) for w, p in found if p >= min_score]
            for word in rank_detected(confident):  # most probable first, the specific first
                if object_kind(word) in slot_ids and not any(same_thing(word, w) for w in seen):
                    seen.append(word)
            out.append([slot_ids[object_kind(w)] for w in seen[:MAX_SLOT_CONSTRAINTS]])
        return out

    def _name_objects(
        self,
        captions: list[str],
        pooled: Tensor,
        *,
        swap: bool,
        detected: list[list[tuple[str, float]]] | None = None,
    ) -> list[str]:
        """Captions naming the ImageNet tagger's objects: the object slots of a decoder
        trained with `--object-slots` filled, and with `swap` (`GenerationConfig.name_objects`)
        unseen object words swapped. A recognizer trained on caption words (`captioner train
        recognizer --caption-objects`) fills typed slots with its words instead. Without
        either, slots say their kind's common word ("object" for untyped slots). Articles
        then agree with the words put in ("an apron", "blue jeans"). `detected`: the
        detector's words when the caller already has them (`_detected`)."""
        from captioner.tagwords import agree_articles, fill_slots, fill_typed_slots, name_objects

        found = detected if detected is not None else self._detected(pooled)
        if found is not None:  # a caption-word detector
            filled = [fill_typed_slots(fill_slots(c.split(" "), []), [], detected=d)
                      for c, d in zip(captions, found)]  # fmt: skip
        elif self.recognizer is None or len(self.recognizer.config.labels) != IMAGENET_CLASSES:
            filled = [fill_typed_slots(fill_slots(c.split(" "), []), []) for c in captions]
        else:
            values, indices = self.recognizer.probabilities(pooled).topk(NAMING_TOP_K, dim=-1)
            filled = []
            for caption, v, i in zip(captions, values, indices):
                tags = list(zip(i.tolist(), v.tolist()))
                words = fill_typed_slots(fill_slots(caption.split(" "), tags), tags)
                filled.append(name_objects(words, tags) if swap else words)
        return [" ".join(agree_articles(words)) for words in filled]


def _attention_maps(tokens: list[int], alphas: Tensor | None, vocab: Vocabulary):
    if alphas is None:
        return None
    n = alphas.size(-1)
    side = math.isqrt(n)
    if side * side != n:
        return None
    return [
        (vocab.itos[t], alphas[i].reshape(side, side).float().numpy()) for i, t in enumerate(tokens)
    ]


def _hub_like(name: str) -> bool:
    """Whether a missing OWNER/NAME may be a hub id (not /x, ./x or ~/x: local paths)."""
    return not name.startswith(("/", ".", "~", "\\")) and not Path(name).is_absolute()


def _bundled_names() -> str:
    names = sorted(p.name for p in BUNDLED_DIR.glob("*") if (p / ckpt.CONFIG).is_file())
    return ", ".join(names) or "default"
