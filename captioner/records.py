"""What the captioner says about an image, as values and as records.

`Description` is one image's caption, tags, sentiment (and optional attention maps and
translations); `Description.to_record` gives its record fields and `image_record` the whole
row that `captioner label` journals, `captioner describe --json` prints and the demo's batch
tab exports. `Heads` is the one rule of which heads run, for the API and labeling alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

    from captioner.api import Captioner
    from captioner.text import Vocabulary

SCORE_DIGITS = 4  # scores in records (JSON, CSV, XMP, the demo's table) keep 4 decimals
# tag, describe, label and the demo leave out tags like "plastic bag 0.0014" (one default)
MIN_TAG_SCORE = 0.05


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


def attention_maps(tokens: list[int], alphas: Tensor | None, vocab: Vocabulary):
    """`Description.attention` of one caption: (word, (h, w) map over the square image grid)
    per generated token; None without attention weights or for a grid that is not square."""
    if alphas is None:
        return None
    n = alphas.size(-1)
    side = math.isqrt(n)
    if side * side != n:
        return None
    return [
        (vocab.itos[t], alphas[i].reshape(side, side).float().numpy()) for i, t in enumerate(tokens)
    ]
