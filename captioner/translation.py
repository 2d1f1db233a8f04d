"""Using a translator: load / save its model directory, translate texts, find one by language.
The network itself (encoder, attentive decoder, loss) is `captioner.translator_net`.

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
from dataclasses import dataclass
from pathlib import Path

import torch

from captioner import checkpoint as ckpt
from captioner.decoding import GenerationConfig, generate
from captioner.errors import CaptionerError
from captioner.models import BUNDLED_DIR
from captioner.subwords import FILENAME as SUBWORDS_FILE
from captioner.subwords import Subwords
from captioner.translator_net import EOS_ID, SPECIAL_IDS, Translator, TranslatorConfig

log = logging.getLogger(__name__)
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech"}  # Multi30k's
SOURCE = "en"  # captions are written in English
MAX_SUBWORDS_BYTES = 16 * 1024 * 1024
# Chosen on Multi30k val (first 500 sentences, EN->DE bundle): raw log-probability ranking and
# trigram blocking gave BLEU 31.3 against 30.3 for length penalty 1.0 without blocking.
DEFAULT_GENERATION = GenerationConfig(
    beam_size=4, length_penalty=0.0, no_repeat_ngram_size=3, avoid_dangling=False
)


@dataclass(frozen=True)
class Rescoring:
    """Attention-based reranking of a beam's finished translations (opt-in: 0 = off).

    Beam search (`captioner.decoding.generate`) keeps its K best hypotheses per sentence;
    each is then ranked by its search score (sum of log p, / length ** length_penalty)

        + coverage_penalty * sum_j log(min(1, c_j))      (Wu et al. 2016: a source subword
                                                          the translation never attended to
                                                          costs; a dropped word)
        - repeat_penalty * sum_j max(0, c_j - 1)         (attention spent on a source subword
                                                          beyond one full pass: a word said
                                                          twice, as a doubled verb)

    where c_j is the attention the hypothesis gave source subword j over all its words
    (the final </s> of the source left out). Greedy search has one hypothesis: nothing to
    rerank. Nothing changes inside the search itself."""

    coverage_penalty: float = 0.0
    repeat_penalty: float = 0.0

    def __post_init__(self) -> None:
        for name in ("coverage_penalty", "repeat_penalty"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def active(self) -> bool:
        return bool(self.coverage_penalty or self.repeat_penalty)

    def describe(self) -> dict[str, float]:
        return {"coverage_penalty": self.coverage_penalty, "repeat_penalty": self.repeat_penalty}

    def bonus(self, alpha: torch.Tensor | None, source_length: int) -> float:
        """The attention term of one hypothesis: alpha (words, source positions) -> a number
        added to its search score (0 when off or without attention)."""
        if not self.active or alpha is None or alpha.numel() == 0:
            return 0.0
        real = max(1, int(source_length) - 1)  # the source's subwords without its </s>
        cover = alpha[:, :real].float().sum(0)
        out = 0.0
        if self.coverage_penalty:
            out += self.coverage_penalty * float(cover.clamp(1e-6, 1.0).log().sum())
        if self.repeat_penalty:
            out -= self.repeat_penalty * float((cover - 1.0).clamp(min=0.0).sum())
        return out


DEFAULT_RESCORING = Rescoring()  # off: chosen on Multi30k val, see docs/translation.md


def rerank(found, source_lengths: Sequence[int], k: int, rescoring: Rescoring) -> list[int]:
    """Per sentence, the index (into `found.tokens`, k rows a sentence, best first) of the
    hypothesis `rescoring` ranks first; the search's own choice when rescoring is off."""
    picks = []
    for b, length in enumerate(source_lengths):
        rows = range(b * k, (b + 1) * k)
        if not rescoring.active:
            picks.append(rows[0])
            continue
        total = [found.scores[r] + rescoring.bonus(found.alphas[r], length) for r in rows]
        picks.append(max(rows, key=lambda r: total[r - b * k]))
    return picks


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
        rescoring: Rescoring | None = None,
        **overrides,
    ) -> list[str]:
        """Texts (one or many) -> translations, searched by the package's one `generate`
        (default: beam 4; max_length None = 2 x the longest source + 10 subwords), the
        beam's hypotheses reranked by `rescoring` (default `DEFAULT_RESCORING`).
        `coverage_penalty=` / `repeat_penalty=` override `rescoring`'s fields, other
        keywords the `GenerationConfig`'s."""
        return [self.subwords.decode(t) for t in self.search(
            texts, generation=generation, batch_size=batch_size, rescoring=rescoring, **overrides
        )]  # fmt: skip

    @torch.inference_mode()
    def search(
        self,
        texts: str | Sequence[str],
        *,
        generation: GenerationConfig | None = None,
        batch_size: int = 64,
        rescoring: Rescoring | None = None,
        every_hypothesis: bool = False,
        **overrides,
    ) -> list:
        """`translate` before detokenising: the chosen subword ids per text. With
        `every_hypothesis`, per batch instead (the search's `Decoded` with all beam_size
        hypotheses of each text, best first; the texts' source lengths), so that a sweep
        reranks them offline (`captioner.pipelines.translate_eval.sweep`)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        picked = {k: overrides.pop(k) for k in ("coverage_penalty", "repeat_penalty")
                  if k in overrides}  # fmt: skip
        rescoring = dataclasses.replace(rescoring or DEFAULT_RESCORING, **picked)
        config = dataclasses.replace(generation or DEFAULT_GENERATION, **overrides)
        beam = config.search == "beam"
        k = config.beam_size if beam and (rescoring.active or every_hypothesis) else 1
        out: list = []
        for i in range(0, len(texts), batch_size):
            src, lengths = self.encode_sources(texts[i : i + batch_size])
            cfg = config
            if cfg.max_length is None:
                cfg = dataclasses.replace(cfg, max_length=2 * int(lengths.max()) + 10)
            step, state = self.model.start(src.to(self.device), lengths)
            found = generate(step, state, SPECIAL_IDS, cfg, n_best=k)
            if every_hypothesis:
                out.append((found, lengths.tolist()))
                continue
            picks = rerank(found, lengths.tolist(), k, rescoring)
            out.extend(found.tokens[r] for r in picks)
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
    "DEFAULT_RESCORING", "LANGUAGES", "Rescoring", "TranslationModel", "TranslatorNotFoundError", "UnknownLanguageError",
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
