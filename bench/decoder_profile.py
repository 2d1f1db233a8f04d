"""Where the caption search's time goes, with and without skipping finished rows (issue 25).

    python bench/decoder_profile.py --model default            # 64 synthetic 1024x768 JPEGs
    python bench/decoder_profile.py --model DIR --photos /work/shared/data/flickr8k/Images

One PyTorch thread (as `captioner label` runs the search), beam 3, batch 32. The encoder
features are computed once; then `captioner.decoding.generate` runs over them twice per
round, computing every row (as before issue 25) and skipping the rows of finished and dead
beams (today's default), alternating, `--rounds` times; the best round of each counts. Each
part of the search is timed by wrapping it:

- attention: `SoftAttention` (query product, keys + query, sigmoid, scores, softmax, context)
- gate: the gate's product (h -> sigmoid gate on the attended features)
- LSTM: the recurrent cell (its two products and the gate arithmetic)
- output projection: hidden -> vocabulary logits
- copy gate: the concept decoder's copy product (num_concepts > 0 only)
- rest of the step: embedding lookup, concatenations, picking and spreading rows
- log-softmax + processors: `logits_processors.log_probs` (bans, n-gram blocking, dangling words)
- beam bookkeeping: the rest of `generate` (top-k, reordering state and history, ...)

A second pass under torch.profiler splits the same search into the time spent inside ATen
operators (by operator and shape) and the rest: Python and dispatch overhead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import captioner.beam_search as beam_search
import captioner.decoding as decoding
from captioner import Captioner
from captioner.decoding import generate

PARTS = ("attention", "gate", "LSTM", "output projection", "copy gate", "rest of the step",
         "log-softmax + processors", "beam bookkeeping")  # fmt: skip


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, fn, name: str):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t

        return timed


def instrument(decoder, timer: Timer) -> None:
    """Time the decoder's parts (instance attributes: the model itself is unchanged)."""
    parts = {"rnn": "LSTM", "out": "output projection", "gate": "gate", "copy": "copy gate"}
    for attr, name in parts.items():
        module = getattr(decoder, attr, None)
        if module is not None:
            module.forward = timer.wrap(module.forward, name)
    if decoder.attend is not None:
        decoder.attend.forward = timer.wrap(decoder.attend.forward, "attention")
        decoder.attend.some_rows = timer.wrap(decoder.attend.some_rows, "attention")


def search(cap, grid, pooled, config, *, skip: bool, timer: Timer | None = None):
    """generate() over batches of features; skip=False computes every row as before."""
    rows = [0, 0]  # rows computed, rows in the layout
    tokens = []
    for i in range(0, grid.size(0), 32):
        step, state = cap.decoder.start(grid[i : i + 32], pooled[i : i + 32])

        def counted(tokens_, state_, live=None, inner=step):
            rows[1] += tokens_.numel()
            rows[0] += tokens_.numel() if live is None else int(live.sum())
            if live is None:
                return inner(tokens_, state_)
            return inner(tokens_, state_, live=live)

        wrapped = counted if timer is None else timer.wrap(counted, "step")
        wrapped.takes_live = skip and getattr(step, "takes_live", False)
        log_probs = decoding.log_probs  # each search looks it up in its own module
        if timer is not None:
            timed = timer.wrap(log_probs, "log-softmax + processors")
            decoding.log_probs = beam_search.log_probs = timed
        t = time.perf_counter()
        try:
            out = generate(wrapped, state, cap.special_ids, config)
        finally:
            decoding.log_probs = beam_search.log_probs = log_probs
        if timer is not None:
            timer.seconds["generate"] += time.perf_counter() - t
        tokens += out.tokens
    return tokens, rows


def features(cap, args) -> tuple[torch.Tensor, torch.Tensor]:
    if args.photos:
        paths = sorted(Path(args.photos).glob("*.jpg"))[: args.images]
        return encode(cap, paths)
    sys.path.insert(0, str(Path(__file__).parent))
    from label_throughput import make_jpegs  # bench/label_throughput.py

    with tempfile.TemporaryDirectory() as tmp:
        return encode(cap, make_jpegs(Path(tmp), args.images, (1024, 768)))


