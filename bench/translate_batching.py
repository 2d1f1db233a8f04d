"""Translator training speed: random batches against batches of similar length
(`captioner.pipelines.batching.LengthBatches`, the recipe's `--length-pool 100`), side by side.

    python bench/translate_batching.py --data ../shared/data/multi30k --pairs 6400 --threads 1

Both arms train the same fresh model (the recipe's default sizes) for one pass over the first
--pairs Multi30k EN->DE training pairs, in alternating rounds so that a busy machine slows
both alike. Prints, for each arm, the padded positions per real subword, seconds per pass and
the mean training loss, then the speed-up (random seconds / length seconds).
"""

from __future__ import annotations

import argparse
import time

import torch

from captioner.pipelines.batching import LengthBatches
from captioner.pipelines.train_translator import Pairs, TranslateTrainConfig, build_model, collate
from captioner.subwords import Subwords
from captioner.translator_net import translation_loss


def one_pass(data: Pairs, batches: list[list[int]], vocab: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = build_model(TranslateTrainConfig(dataset="-", out="-"), vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    total, start = 0.0, time.perf_counter()
    for idx in batches:
        b = collate([data[i] for i in idx])
        loss = translation_loss(model(b["src"], b["lengths"], b["tgt"]), b["tgt"],
                                label_smoothing=0.1)  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    return time.perf_counter() - start, total / len(batches)


def padding(data: Pairs, batches: list[list[int]]) -> float:
    real = sum(len(data.src[i]) + len(data.tgt[i]) for b in batches for i in b)
    padded = sum(
        len(b) * (max(len(data.src[i]) for i in b) + max(len(data.tgt[i]) for i in b))
        for b in batches
    )
    return padded / real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="Multi30k folder")
    ap.add_argument("--pairs", type=int, default=6400)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from captioner.data.multi30k import load_multi30k

    train = load_multi30k(args.data, tgt="de", limit=args.pairs)["train"]
    src, tgt = list(train["source"]), list(train["target"])
    subwords = Subwords.train(src + tgt, vocab_size=4000)
    data = Pairs(subwords, src, tgt, max_length=80)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=gen).tolist()
    arms = {
        "random": [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)],
        "length": list(LengthBatches([(len(t), len(s)) for s, t in zip(data.src, data.tgt)],
                                     args.batch_size, pool=100)),  # fmt: skip
    }
    seconds = {k: [] for k in arms}
    losses = {k: [] for k in arms}
    for r in range(args.rounds):
        for name, batches in arms.items():
            s, loss = one_pass(data, batches, len(subwords), seed=r)
            seconds[name].append(s)
            losses[name].append(loss)
            print(f"round {r + 1} {name}: {s:.1f} s, mean loss {loss:.3f}", flush=True)
    print(f"{len(data)} pairs, batch {args.batch_size}, {args.threads} thread(s)")
    for name, batches in arms.items():
        print(f"{name:>7}: {padding(data, batches):.2f} positions per real subword, "
              f"{min(seconds[name]):.1f} s per pass (best of {args.rounds}), "
              f"mean loss {sum(losses[name]) / len(losses[name]):.3f}")  # fmt: skip
    print(f"speed-up: {min(seconds['random']) / min(seconds['length']):.2f}x")


if __name__ == "__main__":
    main()
