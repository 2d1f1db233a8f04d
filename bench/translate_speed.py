"""Translation speed on CPU: one caption at a time (the latency goal: median under 50 ms at
beam 4) and batched throughput, through the one search every caller uses.

    python bench/translate_speed.py --translator DIR --data ../shared/data/multi30k
    python bench/translate_speed.py --translator DIR --n 200 --threads 1

Sentences are the first --n English sentences of the Multi30k test split (test_2016_flickr)
when --data is given, else a few built-in captions repeated. Prints the median and 90th
percentile latency at batch 1, its ratio to the 50 ms goal, and sentences per second for
each batch size.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from captioner.translation import TranslationModel, find_translator

GOAL_MS = 50.0
CAPTIONS = [
    "a dog runs on the grass",
    "a man in a red shirt is riding a bike down the street",
    "two children are playing in the water at the beach",
    "a woman sits on a bench reading a book",
]


def sentences(args: argparse.Namespace) -> list[str]:
    if args.data:
        from captioner.data.multi30k import load_multi30k

        return list(load_multi30k(args.data, tgt=args.to, limit=args.n)["test"]["source"])
    return (CAPTIONS * (args.n // len(CAPTIONS) + 1))[: args.n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--translator", default=None, help="translator directory (default: bundled)")
    p.add_argument("--to", default="de", help="target language (default: de)")
    p.add_argument("--data", default=None, help="Multi30k folder (default: built-in captions)")
    p.add_argument("--n", type=int, default=100, help="sentences (default: 100)")
    p.add_argument("--beam", type=int, default=4, help="beam size (default: 4)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--batches", default="1,16,64", help="batch sizes (default: 1,16,64)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.translator:
        model = TranslationModel.load(args.translator)
    else:
        model = find_translator(args.to)
    texts = sentences(args)
    model.translate(texts[:2], beam_size=args.beam)  # warm-up
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        model.translate([text], beam_size=args.beam)
        latencies.append(1000 * (time.perf_counter() - t0))
    median = statistics.median(latencies)
    p90 = statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else median
    print(f"{model.name}: {len(texts)} sentences, beam {args.beam}, {args.threads} thread(s)")
    print(f"batch 1: median {median:.1f} ms, p90 {p90:.1f} ms; median / {GOAL_MS:.0f} ms goal "
          f"= {median / GOAL_MS:.2f}")  # fmt: skip
    for size in (int(b) for b in args.batches.split(",")):
        t0 = time.perf_counter()
        model.translate(texts, beam_size=args.beam, batch_size=size)
        rate = len(texts) / (time.perf_counter() - t0)
        print(f"batch {size:>3}: {rate:7.1f} sentences/s ({rate * median / 1000:.1f}x batch 1)")


if __name__ == "__main__":
    main()
