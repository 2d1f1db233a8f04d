"""Long sentences and vanishing / exploding gradients: plain RNN vs GRU vs LSTM encoders.

    OMP_NUM_THREADS=1 nice -n 10 taskset -c 1 python bench/rnn_gradients.py   # ~15 min
    python bench/rnn_gradients.py --quick --out-dir /tmp/g   # seconds, a synthetic corpus

Three EN->DE translators that differ only in their (bidirectional) encoder cell, `rnn`,
`gru` or `lstm` (same GRU decoder with Bahdanau attention, same subwords, same seed, same
batches), are trained for `--budget` steps on the first `--limit` Multi30k training pairs.
On the validation split (never test) the script then reports, by source length in words:

1. BLEU (sacrebleu, detokenised, greedy search) of each length bucket;
2. the norm of the gradient of the training loss (token mean over a batch of one bucket's
   sentences) at the first source subword's embedding, at initialisation and after training;
3. the norm of the gradient of the forward encoder's last state (projected on a fixed random
   direction) at the first subword: the recurrence alone, with no attention shortcut;
4. what clipping the global gradient norm to `--clip` does on a batch of the longest
   sentences: it rescales every gradient by one factor, so the first word's share of the
   gradient (first / total) is the same with or without it.

Prints the tables as Markdown and saves `rnn_gradients.png` in `--out-dir` (default docs/)
(both drawn by `rnn_gradients_report.py`, beside this file).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from rnn_gradients_report import markdown, plot  # bench/, beside this file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from captioner.decoding import GenerationConfig
from captioner.pipelines.train_translator import Pairs, collate
from captioner.pipelines.translate_eval import DETOK, bleu_scores
from captioner.subwords import Subwords
from captioner.translation import TranslationModel
from captioner.translator_net import Translator, TranslatorConfig, translation_loss

CELLS = ("rnn", "gru", "lstm")
BUCKETS = ((1, 8), (9, 11), (12, 14), (15, 17), (18, 10_000))  # source words
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"
GREEDY = GenerationConfig(beam_size=1, avoid_dangling=False)


def bucket_name(bucket: tuple[int, int]) -> str:
    lo, hi = bucket
    return f"{lo}+" if hi >= 10_000 else f"{lo}-{hi}"


def bucket_of(text: str) -> int:
    n = len(text.split())
    return next(i for i, (lo, hi) in enumerate(BUCKETS) if lo <= n <= hi)


# ----------------------------------------------------------------------------- data
SUBJECTS = [("a dog", "ein hund"), ("a man", "ein mann"), ("a woman", "eine frau"),
            ("a child", "ein kind"), ("two men", "zwei männer")]  # fmt: skip
VERBS = [("runs on the grass", "läuft auf dem gras"), ("sits on a bench", "sitzt auf einer bank"),
         ("plays in the water", "spielt im wasser"),
         ("rides a red bike", "fährt ein rotes fahrrad")]  # fmt: skip


def synthetic_corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`n` EN/DE pairs of 1-4 clauses joined by "and" (4 to 24 words): a stand-in corpus."""
    rng = random.Random(seed)
    en, de = [], []
    for _ in range(n):
        clauses = [(rng.choice(SUBJECTS), rng.choice(VERBS)) for _ in range(rng.randint(1, 4))]
        en.append(" and ".join(f"{s[0]} {v[0]}" for s, v in clauses) + ".")
        de.append(" und ".join(f"{s[1]} {v[1]}" for s, v in clauses) + ".")
    return en, de


def load_pairs(args) -> dict[str, tuple[list[str], list[str]]] | None:
    """{"train": (en, de), "validation": (en, de)}; None when the Multi30k folder is absent."""
    if args.quick:
        return {"train": synthetic_corpus(200, 0), "validation": synthetic_corpus(80, 1)}
    if not (Path(args.data) / "raw").is_dir():
        return None
    from captioner.data.multi30k import read_pairs

    train = read_pairs(args.data, "train", "en", "de")
    return {"train": tuple(side[: args.limit] for side in train),
            "validation": read_pairs(args.data, "validation", "en", "de")}  # fmt: skip


