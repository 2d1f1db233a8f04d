"""The scene tab's work: a random scene from the synthetic scene world, its ground truth
captions, and how well a predicted caption states the scene's facts (`scene_score`).

Needs no data and no network: scenes are generated and rendered on the fly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SCORE_KINDS = ("scene", "object", "color", "size", "count", "relation")


@dataclass
class Scene:
    seed: int
    image: Image.Image
    scene_json: str  # the scene graph, as `scene_score` takes it
    captions: list[str]  # ground truth: the canonical caption first, then paraphrases


def scene_world_error() -> str | None:
    """None when `captioner.data.scenes` can be imported, else why not (for the UI)."""
    try:
        import captioner.data.scenes  # noqa: F401
    except ImportError as e:  # the scene world is optional for the rest of the demo
        return f"the scene world (captioner.data.scenes) is not available: {e}"
    return None


def make_scene(seed: int, *, image_size: int = 224, num_captions: int = 5) -> Scene:
    """The scene of `seed`: the same seed always gives the same picture and captions."""
    from captioner.data.scenes import generate_scene, render_scene, scene_captions

    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be between 0 and 2**63 - 1, got {seed}")
    rng = np.random.default_rng(seed)
    graph = generate_scene(rng)
    image = render_scene(graph, image_size, rng)
    return Scene(seed, image, graph.to_json(), scene_captions(graph, rng, n=num_captions))


def score_rows(scene_json: str, caption: str) -> list[list[object]]:
    """[fact kind, precision, recall, F1] rows for one predicted caption of one scene."""
    from captioner.data.scenes import scene_score

    s = scene_score([scene_json], [caption])
    return [
        [
            kind,
            round(s[f"{kind}_precision"], 3),
            round(s[f"{kind}_recall"], 3),
            round(s[f"{kind}_f1"], 3),
        ]
        for kind in SCORE_KINDS
        if f"{kind}_f1" in s
    ]
