"""`captioner eval`: score a model on a dataset split with real decoding.

    captioner eval --model DIR --dataset scenes --split test [--beam-size 3] [--limit N] [--json]

Caption datasets: BLEU-1..4, METEOR (when Java is available), ROUGE-L, CIDEr-D, plus scene
precision / recall / F1 when the dataset has a `scene` column (the synthetic scene world).
Sentiment datasets (`uci-sentiment`, `sentiment-csv:...`, ...): accuracy and per-class
precision / recall / F1. Captions always come from greedy or beam search, never from
teacher-forced outputs. The helpers here are shared with training-time validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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

SENTIMENT_PREFIXES = ("uci-sentiment", "sentiment-csv", "sentiment-", "sst2", "imdb", "neutral:")


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
    of distinct captions."""
    from captioner.text import DANGLING_WORDS, tokenize

    hyp_tokens = [tokenize(h) for h in hypotheses]
    ref_lengths = [len(tokenize(r)) for refs in references for r in refs]
    n = max(1, len(hyp_tokens))
    return {
        "dangling_end": sum(bool(t) and t[-1] in DANGLING_WORDS for t in hyp_tokens) / n,
        "empty": sum(not t for t in hyp_tokens) / n,
        "mean_length": sum(map(len, hyp_tokens)) / n,
        "reference_mean_length": sum(ref_lengths) / max(1, len(ref_lengths)),
        "distinct": len(set(hypotheses)) / n,
    }


def is_sentiment_spec(spec: str) -> bool:
    return spec.lower().startswith(SENTIMENT_PREFIXES)


def evaluate_captions(
    model, split, *, beam_size: int = 3, max_length: int | None = None,
    batch_size: int = 32, meteor: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Caption every image of a dataset split with `model` (a Captioner) and score it."""
    from captioner.pipelines.runstate import progress

    start = time.perf_counter()
    generation = model.generation_config(beam_size=beam_size, max_length=max_length)
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
            "beam_size": beam_size,
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="captioner eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="model directory, bundled name or hub id")
    p.add_argument("--dataset", required=True, help="dataset spec (scenes, tuxpaint, ...)")
    p.add_argument("--split", default="test", help="split to score (default: test)")
    p.add_argument("--beam-size", type=int, default=3, help="1 = greedy (default: 3)")
    p.add_argument("--max-length", type=int, default=None, help="longest caption in words")
    p.add_argument("--limit", type=int, default=None, help="score only the first N items")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx"),
        help="encoder runtime: auto = ONNX Runtime on CPU when installed (default: auto)",
    )
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from captioner.api import Captioner
    from captioner.pipelines.runstate import resolve_device

    if args.beam_size < 1:
        _parser().error(f"--beam-size must be >= 1, got {args.beam_size}")
    device = resolve_device(args.device)
    from captioner.onnx_backend import OnnxBackendError

    model = Captioner.from_pretrained(args.model, device=device)
    try:
        model.use_backend(args.backend)
    except OnnxBackendError as e:
        print(f"captioner eval: {e}", file=sys.stderr)
        return 2
    sentiment = is_sentiment_spec(args.dataset)
    if sentiment:
        from captioner.data import load_sentiment_dataset as load
    else:
        from captioner.data import load_caption_dataset as load
    dsd = load(args.dataset)
    if args.split not in dsd:
        print(f"captioner eval: {args.dataset} has no split {args.split!r} "
              f"(splits: {', '.join(dsd)})", file=sys.stderr)  # fmt: skip
        return 2
    split = dsd[args.split]
    if args.limit:
        split = split.select(range(min(args.limit, len(split))))
    if sentiment:
        if model.sentiment_model is None:
            print(f"captioner eval: model {args.model} has no sentiment head", file=sys.stderr)
            return 2
        result = evaluate_sentiment(model, split)
    else:
        if model.decoder is None:
            print(f"captioner eval: model {args.model} has no caption decoder", file=sys.stderr)
            return 2
        result = evaluate_captions(
            model, split, beam_size=args.beam_size, max_length=args.max_length,
            batch_size=args.batch_size, meteor=not args.no_meteor,
        )  # fmt: skip
    result = {"model": str(args.model), "dataset": args.dataset, "split": args.split, **result}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_table(result))
    return 0


def _table(result: dict[str, Any]) -> str:
    lines = [f"model {result['model']}  dataset {result['dataset']}  split {result['split']}"
             f"  items {result['n']}"]  # fmt: skip
    if "decoding" in result:
        d = result["decoding"]
        lines.append(
            f"decoding {d['method']}  beam_size {d['beam_size']}  max_length {d['max_length']}"
        )
    width = max(map(len, [*result["scores"], *result.get("stats", {})]))
    lines += [f"  {k:<{width}}  {v:.4f}" for k, v in result["scores"].items()]
    lines += [f"  {k:<{width}}  {v:.4f}" for k, v in result.get("stats", {}).items()]
    for name, c in result.get("per_class", {}).items():
        lines.append(f"  {name:<{width}}  P {c['precision']:.3f}  R {c['recall']:.3f}"
                     f"  F1 {c['f1']:.3f}  n {c['support']}")  # fmt: skip
    for ex in result.get("examples", []):
        lines.append(f"  {ex['image_id']}: {ex['caption']!r}  (ref: {ex['references'][0]!r})")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
