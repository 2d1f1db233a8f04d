"""Throughput of `captioner label` against its compute bound and a naive loop, in one run.

    python bench/label_throughput.py --model default     # the bundled model (or a directory)
    python bench/label_throughput.py                     # synthetic realistic-size captioner
    python bench/label_throughput.py --rss               # peak RSS, 1,000 vs 10,000 images

Measured on the same synthetic photo-like JPEGs and the same model, side by side:
- each stage alone, on one core: JPEG decode + resize (`load_batch`, as a decoding worker
  runs it), the encoder on pre-decoded tensors (ONNX Runtime; also with every core, as
  `label` runs it; `--torch-encoders` adds PyTorch eager and channels-last), the caption
  search (`captioner.decoding.generate` as every caller runs it, batches of --batch-size,
  one PyTorch thread: the float decoder computing every row as before issue 25, the float
  decoder as today, its int8 copy), the heads (tags + sentiment + records)
- the compute bound: the images/s the usable cores reach if always busy, cores / the summed
  one-core cost per image of decode + encoder + search + heads (float and int8 search)
- `captioner label` (decoding workers + encoder + search + heads + fsync'ed JSONL), with the
  float and the int8 decoder, best of two runs
- a naive loop: `Captioner.describe([path])` one image at a time, PyTorch eager, on 1 thread
  and on every core (the faster counts)
- `--big N`: decode time of 12-megapixel JPEGs with and without JPEG draft mode

and prints label / bound and label / naive, with the load average before and after (the
machine may be shared: compare only numbers from one run).

The synthetic model (`--model synthetic`) is EfficientNet-Lite0 (ImageNet weights, offline)
+ a random decoder of the default size (embed 256, hidden 512, attention 256, vocabulary
--vocab) + the ImageNet tagger + a random sentiment model. A random decoder rarely emits
<end>, so every caption runs to --max-length words: the decoder numbers are a worst case.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from captioner import Captioner
from captioner.cpus import usable_cores
from captioner.decoders import quantize_decoder
from captioner.decoding import GenerationConfig, generate
from captioner.imageio import open_image
from captioner.labeling import LabelEngine, LabelOptions, label_folders
from captioner.labeling.engine import EngineOptions, torch_threads


def photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth random colour field + noise: compresses like a photo, not like flat colour."""
    small = rng.integers(0, 255, (max(h // 64, 2), max(w // 64, 2), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    noise = rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))


def make_jpegs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = [photo(rng, *size) for _ in range(min(n, 16))]  # vary, but generate fast
    paths = []
    for i in range(n):
        path = folder / f"img{i:05d}.jpg"
        base[i % len(base)].rotate(90 * (i // len(base) % 4)).save(path, quality=88)
        paths.append(path)
    return paths


def synthetic_model(vocab_size: int, device: str = "cpu", seed: int = 0) -> Captioner:
    from captioner.decoders import CaptionDecoder, DecoderConfig
    from captioner.encoders import build_encoder
    from captioner.recognition import RecognitionHead
    from captioner.sentiment import SentimentConfig, SentimentModel
    from captioner.text import Vocabulary

    torch.manual_seed(seed)
    enc = build_encoder("efficientnet_lite0", weights="default")
    vocab = Vocabulary.build([" ".join(f"w{i}" for i in range(vocab_size - 4))])
    dec = CaptionDecoder(DecoderConfig(vocab_size=len(vocab), feature_dim=enc.out_channels))
    svocab = Vocabulary.build([" ".join(f"w{i}" for i in range(2000))])
    sent = SentimentModel(SentimentConfig(vocab_size=len(svocab)))
    return Captioner(
        encoder=enc,
        decoder=dec,
        vocab=vocab,
        recognizer=RecognitionHead.from_imagenet(enc),
        sentiment=sent,
        sentiment_vocab=svocab,
        device=device,
        name="synthetic",
        max_length=20,
    )


def load_model(spec: str, vocab: int, device: str) -> Captioner:
    if spec == "synthetic":
        return synthetic_model(vocab, device)
    return Captioner.from_pretrained(spec, device=device, backend="torch")  # LabelEngine picks


class Rate(float):
    """Images/s, with the CPU time the run took per image (`cpu_ms`: this process and its
    finished children, so every thread and decoding worker counts)."""

    cpu_ms: float | None = None
    idle: float | None = None  # share of the machine's CPU time left idle during the run
    waiting: float | None = None  # share of the main process's runnable time spent waiting


def cpu_seconds() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def machine_idle() -> tuple[float, float] | None:
    """(idle, total) CPU jiffies of the whole machine so far (Linux), else None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, all but guest


def idle_share(before: tuple[float, float] | None) -> float | None:
    after = machine_idle()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


class ThreadTimes:
    """Seconds this process's threads spent on a CPU and runnable but waiting for one
    (Linux /proc/self/task/*/schedstat), sampled while a run goes on (threads come and go)."""

    def __init__(self) -> None:
        import threading

        self.first: dict[str, tuple[int, int]] = {}
        self.last: dict[str, tuple[int, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> None:
        for task in Path("/proc/self/task").glob("*"):
            try:
                on, waiting = (int(x) for x in (task / "schedstat").read_text().split()[:2])
            except (OSError, ValueError):
                continue
            self.first.setdefault(task.name, (on, waiting))
            self.last[task.name] = (on, waiting)

    def _poll(self) -> None:
        while not self.stop.wait(0.05):
            self._sample()

    def __enter__(self) -> ThreadTimes:
        self._sample()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    def seconds(self) -> tuple[float, float]:
        on = sum(self.last[t][0] - self.first[t][0] for t in self.last) / 1e9
        waiting = sum(self.last[t][1] - self.first[t][1] for t in self.last) / 1e9
        return on, waiting


def rate(fn, n: int, repeats: int = 2) -> Rate:
    """Best images/s over `repeats` runs of fn() that processes n images."""
    best, cpu = float("inf"), 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), cpu_seconds()
        fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, cpu = wall, cpu_seconds() - c
    out = Rate(n / best)
    out.cpu_ms = 1000 * cpu / n
    return out


def encoder_rates(
    cap: Captioner, raw_pixels: torch.Tensor, batch: int, cache: str, torch_too: bool
) -> dict:
    """Encoder only, on pre-decoded images: ONNX Runtime on 1 thread (what each lane of
    `label` runs) and on every core, normalising uint8 pixels first as `label` does; with
    torch_too PyTorch eager and channels-last on the normalised tensors as well."""
    from captioner.onnx_backend import load_onnx_encoder, onnx_available

    enc = cap.encoder
    pixels = enc.transform.normalise(raw_pixels)
    chunks = list(pixels.split(batch))
    out = {}
    if torch_too:
        with torch.inference_mode():
            enc(chunks[0][:2])
            out["encoder only, PyTorch eager"] = rate(lambda: [enc(c) for c in chunks], len(pixels))
            enc_cl = enc.to(memory_format=torch.channels_last)
            cl = [c.contiguous(memory_format=torch.channels_last) for c in chunks]
            out["encoder only, PyTorch channels-last"] = rate(
                lambda: [enc_cl(c) for c in cl], len(pixels)
            )
            enc.to(memory_format=torch.contiguous_format)
    if onnx_available():
        # as `label` runs it: the workers' uint8 pixels normalised, then ONNX Runtime
        spec = enc.transform
        raw = list(raw_pixels.split(batch))
        for threads in sorted({1, usable_cores()}):
            onnx_enc = load_onnx_encoder(enc, cache_dir=cache, threads=threads)
            onnx_enc(chunks[0][:2])
            with torch_threads(threads):
                out[f"encoder only, ONNX Runtime, {threads} thread(s)"] = rate(
                    lambda enc=onnx_enc: [enc(spec.normalise(c)) for c in raw], len(pixels)
                )
    return out


def search_rates(cap: Captioner, grid, pooled, beam: int, max_length: int, batch: int) -> dict:
    """Caption search only (`captioner.decoding.generate` as every caller runs it) on one
    PyTorch thread, as LabelEngine runs it: the float decoder computing every row (as before
    issue 25: the step without `takes_live`), the float decoder (default) and its int8 copy."""
    dec, n = cap.decoder, grid.size(0)
    config = cap.generation_config(beam_size=beam, max_length=max_length)

    def search(decoder, every_row: bool = False):
        tokens = []
        for i in range(0, n, batch):
            step, state = decoder.start(grid[i : i + batch], pooled[i : i + batch])
            if every_row:  # the same step without `takes_live`
                step = lambda tokens, state, step=step: step(tokens, state)  # noqa: E731
            tokens += generate(step, state, cap.special_ids, config).tokens
        return tokens

    q = quantize_decoder(dec)
    with torch.inference_mode(), torch_threads(1):
        runs = {
            "caption search only (1 thread), float, every row (before)": lambda: search(dec, True),
            "caption search only (1 thread), float": lambda: search(dec),
            "caption search only (1 thread), int8": lambda: search(q),
        }
        out = {name: rate(fn, n) for name, fn in runs.items()}
        a, b = search(dec), search(q)
        assert a == search(dec, True), "skipping finished rows changed a caption"
    out["_int8_same_caption_fraction"] = sum(x == y for x, y in zip(a, b)) / n
    out["_mean_caption_words"] = sum(map(len, a)) / n
    out["_captions"] = [cap.vocab.decode(t) for t in a]
    return out


def decode_rate(cap: Captioner, paths: list[Path], batch: int) -> float:
    """JPEG decode + resize to the encoder's input, in this process (a decoding worker's
    job: `labeling.loader.load_batch`, draft mode included)."""
    from captioner.labeling.engine import pixel_spec
    from captioner.labeling.loader import load_batch

    spec, folder = pixel_spec(cap.encoder), str(paths[0].parent)
    items = [(0, p.name) for p in paths]
    return rate(
        lambda: [
            load_batch([folder], items[i : i + batch], spec) for i in range(0, len(items), batch)
        ],
        len(items),
    )


def heads_rate(cap: Captioner, pooled: torch.Tensor, captions: list[str], batch: int) -> float:
    """Tags + caption sentiment + records from features and captions, 1 thread (the rest of
    `LabelEngine.heads` after the search)."""
    from captioner.api import Description

    n = pooled.size(0)

    def heads():
        for i in range(0, n, batch):
            part = captions[i : i + batch]
            tags = (cap.recognizer.predict(pooled[i : i + batch], top_k=5, threshold=0.05)
                    if cap.recognizer is not None else [None] * len(part))  # fmt: skip
            moods = cap.sentiment(part) if cap.sentiment_model is not None else [None] * len(part)
            [Description(c, t, m).to_record() for c, t, m in zip(part, tags, moods)]

    with torch.inference_mode(), torch_threads(1):
        return rate(heads, n)


def compute_bound(rates: dict[str, float], cores: int) -> float:
    """Images/s that `cores` cores reach if every core is always busy with this work: cores /
    (the summed per-image cost, core-seconds, of the stages, each measured at `rates` images/s
    on one core)."""
    return cores / sum(1.0 / r for r in rates.values())


def model_rate(cap, paths, *, int8, batch, beam, max_length, cache) -> float:
    """engine.describe on pre-decoded uint8 batches: the pipeline minus reading files."""
    from captioner.labeling.loader import load_batch

    eng = LabelEngine(
        cap,
        EngineOptions(
            backend="auto",
            generation=GenerationConfig(beam_size=beam, max_length=max_length),
            int8_decoder=int8,
            onnx_cache=cache,
        ),
    )
    folder = str(paths[0].parent)
    items = [(0, p.name) for p in paths]
    batches = [
        load_batch([folder], items[i : i + batch], eng.spec).pixels
        for i in range(0, len(items), batch)
    ]
    eng.describe(batches[0][:2])
    return rate(lambda: [eng.describe(b) for b in batches], len(paths))


def pipeline_rate(
    cap, folder, *, backend, int8, batch, workers, beam, max_length, cache, lanes=None
):
    eng = LabelEngine(
        cap,
        EngineOptions(
            backend=backend,
            generation=GenerationConfig(beam_size=beam, max_length=max_length),
            int8_decoder=int8,
            onnx_cache=cache,
            lanes=lanes,
        ),
    )
    out = Path(folder).parent / "bench-labels.jsonl"
    best, cpu_ms, idle, waiting = 0.0, 0.0, None, None
    for _ in range(2):
        c, machine = cpu_seconds(), machine_idle()
        with ThreadTimes() as times:
            s = label_folders(
                [folder], eng,
                LabelOptions(out=out, overwrite=True, batch_size=batch, workers=workers),
            )  # fmt: skip
        assert s.labelled == s.total, s
        if s.rate > best:
            best, cpu_ms, idle = s.rate, 1000 * (cpu_seconds() - c) / s.total, idle_share(machine)
            on, wait = times.seconds()
            waiting = wait / (on + wait) if on + wait > 0 else None
    result = Rate(best)
    result.cpu_ms, result.idle, result.waiting = cpu_ms, idle, waiting
    return result


def naive_rate(
    spec: str, vocab: int, paths: list[Path], beam: int, max_length: int, threads: int
) -> Rate:
    """Captioner.describe one image at a time (fresh model: eager, contiguous tensors)."""
    cap = load_model(spec, vocab, "cpu")
    with torch_threads(threads):
        cap.describe([paths[0]], beam_size=beam, max_length=max_length)

        def loop():
            for p in paths:
                cap.describe([p], beam_size=beam, max_length=max_length)

        return rate(loop, len(paths), repeats=1)


def big_jpeg_decode(folder: Path, n: int, size: int) -> dict:
    paths = make_jpegs(folder, n, (4000, 3000), seed=1)  # 12 MP
    out = {}
    for label, draft in (
        ("12 MP JPEG decode + resize, full", None),
        ("12 MP JPEG decode + resize, draft", size),
    ):
        t = time.perf_counter()
        for p in paths:
            open_image(p, draft_size=draft).resize((size, size), Image.BICUBIC)
        out[label] = n / (time.perf_counter() - t)
    return out


def device_bench(args, w: int, h: int) -> None:
    """Pipeline vs model-only on an accelerator (PyTorch backend)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        paths = make_jpegs(folder, args.images, (w, h))
        cap = load_model(args.model, args.vocab, args.device)
        common = dict(beam=args.beam_size, max_length=args.max_length, cache=None)
        rows = {
            "model only (pre-decoded images)": model_rate(
                cap, paths, int8=False, batch=args.batch_size, **common
            )
        }
        rows["label pipeline"] = pipeline_rate(
            cap,
            folder,
            backend="auto",
            int8=False,
            batch=args.batch_size,
            workers=args.workers,
            **common,
        )
    print(f"| {args.device} | images/s |\n| --- | ---: |")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} |")


def percent(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on this platform
        return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="synthetic", help="synthetic | default | model dir")
    p.add_argument("--vocab", type=int, default=5000, help="synthetic decoder vocabulary")
    p.add_argument("--images", type=int, default=192)
    p.add_argument("--search-images", type=int, default=128, help="images for search only")
    p.add_argument("--size", default="1024x768", help="size of the generated JPEGs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--beam-size", type=int, default=3)
    p.add_argument("--max-length", type=int, default=20)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu | cuda: where the label pipeline runs")
    p.add_argument("--naive", type=int, default=24, help="images for the naive loop")
    p.add_argument("--big", type=int, default=0, help="12 MP JPEGs for the draft-mode test")
    p.add_argument("--torch-encoders", action="store_true", help="also PyTorch eager/CL")
    p.add_argument("--one-lane", action="store_true", help="also label with --lanes 1")
    p.add_argument("--rss", action="store_true", help="peak RSS for --rss-counts images")
    p.add_argument("--rss-counts", default="1000,10000")
    p.add_argument("--rss-model", default="default", help="model for --rss (tagger: fast)")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child or args.rss:
        from label_rss import rss_bench, rss_child  # bench/label_rss.py, beside this file

        if args.rss_child:
            return rss_child(args.rss_child, args.model, args.vocab, args.batch_size, args.workers)
        return rss_bench(args, __file__)
    w, h = (int(x) for x in args.size.split("x"))
    if args.device != "cpu":
        return device_bench(args, w, h)
    cores = usable_cores()
    print(
        f"# torch {torch.__version__}, {cores} usable CPUs, load average {load_average()}; "
        f"{args.images} JPEGs {w}x{h}; batch {args.batch_size}, beam {args.beam_size}, max "
        f"length {args.max_length}; model {args.model}"
    )
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "onnx")
        folder = Path(tmp) / "photos"
        paths = make_jpegs(folder, args.images, (w, h))
        cap = load_model(args.model, args.vocab, "cpu")
        with torch_threads(1):
            rows["JPEG decode + resize (1 process)"] = decode_rate(cap, paths, args.batch_size)
        spec = cap.encoder.transform  # pre-decoded: the stages without reading files
        raw = torch.from_numpy(np.stack([spec.pixels(p) for p in paths]))  # uint8 (B, S, S, 3)
        rows.update(encoder_rates(cap, raw, args.batch_size, cache, args.torch_encoders))
        pixels = spec.normalise(raw[: args.search_images])
        extra: dict = {}
        if cap.decoder is not None:
            with torch.inference_mode():
                grid, pooled = cap.encoder(pixels)
            found = search_rates(
                cap, grid, pooled, args.beam_size, args.max_length, args.batch_size
            )
            extra = {k: found.pop(k) for k in list(found) if k.startswith("_")}
            rows.update(found)
            rows["heads: tags + sentiment + records (1 thread)"] = heads_rate(
                cap, pooled, extra.pop("_captions"), args.batch_size
            )
        del pixels, raw
        encoder = max(v for k, v in rows.items() if k.startswith("encoder only, ONNX")
                      and k.endswith(" 1 thread(s)"))  # fmt: skip
        stages = {"decode": rows["JPEG decode + resize (1 process)"], "encoder": encoder}
        stages.update({k: v for k, v in rows.items() if k.startswith("heads")})
        decoders = {"float": False, "int8": True} if cap.decoder is not None else {"": False}
        cpu_sum: dict[str, float] = {}
        for kind in decoders:
            search = (
                {f"search {kind}": rows[f"caption search only (1 thread), {kind}"]} if kind else {}
            )
            rows[f"compute bound on {cores} cores, {kind or 'no'} decoder"] = compute_bound(
                {**stages, **search}, cores
            )
            cpu_costs = [1000 / v.cpu_ms for v in {**stages, **search}.values()]
            extra[f"_compute bound from CPU time, {kind or 'no'} decoder"] = compute_bound(
                dict(enumerate(cpu_costs)), cores
            )
            cpu_sum[kind] = sum(v.cpu_ms for v in {**stages, **search}.values())
        common = dict(
            batch=args.batch_size, beam=args.beam_size, max_length=args.max_length, cache=cache
        )
        for kind, int8 in decoders.items():
            rows[f"`captioner label`, {kind or 'no'} decoder"] = pipeline_rate(
                cap, folder, backend="auto", int8=int8, workers=args.workers, **common
            )
        if args.one_lane:
            rows["`captioner label`, float decoder, 1 lane (as before issue 25)"] = pipeline_rate(
                cap, folder, backend="auto", int8=False, workers=args.workers, lanes=1, **common
            )
        naive = {
            threads: naive_rate(
                args.model,
                args.vocab,
                paths[: args.naive],
                args.beam_size,
                args.max_length,
                threads,
            )  # fmt: skip
            for threads in sorted({1, cores}, reverse=True)
        }
        best = max(naive, key=naive.get)
        rows[f"naive loop: describe([path]) one image at a time ({best} thread(s))"] = naive[best]
        if args.big:
            rows.update(big_jpeg_decode(Path(tmp) / "big", args.big, cap.encoder.image_size))
    naive_rate_ = rows[f"naive loop: describe([path]) one image at a time ({best} thread(s))"]
    print(f"# load average after: {load_average()}")
    print("| measurement | images/s | wall ms x threads / image | CPU ms / image | / naive |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for k, v in rows.items():
        threads = cores if k.startswith("encoder only") and not k.endswith(" 1 thread(s)") else 1
        bound = k.startswith(("compute bound", "`captioner"))
        per = "" if bound else f"{1000 * threads / v:.1f}"
        cpu = getattr(v, "cpu_ms", None)
        cpu_text = "" if cpu is None else f"{cpu:.1f}"
        print(f"| {k} | {v:.1f} | {per} | {cpu_text} | {v / naive_rate_:.2f} |")
    for kind in decoders:
        label = rows[f"`captioner label`, {kind or 'no'} decoder"]
        bound = rows[f"compute bound on {cores} cores, {kind or 'no'} decoder"]
        print(f"{kind or 'no'} decoder: label / compute bound {label / bound:.2f}, "
              f"label / naive loop {label / naive_rate_:.2f}; label kept "
              f"{label * label.cpu_ms / 1000:.2f} of {cores} cores busy, the machine's CPUs "
              f"were idle {percent(label.idle)} of the time and label's threads, when ready "
              f"to run, waited for a CPU {percent(label.waiting)} of the time; label's CPU ms "
              f"per image {label.cpu_ms:.1f} vs the stages' {cpu_sum[kind]:.1f} "
              f"({cpu_sum[kind] / label.cpu_ms:.2f})")  # fmt: skip
    for k, v in extra.items():
        print(f"{k.strip('_').replace('_', ' ')}: {v:.2f}")


if __name__ == "__main__":
    main()
