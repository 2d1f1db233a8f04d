"""Pictures and labels for the demo: attention heat-map overlays and Gradio-ready values.

Nothing here imports Gradio, so it is tested (and reusable) without a server.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

# A perceptually ordered dark -> bright ramp (black, purple, red, orange, pale yellow), like
# the "inferno" maps attention figures are usually drawn with.
_RAMP = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32
)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Values in 0..1 (H, W) -> RGB float colours (H, W, 3) on the dark-to-bright ramp."""
    x = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    stops = np.arange(len(_RAMP))
    return np.stack([np.interp(x, stops, _RAMP[:, c]) for c in range(3)], axis=-1)


def upsample_map(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (h, w) attention map -> a smooth (H, W) map in 0..1 for an image of `size` (W, H).

    Bicubic resampling then a Gaussian blur about half a grid cell wide, so the map reads as
    soft blobs rather than the encoder's blocky grid (Show, Attend and Tell draw it so)."""
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"attention map must be 2-D (h, w), got shape {a.shape}")
    a = np.nan_to_num(a - a.min())
    if a.max() > 0:
        a = a / a.max()
    width, height = size
    up = np.asarray(Image.fromarray(a).resize((width, height), Image.BICUBIC))  # float (H, W)
    radius = 0.5 * max(width / a.shape[1], height / a.shape[0])
    # PIL blurs 8-bit images only; 256 levels are plenty for a picture.
    up8 = Image.fromarray(np.clip(up * 255 + 0.5, 0, 255).astype(np.uint8))
    out = np.asarray(up8.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    out = out - out.min()
    return out / out.max() if out.max() > 0 else out


def attention_overlay(
    image: Image.Image, alpha: np.ndarray, *, max_side: int = 256, strength: float = 0.6
) -> Image.Image:
    """Blend the heat map of `alpha` (h, w) over `image` (any RGB PIL image).

    The encoder sees the whole image squashed to a square, so the map is stretched over the
    whole picture. Unattended areas are also dimmed, attended ones keep their colours.
    """
    img = image.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
    m = upsample_map(alpha, img.size)[..., None]  # (H, W, 1)
    pixels = np.asarray(img, dtype=np.float32)  # (H, W, 3)
    dimmed = pixels * (0.35 + 0.65 * m)
    blended = (1 - strength * m) * dimmed + strength * m * heat_colors(m[..., 0])
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))


def attention_gallery(
    image: Image.Image, attention: Sequence[tuple[str, np.ndarray]] | None, **kwargs
) -> list[tuple[Image.Image, str]]:
    """One (overlay, word) pair per generated word, for a `gr.Gallery`."""
    return [(attention_overlay(image, a, **kwargs), word) for word, a in attention or []]


def tags_value(tags: Sequence[tuple[str, float]] | None) -> dict[str, float] | None:
    """[(label, score)] -> the {label: score} a `gr.Label` shows (None clears it; a model
    without a tagger gives None)."""
    return {label: float(score) for label, score in tags or ()} or None


def sentiment_value(sentiment: tuple[str, float] | None) -> dict[str, float] | None:
    return None if sentiment is None else {sentiment[0]: float(sentiment[1])}


def model_card(captioner) -> str:
    """One Markdown line saying what a `Captioner` can do (its heads and their sizes)."""
    parts = [f"**{captioner.name}**", f"encoder `{captioner.encoder.name}`"]
    if captioner.decoder is not None:
        c = captioner.decoder.config
        attention = "soft attention" if c.attention == "soft" else "no attention"
        parts.append(
            f"caption decoder {c.cell.upper()} with {attention}, {len(captioner.vocab):,} words"
        )
    else:
        parts.append("**no caption decoder: tags only**")
    if captioner.recognizer is not None:
        labels = getattr(getattr(captioner.recognizer, "config", None), "labels", None) or []
        parts.append(f"tagger with {len(labels):,} labels")
    if captioner.sentiment_model is not None:
        parts.append("sentiment " + " / ".join(captioner.sentiment_model.config.labels))
    return " · ".join(parts)
