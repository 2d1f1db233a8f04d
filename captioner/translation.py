"""Using a translator: load / save its model directory, translate texts, find one by language.

A translator directory is a captioner model directory whose `config.json` has only the
`translator` section (`captioner.model_config.CaptionerConfig`), its weights under
`translator.*` in `model.safetensors`, and its subword model in `subwords.model`:

    TranslationModel.load("my-en-de").translate(["a dog runs on the grass"])
    find_translator("de")             # the bundled captioner/models/translate-en-de
    available_languages()             # [("en", "English"), ...] for a language picker

English stays the default everywhere: `lang="en"` never needs a translator.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from captioner import checkpoint as ckpt
from captioner.decoding import GenerationConfig, generate
from captioner.errors import CaptionerError
from captioner.subwords import FILENAME as SUBWORDS_FILE
from captioner.subwords import Subwords
from captioner.translate import EOS_ID, SPECIAL_IDS, Translator, TranslatorConfig

log = logging.getLogger(__name__)
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech"}  # Multi30k's
SOURCE = "en"  # captions are written in English
BUNDLED_DIR = Path(__file__).parent / "models"  # = captioner.api.BUNDLED_DIR (no api import)
MAX_SUBWORDS_BYTES = 16 * 1024 * 1024
# Chosen on Multi30k val (first 500 sentences, EN->DE bundle): raw log-probability ranking and
# trigram blocking gave BLEU 31.3 against 30.3 for length penalty 1.0 without blocking.
DEFAULT_GENERATION = GenerationConfig(
    beam_size=4, length_penalty=0.0, no_repeat_ngram_size=3, avoid_dangling=False
)


class UnknownLanguageError(CaptionerError, ValueError):
    """A language code translation does not know."""


class TranslatorNotFoundError(CaptionerError, FileNotFoundError):
    """No translator for a language pair (none bundled and none given)."""


def check_language(code: str, *, what: str = "language") -> str:
    """`code` lower-cased when it is one of `LANGUAGES`, else an `UnknownLanguageError`."""
    low = str(code).strip().lower()
    if low not in LANGUAGES:
        known = ", ".join(f"{k} ({v})" for k, v in LANGUAGES.items())
        raise UnknownLanguageError(f"unknown {what} {code!r}: translation knows {known}")
    return low


def bundled_dir(tgt: str, src: str = SOURCE) -> Path:
    return BUNDLED_DIR / f"translate-{src}-{tgt}"


def train_command(tgt: str, src: str = SOURCE) -> str:
    return (f"captioner train translate --dataset multi30k:DIR --src {src} --tgt {tgt} "
            f"--out translate-{src}-{tgt}")  # fmt: skip


class TranslationModel:
    """A `Translator` with its subwords on a device: `translate(texts) -> texts`."""

    def __init__(self, model: Translator, subwords: Subwords, *, device=None, name: str = ""):
        if len(subwords) != model.config.vocab_size:
            raise ValueError(
                f"{len(subwords)} subwords, but the translator has {model.config.vocab_size}"
            )
        self.device = torch.device(device or "cpu")
        self.model, self.subwords = model.to(self.device).eval(), subwords
        self.config: TranslatorConfig = model.config
        self.name = name or f"translate-{self.config.src_lang}-{self.config.tgt_lang}"

    @property
    def pair(self) -> tuple[str, str]:
        return self.config.src_lang, self.config.tgt_lang

    def encode_sources(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ids (B, S) padded with 0 (each ending with </s>), lengths (B,)."""
        cut = self.config.max_source_length - 1
        seqs = [ids[:cut] + [EOS_ID] for ids in self.subwords.encode(texts)]
        lengths = torch.tensor([len(s) for s in seqs])
        src = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
        for i, s in enumerate(seqs):
            src[i, : len(s)] = torch.tensor(s)
        return src, lengths

    @torch.inference_mode()
    def translate(
        self,
        texts: str | Sequence[str],
        *,
        generation: GenerationConfig | None = None,
        batch_size: int = 64,
        **overrides,
    ) -> list[str]:
        """Texts (one or many) -> translations, searched by the package's one `generate`
        (default: beam 4; max_length None = 2 x the longest source + 10 subwords)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        config = dataclasses.replace(generation or DEFAULT_GENERATION, **overrides)
        out: list[str] = []
        for i in range(0, len(texts), batch_size):
            src, lengths = self.encode_sources(texts[i : i + batch_size])
            cfg = config
            if cfg.max_length is None:
                cfg = dataclasses.replace(cfg, max_length=2 * int(lengths.max()) + 10)
            step, state = self.model.start(src.to(self.device), lengths)
            found = generate(step, state, SPECIAL_IDS, cfg)
            out.extend(self.subwords.decode(t) for t in found.tokens)
        return out

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write the translator's model directory (weights in `dtype`, default float32)."""
        from captioner.model_config import CaptionerConfig

        config = CaptionerConfig(translator=self.config, name=self.name).to_dict()
        tensors = ckpt.prefixed(self.model.state_dict(), "translator")
        if dtype is not None:
            tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        return ckpt.save_model_dir(directory, config=config, tensors=tensors,
                                   extra_bytes={SUBWORDS_FILE: self.subwords.to_bytes()})  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path, *, device=None) -> TranslationModel:
        """Load a translator directory strictly; every problem is a `CheckpointError` naming
        the file at fault."""
        from captioner.model_config import CaptionerConfig, check_consumed, load_strict
        from captioner.modelcheck import load_model_dir
        from captioner.noinit import empty_modules

        directory = Path(directory)
        raw, tensors = load_model_dir(directory)
        config = CaptionerConfig.from_dict(raw, source=str(directory / ckpt.CONFIG))
        if config.translator is None:
            raise ckpt.CheckpointError(
                f"{directory / ckpt.CONFIG}: not a translator (no 'translator' section)"
            )
        weights = str(directory / ckpt.WEIGHTS)
        with empty_modules():  # no random init: load_strict assigns the stored tensors
            model = Translator(config.translator)
        load_strict(model, tensors, "translator", source=weights)
        check_consumed(tensors, {"translator"}, source=weights)
        path = directory / SUBWORDS_FILE
        proto = ckpt.read_model_bytes(directory, SUBWORDS_FILE, limit=MAX_SUBWORDS_BYTES)
        try:
            subwords = Subwords(proto, source=str(path))
        except ValueError as e:
            raise ckpt.CheckpointError(str(e)) from None
        if len(subwords) != config.translator.vocab_size:
            raise ckpt.CheckpointError(
                f"{path}: {len(subwords)} subwords, but the weights were trained with "
                f"{config.translator.vocab_size}; the file belongs to another model"
            )
        return cls(model.float(), subwords, device=device, name=config.name)


