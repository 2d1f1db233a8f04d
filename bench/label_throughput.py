"""Throughput of `captioner label` against its floor and a naive loop, in one run.

    python bench/label_throughput.py                     # synthetic realistic-size captioner
    python bench/label_throughput.py --model default     # the bundled model (or a directory)
    python bench/label_throughput.py --rss               # peak RSS, 1,000 vs 10,000 images

Measured on the same synthetic photo-like JPEGs and the same model:
- encoder only, on pre-decoded tensors (the floor): PyTorch eager, channels-last, ONNX Runtime
- caption decoder only (beam search on one batch of features, `captioner.decoding.generate`
  as every caller runs it): the float decoder and its int8 copy
- the full `label` pipeline (decode in workers + encoder + beam search + tags + sentiment +
  fsync'ed JSONL), with the float and the int8 decoder
- a naive loop: `Captioner.describe([path])` one image at a time, PyTorch eager
- decode time of 12-megapixel JPEGs with and without JPEG draft mode

The synthetic model (`--model synthetic`) is EfficientNet-Lite0 (ImageNet weights, offline)
+ a random decoder of the default size (embed 256, hidden 512, attention 256, vocabulary
--vocab) + the ImageNet tagger + a random sentiment model. A random decoder rarely emits
<end>, so every caption runs to --max-length words: the decoder numbers are a worst case.
"""

from __future__ import annotations

import argparse
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


def rate(fn, n: int, repeats: int = 2) -> float:
    """Best images/s over `repeats` runs of fn() that processes n images."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def encoder_rates(cap: Captioner, pixels: torch.Tensor, batch: int, cache: str) -> dict:
    from captioner.onnx_backend import load_onnx_encoder, onnx_available

    enc = cap.encoder
    chunks = list(pixels.split(batch))
    out = {}
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
        onnx_enc = load_onnx_encoder(enc, cache_dir=cache)
        onnx_enc(chunks[0][:2])
        out["encoder only, ONNX Runtime"] = rate(lambda: [onnx_enc(c) for c in chunks], len(pixels))
    return out


def decoder_rates(cap: Captioner, pixels: torch.Tensor, beam: int, max_length: int) -> dict:
    if cap.decoder is None:
        return {}
    with torch.inference_mode():
        grid, pooled = cap.encoder(pixels)
    dec, n = cap.decoder, pixels.size(0)
    config = cap.generation_config(beam_size=beam, max_length=max_length)

    def search(decoder):
        return generate(*decoder.start(grid, pooled), cap.special_ids, config)

    q = quantize_decoder(dec)
    with torch.inference_mode(), torch_threads(1):  # as LabelEngine runs them on CPU
        runs = {
            "decoder only (1 thread), float": lambda: search(dec),
            "decoder only (1 thread), int8": lambda: search(q),
        }
        out = {name: rate(fn, n) for name, fn in runs.items()}
        a, b = search(dec).tokens, search(q).tokens
    out["_int8_same_caption_fraction"] = sum(x == y for x, y in zip(a, b)) / n
    out["_mean_caption_words"] = sum(map(len, a)) / n
    return out


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


def pipeline_rate(cap, folder, *, backend, int8, batch, workers, beam, max_length, cache):
    eng = LabelEngine(
        cap,
        EngineOptions(
            backend=backend,
            generation=GenerationConfig(beam_size=beam, max_length=max_length),
            int8_decoder=int8,
            onnx_cache=cache,
        ),
    )
    out = Path(folder).parent / "bench-labels.jsonl"
    best = 0.0
    for _ in range(2):
        s = label_folders(
            [folder], eng, LabelOptions(out=out, overwrite=True, batch_size=batch, workers=workers)
        )
        assert s.labelled == s.total, s
        best = max(best, s.rate)
    return best


def naive_rate(
    spec: str, vocab: int, paths: list[Path], beam: int, max_length: int, threads: int
) -> float:
    """Captioner.describe one image at a time (fresh model: eager, contiguous tensors)."""
    cap = load_model(spec, vocab, "cpu")
    with torch_threads(threads):
        cap.describe([paths[0]], beam_size=beam, max_length=max_length)
        t = time.perf_counter()
        for p in paths:
            cap.describe([p], beam_size=beam, max_length=max_length)
        return len(paths) / (time.perf_counter() - t)


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="synthetic", help="synthetic | default | model dir")
    p.add_argument("--vocab", type=int, default=5000, help="synthetic decoder vocabulary")
    p.add_argument("--images", type=int, default=192)
    p.add_argument("--size", default="1024x768", help="size of the generated JPEGs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--beam-size", type=int, default=3)
    p.add_argument("--max-length", type=int, default=20)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu | cuda: where the label pipeline runs")
    p.add_argument("--naive", type=int, default=24, help="images for the naive loop")
    p.add_argument("--big", type=int, default=6, help="12 MP JPEGs for the decode test")
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
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{usable_cores()} usable CPUs; {args.images} JPEGs {w}x{h}; batch {args.batch_size}, "
        f"beam {args.beam_size}, max length {args.max_length}; model {args.model}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "onnx")
        folder = Path(tmp) / "photos"
        paths = make_jpegs(folder, args.images, (w, h))
        cap = load_model(args.model, args.vocab, "cpu")
        pixels = cap.preprocess(paths)  # pre-decoded: the encoder-only floor
        rows = encoder_rates(cap, pixels, args.batch_size, cache)
        rows.update(decoder_rates(cap, pixels[: args.batch_size], args.beam_size, args.max_length))
        extra = {k: rows.pop(k) for k in list(rows) if k.startswith("_")}
        common = dict(
            batch=args.batch_size, beam=args.beam_size, max_length=args.max_length, cache=cache
        )
        decoders = {"float": False, "int8": True} if cap.decoder is not None else {"float": False}
        for kind, int8 in decoders.items():
            rows[
                f"model only, sequential (engine.describe on pre-decoded images, {kind} decoder)"
            ] = model_rate(cap, paths, int8=int8, **common)
        for kind, int8 in decoders.items():
            rows[f"label pipeline (auto backend, {kind} decoder)"] = pipeline_rate(
                cap, folder, backend="auto", int8=int8, workers=args.workers, **common
            )
        for threads in sorted({1, usable_cores()}, reverse=True):
            rows[f"naive loop (describe one image at a time, eager, {threads} threads)"] = (
                naive_rate(
                    args.model,
                    args.vocab,
                    paths[: args.naive],
                    args.beam_size,
                    args.max_length,
                    threads,
                )
            )
        if args.big:
            rows.update(big_jpeg_decode(Path(tmp) / "big", args.big, cap.encoder.image_size))
    floor = max(v for k, v in rows.items() if k.startswith("encoder only"))
    naive = max(v for k, v in rows.items() if k.startswith("naive loop"))
    print("| measurement | images/s | / fastest encoder-only | / fastest naive loop |")
    print("| --- | ---: | ---: | ---: |")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} | {v / floor:.2f} | {v / naive:.1f} |")
    for k, v in extra.items():
        print(f"{k.strip('_').replace('_', ' ')}: {v:.2f}")


if __name__ == "__main__":
    main()
