"""What constrained beam search (GenerationConfig.slot_min_score) costs: the same images
decoded by the bundled photo model's decoder with plain beam search and with 1 and 2
required words per image, side by side in one run.

    python bench/constrained_search.py
    python bench/constrained_search.py --images 256 --beam 3 --threads 1

The images are the demo's example photos, encoded once and repeated to --images; the required
words are common caption words the plain captions mostly lack ("ball", then "hat"), so each
image pays for its constraints. Prints seconds per run (best of --repeats), the ratio to plain
beam search and how many captions contain the required words.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from captioner.api import Captioner
from captioner.decoding import generate

EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"
WORDS = ("ball", "hat")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="model (default: default)")
    p.add_argument("--images", type=int, default=128, help="images per run (default: 128)")
    p.add_argument("--batch-size", type=int, default=32, help="images a batch (default: 32)")
    p.add_argument("--beam", type=int, default=3, help="beams (per state) (default: 3)")
    p.add_argument("--repeats", type=int, default=3, help="runs per row; best kept (default: 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cap = Captioner.from_pretrained(args.model, device="cpu", backend="torch")
    photos = sorted(EXAMPLES.glob("*.jpg"))
    with torch.inference_mode():
        grid, pooled = cap.encoder(cap.preprocess(photos))
    reps = -(-args.images // len(photos))
    grid, pooled = grid.repeat(reps, 1, 1)[: args.images], pooled.repeat(reps, 1)[: args.images]
    config = cap.generation_config(None, beam_size=args.beam)
    ids = [cap.vocab.stoi[w] for w in WORDS]

    def decode(n_words: int) -> tuple[float, int]:
        best, named = float("inf"), 0
        for _ in range(args.repeats):
            t0, named = time.perf_counter(), 0
            for s in range(0, args.images, args.batch_size):
                g, p = grid[s : s + args.batch_size], pooled[s : s + args.batch_size]
                step, state = cap.decoder.start(g, p)
                wanted = [ids[:n_words]] * len(p) if n_words else None
                out = generate(step, state, cap.special_ids, config, constraints=wanted)
                named += sum(all(i in t for i in ids[:n_words]) for t in out.tokens)
            best = min(best, time.perf_counter() - t0)
        return best, named

    plain, _ = decode(0)
    print(f"{args.images} images, beam {args.beam}, batch {args.batch_size}, "
          f"{args.threads} thread(s), model {args.model}")  # fmt: skip
    print("| search | seconds | x plain | captions with the words |")
    print("|---|---|---|---|")
    print(f"| plain beam search | {plain:.2f} | 1.00 | - |")
    for n in (1, 2):
        seconds, named = decode(n)
        words = " + ".join(WORDS[:n])
        print(f"| {n} required word(s) ({words}) | {seconds:.2f} | {seconds / plain:.2f} | "
              f"{named}/{args.images} |")  # fmt: skip


if __name__ == "__main__":
    main()