def find_translator(
    tgt: str, *, src: str = SOURCE, path: str | Path | None = None, device=None
) -> TranslationModel:
    """The translator from `src` to `tgt`: the directory `path` when given (its languages
    must match), else the bundled `captioner/models/translate-SRC-TGT`. A missing one is a
    `TranslatorNotFoundError` that says how to train it."""
    src, tgt = check_language(src, what="source language"), check_language(tgt)
    if path is None:
        path = bundled_dir(tgt, src)
        if not (path / ckpt.CONFIG).is_file():
            raise TranslatorNotFoundError(
                f"no {src.upper()}->{tgt.upper()} translator bundled (looked for {path}): "
                f"train one with `{train_command(tgt, src)}` and pass it with --translator "
                "DIR (translator=DIR in Python)"
            )
    found = TranslationModel.load(path, device=device)
    if found.pair != (src, tgt):
        raise UnknownLanguageError(
            f"{path}: translates {found.pair[0]}->{found.pair[1]}, not {src}->{tgt}"
        )
    return found


def available_languages(src: str = SOURCE) -> list[tuple[str, str]]:
    """(code, name) of the languages captions can be written in now: English and every
    language with a bundled translator (what a language picker offers)."""
    out = [(src, LANGUAGES[src])]
    for code, name in LANGUAGES.items():
        if code != src and (bundled_dir(code, src) / ckpt.CONFIG).is_file():
            out.append((code, name))
    return out


def translate_captions(captions: Sequence[str | None], translator: TranslationModel, **kw):
    """Translations of `captions` (None stays None), in one batched search."""
    todo = [i for i, c in enumerate(captions) if c]
    done = translator.translate([captions[i] for i in todo], **kw) if todo else []
    out: list[str | None] = [None] * len(captions)
    for i, text in zip(todo, done):
        out[i] = text
    return out


__all__ = [
    "LANGUAGES", "TranslationModel", "TranslatorNotFoundError", "UnknownLanguageError",
    "available_languages", "check_language", "find_translator", "translate_captions",
]  # fmt: skip


def use_translator(captioner, lang: str, translator=None):
    """`Captioner.use_translator`: load (or take) the EN->`lang` translator and keep it on
    `captioner.translators[lang]`; "en" needs none."""
    lang = check_language(lang)
    if lang == SOURCE:
        return None
    if not isinstance(translator, TranslationModel):
        translator = find_translator(lang, path=translator, device=captioner.device)
    elif translator.pair != (SOURCE, lang):
        raise UnknownLanguageError(
            f"{translator.name} translates {translator.pair}, not en->{lang}"
        )
    captioner.translators[lang] = translator
    return translator


def translations_of(captioner, captions: Sequence[str | None], lang: str) -> list:
    """Per caption, {lang: translation} (None for English or a missing caption)."""
    lang = check_language(lang)
    if lang == SOURCE:
        return [None] * len(captions)
    translator = captioner.translators.get(lang) or use_translator(captioner, lang)
    done = translate_captions(captions, translator)
    return [None if c is None else {lang: t} for c, t in zip(captions, done)]
