"""Caption metrics: the COCO scores (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D; `coco_scores`), the METEOR
jar runner (`meteor`), the PTB tokenizer they share (`ptb`, `ptb_rules`) and the scene world's
fact score (`scene_score`, from `captioner.scene_grammar`, which also writes the captions).

    from captioner.metrics import score
    score({"img1": ["a dog runs", "a brown dog"]}, {"img1": "a dog is running"})
"""

from __future__ import annotations

from captioner.metrics.coco_scores import (
    METRIC_NAMES,
    bleu,
    cider_d,
    format_scores,
    rouge_l,
    score,
)
from captioner.metrics.meteor import MeteorScorer, meteor_unavailable_reason
from captioner.metrics.ptb import ptb_tokenize, tokenize_captions
from captioner.scene_grammar import scene_score

__all__ = [
    "METRIC_NAMES",
    "MeteorScorer",
    "bleu",
    "cider_d",
    "format_scores",
    "meteor_unavailable_reason",
    "ptb_tokenize",
    "rouge_l",
    "scene_score",
    "score",
    "tokenize_captions",
]