# ----------------------------------------------------------------------------- training
def build(cell: str, vocab_size: int, args) -> Translator:
    torch.manual_seed(args.seed)  # the same decoder and embeddings for every encoder cell
    d = args.dim
    return Translator(TranslatorConfig(
        vocab_size=vocab_size, embed_dim=d, hidden_dim=d, attention_dim=d, encoder_cell=cell,
        decoder_cell="gru", attention="bahdanau", dropout=0.0, max_source_length=args.max_length,
    ))  # fmt: skip


def train(model: Translator, data: Pairs, args) -> list[float]:
    """`--budget` AdamW steps on shuffled batches (the same order for every cell), each
    gradient clipped to `--clip` (0 = not clipped); returns the global norm of every step."""
    order = random.Random(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    model.train()
    norms, idx = [], []
    for _ in range(args.budget):
        if len(idx) < args.batch_size:
            idx += order.sample(range(len(data)), len(data))
        batch = collate([data[i] for i in idx[: args.batch_size]])
        del idx[: args.batch_size]
        loss = translation_loss(model(batch["src"], batch["lengths"], batch["tgt"]), batch["tgt"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = args.clip if args.clip > 0 else math.inf
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
    return norms


# ----------------------------------------------------------------------------- measures
def bleu_by_bucket(tm: TranslationModel, sources, targets) -> list[float | None]:
    """Detokenised BLEU of each length bucket, then of all sentences (greedy search)."""
    hyps = tm.translate(sources, generation=GREEDY)
    out = []
    for b in range(len(BUCKETS)):
        keep = [i for i, s in enumerate(sources) if bucket_of(s) == b]
        pick = [[xs[i] for i in keep] for xs in (hyps, targets)]
        out.append(bleu_scores(*pick, lang="de")[DETOK] if keep else None)
    return [*out, bleu_scores(hyps, targets, lang="de")[DETOK]]


@contextmanager
def source_embeddings(model: Translator):
    """Keeps the source embeddings (B, S, E) of the next forward pass, gradients retained."""
    kept: list[torch.Tensor] = []

    def hook(_module, _inputs, out):
        if not kept:  # `encode` embeds the source first; later calls embed target tokens
            out.retain_grad()
            kept.append(out)

    handle = (model.src_embed or model.embed).register_forward_hook(hook)
    try:
        yield kept
    finally:
        handle.remove()


def loss_gradients(model: Translator, batch: dict, clip: float) -> dict[str, float]:
    """Mean first-subword gradient norm of the batch loss (and its ratio to the last
    subword's), the global parameter norm, and both after clipping the global norm to `clip`
    (one factor for every gradient)."""
    model.eval()  # no dropout, but gradients flow
    model.zero_grad(set_to_none=True)
    with source_embeddings(model) as kept:
        logits = model(batch["src"], batch["lengths"], batch["tgt"])
    translation_loss(logits, batch["tgt"]).backward()
    grad = kept[0].grad  # (B, S, E)
    rows = torch.arange(grad.size(0))
    last = (batch["lengths"] - 2).clamp(min=0)  # the last subword before </s>
    first = float(grad[:, 0].norm(dim=-1).mean())
    ratio = float((grad[:, 0].norm(dim=-1) / grad[rows, last].norm(dim=-1)).mean())
    total = float(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
                  .norm())  # fmt: skip
    factor = min(1.0, clip / total) if clip > 0 else 1.0
    model.zero_grad(set_to_none=True)
    return {"first": first, "first_to_last": ratio, "total": total, "factor": factor,
            "first_clipped": first * factor, "total_clipped": total * factor}  # fmt: skip


def recurrence_gradient(model: Translator, batch: dict, seed: int) -> float:
    """Mean norm of d(u . forward encoder's last state)/d(first subword's embedding)."""
    x = model.embed(batch["src"]).detach().requires_grad_()  # (B, S, E)
    packed = pack_padded_sequence(x, batch["lengths"], batch_first=True, enforce_sorted=False)
    _, h = model.encoder(packed)
    h = h[0] if isinstance(h, tuple) else h  # an LSTM's (h, c)
    last = h[-2]  # (B, H): the top layer's forward direction, at each sentence's own end
    u = torch.randn(last.size(-1), generator=torch.Generator().manual_seed(seed))
    (last @ (u / u.norm())).sum().backward()
    return float(x.grad[:, 0].norm(dim=-1).mean())


def gradients_by_bucket(model, subwords, sources, targets, args) -> list[dict | None]:
    """Per length bucket (up to --grad-sentences sentences as one batch): the measures."""
    out = []
    for b in range(len(BUCKETS)):
        keep = [i for i, s in enumerate(sources) if bucket_of(s) == b][: args.grad_sentences]
        if not keep:
            out.append(None)
            continue
        pairs = Pairs(subwords, [sources[i] for i in keep], [targets[i] for i in keep],
                      args.max_length)  # fmt: skip
        batch = collate([pairs[i] for i in range(len(pairs))])
        found = loss_gradients(model, batch, args.clip)
        found["recurrence"] = recurrence_gradient(model, batch, args.seed)
        out.append(found)
    return out


# ----------------------------------------------------------------------------- main
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA), help=f"Multi30k folder (default: {DATA})")
    p.add_argument("--budget", type=int, default=450, help="training steps per cell (default: 450)")
    p.add_argument("--limit", type=int, default=20000, help="training pairs (default: 20000)")
    p.add_argument("--dim", type=int, default=128, help="embedding / state size (default: 128)")
    p.add_argument("--vocab-size", type=int, default=4000, help="joint subwords (default: 4000)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default: 3e-3)")
    p.add_argument("--clip", type=float, default=1.0, help="global norm clip (default: 1.0)")
    p.add_argument("--max-length", type=int, default=80, help="subwords kept (default: 80)")
    p.add_argument("--grad-sentences", type=int, default=64, help="per bucket (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--out-dir", default="docs", help="where the plot goes (default: docs)")
    p.add_argument("--quick", action="store_true", help="seconds: synthetic corpus, tiny model")
    args = p.parse_args(argv)
    if args.quick:
        args.budget, args.dim, args.vocab_size, args.grad_sentences = 30, 16, 120, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = load_pairs(args)
    if corpus is None:
        print(f"skipped: no Multi30k folder at {args.data} (expected DATA/raw/train.en.gz; "
              "see ../shared/data/README.md), or run --quick")  # fmt: skip
        return 0
    (src, tgt), (val_src, val_tgt) = corpus["train"], corpus["validation"]
    subwords = Subwords.train(src + tgt, vocab_size=args.vocab_size)
    data = Pairs(subwords, src, tgt, args.max_length)
    print(f"{len(data)} training pairs, {len(val_src)} validation, {len(subwords)} subwords, "
          f"{args.budget} steps of {args.batch_size} per cell, clip {args.clip:g}")  # fmt: skip
    results = {}
    for cell in CELLS:
        model = build(cell, len(subwords), args)
        t0 = time.perf_counter()
        init = gradients_by_bucket(model, subwords, val_src, val_tgt, args)
        norms = train(model, data, args)
        tm = TranslationModel(model, subwords)
        results[cell] = {"init": init, "bleu": bleu_by_bucket(tm, val_src, val_tgt),
                         "trained": gradients_by_bucket(model, subwords, val_src, val_tgt, args)}  # fmt: skip
        clipped = sum(n > args.clip for n in norms) if args.clip > 0 else 0
        print(f"{cell}: {time.perf_counter() - t0:.0f} s, {clipped} of {len(norms)} steps "
              f"clipped, step norm median {sorted(norms)[len(norms) // 2]:.3g}, "
              f"max {max(norms):.3g}")  # fmt: skip
    print()
    names = [bucket_name(b) for b in BUCKETS]
    print(markdown(results, names, clip=args.clip))
    print(f"plot: {plot(results, names, Path(args.out_dir) / 'rnn_gradients.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