def encode(cap, paths):
    grids, pools = [], []
    with torch.inference_mode():
        for i in range(0, len(paths), 32):
            g, p = cap.encoder(cap.preprocess(paths[i : i + 32]))
            grids.append(g.clone())
            pools.append(p.clone())
    return torch.cat(grids), torch.cat(pools)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default", help="bundled name or model directory")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--photos", default=None, help="a folder of JPEGs instead of synthetic ones")
    p.add_argument("--beam-size", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--top-ops", type=int, default=12)
    args = p.parse_args()
    cap = Captioner.from_pretrained(args.model, device="cpu", backend="torch")
    grid, pooled = features(cap, args)
    torch.set_num_threads(1)
    config = cap.generation_config(beam_size=args.beam_size)
    n = grid.size(0)
    with torch.inference_mode():
        tokens, _ = search(cap, grid, pooled, config, skip=True)  # warm-up
        best: dict[bool, Timer] = {}
        for _ in range(args.rounds):
            for skip in (False, True):
                timer = Timer()
                instrument(cap.decoder, timer)
                search(cap, grid, pooled, config, skip=skip, timer=timer)
                for m in ("rnn", "out", "gate", "copy", "attend"):  # unwrap
                    mod = getattr(cap.decoder, m, None)
                    if mod is not None:
                        mod.__dict__.pop("forward", None)
                        mod.__dict__.pop("some_rows", None)
                if skip not in best or timer.seconds["generate"] < best[skip].seconds["generate"]:
                    best[skip] = timer
        _, rows_all = search(cap, grid, pooled, config, skip=False)
        _, rows_live = search(cap, grid, pooled, config, skip=True)
    words = sum(map(len, tokens)) / n
    print(f"# torch {torch.__version__}, 1 thread; model {args.model}; {n} images, batch 32, "
          f"beam {args.beam_size}, {words:.1f} words per caption; rows computed: "
          f"{rows_live[0] / rows_all[0]:.2f} of before")  # fmt: skip
    print("| part | every row: ms/image | share | skipping finished rows: ms/image | share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    table = {}
    for skip, timer in best.items():
        s = dict(timer.seconds)
        step_parts = sum(s.get(k, 0.0) for k in PARTS[:5])
        s["rest of the step"] = s["step"] - step_parts
        s["log-softmax + processors"] = s.get("log-softmax + processors", 0.0)
        s["beam bookkeeping"] = s["generate"] - s["step"] - s["log-softmax + processors"]
        table[skip] = s
    for part in (*PARTS, "generate"):
        cells = []
        for skip in (False, True):
            s = table[skip]
            cells += [
                f"{1000 * s.get(part, 0.0) / n:.2f}",
                f"{s.get(part, 0.0) / s['generate']:.0%}",
            ]
        label = "**total (images/s)**" if part == "generate" else part
        if part == "generate":
            cells[1] = f"{n / table[False]['generate']:.1f}/s"
            cells[3] = f"{n / table[True]['generate']:.1f}/s"
        print(f"| {label} | " + " | ".join(cells) + " |")
    profile_ops(cap, grid, pooled, config, args.top_ops)


def profile_ops(cap, grid, pooled, config, top: int) -> None:
    """ATen operators vs the rest (Python, dispatch), skipping finished rows."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        t = time.perf_counter()
        search(cap, grid, pooled, config, skip=True)
        wall = time.perf_counter() - t
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t = time.perf_counter()
            search(cap, grid, pooled, config, skip=True)
            profiled = time.perf_counter() - t
    events = prof.key_averages(group_by_input_shape=True)
    total_self = sum(e.self_cpu_time_total for e in events) / 1e6
    print(f"\nunder torch.profiler (skipping finished rows): {profiled:.2f} s wall, "
          f"{total_self:.2f} s inside ATen operators ({total_self / profiled:.0%}); the rest, "
          f"{1 - total_self / profiled:.0%}, is Python and dispatch (unprofiled wall: "
          f"{wall:.2f} s)")  # fmt: skip
    print("| operator | input shapes | calls | self ms/image | share of wall |")
    print("| --- | --- | ---: | ---: | ---: |")
    n = grid.size(0)
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        shapes = str(e.input_shapes).replace("|", "/")[:70]
        print(f"| {e.key} | {shapes} | {e.count} | {e.self_cpu_time_total / 1e3 / n:.3f} | "
              f"{e.self_cpu_time_total / 1e6 / profiled:.1%} |")  # fmt: skip


if __name__ == "__main__":
    main()
