"""Scoring for `captioner eval` (captioner.cli.evaluate): a dataset split, real decoding.

    captioner eval --model DIR --dataset scenes --split test [--beam-size 3] [--limit N] [--json]

Caption datasets: BLEU-1..4, METEOR (when Java is available), ROUGE-L, CIDEr-D, plus scene
precision / recall / F1 when the dataset has a `scene` column (the synthetic scene world).
Sentiment datasets (`uci-sentiment`, `sentiment-csv:...`, ...): accuracy and per-class
precision / recall / F1. Captions always come from greedy or beam search, never from
teacher-forced outputs. The helpers here are shared with training-time validation.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.pipelines.sentiment_eval import evaluate_sentiment  # noqa: F401 (re-exported)
from captioner.text import Vocabulary

log = logging.getLogger(__name__)


def is_sentiment_spec(spec: str) -> bool:
    """Whether `spec` names a sentiment corpus (`captioner.data.spec.dataset_kind`)."""
    from captioner.data.spec import dataset_kind

    return dataset_kind(spec) == "sentiment"


@torch.no_grad()
def decode_grids(
    decoder,
    vocab: Vocabulary,
    grids: Tensor,
    *,
    generation: GenerationConfig | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    **decoding: Any,
) -> list[str]:
    """Captions for encoder grids (n, N, C) (e.g. cached features), searched as `generation`
    (default: beam 3, max_length 20) with `decoding` (GenerationConfig fields) applied."""
    config = dataclasses.replace(generation or GenerationConfig(), **decoding)
    ids = SpecialIds.from_vocab(vocab)
    was_training = decoder.training
    decoder.eval()
    out: list[str] = []
    for i in range(0, grids.size(0), batch_size):
        grid = grids[i : i + batch_size].to(device, non_blocking=True).float()  # (B, N, C)
        step, state = decoder.start(grid, grid.mean(dim=1))
        out.extend(vocab.decode(t) for t in generate(step, state, ids, config).tokens)
    decoder.train(was_training)
    return out


def caption_scores(
    references: Sequence[Sequence[str]],
    hypotheses: Sequence[str],
    *,
    meteor: bool = True,
    scenes: Sequence[str] | None = None,
) -> dict[str, float]:
    """COCO caption metrics (0-1 scale) plus scene precision/recall/F1 when `scenes` given."""
    try:
        from captioner.metrics import score
    except ImportError:  # captioner.metrics not installed yet: pycocoevalcap's Python scorers
        score = _pycoco_score

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets but {len(hypotheses)} hypotheses")
    refs = {str(i): list(r) for i, r in enumerate(references)}
    hyps = {str(i): h for i, h in enumerate(hypotheses)}
    scores = {k: float(v) for k, v in score(refs, hyps, meteor=meteor).items()}
    if scenes is not None:
        from captioner.data.scenes import scene_score

        s = scene_score(list(scenes), list(hypotheses))
        scores.update({k: float(s[k]) for k in ("scene_precision", "scene_recall", "scene_f1")})
    return scores


def _pycoco_score(refs: dict, hyps: dict, *, meteor: bool = True) -> dict[str, float]:
    """BLEU-1..4, ROUGE-L, CIDEr-D from pycocoevalcap's pure-Python scorers (no METEOR)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from captioner.text import tokenize

    gts = {k: [" ".join(tokenize(r)) for r in v] for k, v in refs.items()}
    res = {k: [" ".join(tokenize(h))] for k, h in hyps.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)}
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    return out


def caption_stats(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str]
) -> dict[str, float]:
    """How finished and varied captions read: the share ending in a dangling word (a, the,
    of, with...: target 0), mean length in words beside the references' mean, and the share
    of distinct captions. With 5 or more references per image, also the share of photos
    whose main object (a COCO object kind 3 references name, people aside) the caption
    names (`captioner.metrics.objects.main_object_named`)."""
    from captioner.metrics.objects import main_object_named
    from captioner.text import DANGLING_WORDS, tokenize

    hyp_tokens = [tokenize(h) for h in hypotheses]
    ref_lengths = [len(tokenize(r)) for refs in references for r in refs]
    n = max(1, len(hyp_tokens))
    stats = {
        "dangling_end": sum(bool(t) and t[-1] in DANGLING_WORDS for t in hyp_tokens) / n,
        "empty": sum(not t for t in hyp_tokens) / n,
        "mean_length": sum(map(len, hyp_tokens)) / n,
        "reference_mean_length": sum(ref_lengths) / max(1, len(ref_lengths)),
        "distinct": len(set(hypotheses)) / n,
    }
    if references and min(len(r) for r in references) >= 5:
        stats.update(main_object_named(references, hypotheses))
    return stats


def evaluate_captions(
    model, split, *, generation: GenerationConfig | None = None, batch_size: int = 32,
    meteor: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Caption every image of a dataset split with `model` (a Captioner) and score it;
    `generation`: how to search (default: the model's own settings)."""
    from captioner.pipelines.runstate import progress

    start = time.perf_counter()
    generation = model.generation_config(generation)
    hyps: list[str] = []
    images = split.select_columns(["image"])
    for i in progress(range(0, len(split), batch_size), enabled=True, desc="captioning"):
        chunk = images[i : i + batch_size]["image"]  # decode one batch of images at a time
        hyps += model.caption(chunk, generation=generation, batch_size=batch_size)
    seconds = time.perf_counter() - start
    scenes = split["scene"] if "scene" in split.column_names else None
    scores = caption_scores(split["captions"], hyps, meteor=meteor, scenes=scenes)
    return {
        "n": len(split),
        "decoding": {
            "method": generation.search,
            "beam_size": generation.beam_size,
            "max_length": generation.max_length,
        },  # fmt: skip
        "scores": scores,
        "stats": caption_stats(split["captions"], hyps),
        "seconds": round(seconds, 2),
        "examples": [
            {
                "image_id": split[i]["image_id"],
                "caption": hyps[i],
                "references": split[i]["captions"],
            }
            for i in range(min(5, len(hyps)))
        ],
    }


if __name__ == "__main__":
    from captioner.cli import run_command

    sys.exit(run_command("eval", sys.argv[1:]))
