"""The bundled photo captioner: its Flickr8k recipe, its scores and its caption statistics.

    python -m captioner.pipelines.release --only default --flickr8k ../shared/data/flickr8k

`release` calls these steps: cross-entropy training of the EfficientNet-Lite0 + soft-attention
LSTM on Flickr8k train with cached frozen features (every setting was chosen on Flickr8k dev),
then self-critical fine-tuning (CIDEr-D reward) from the best cross-entropy epoch, then
scoring on Flickr8k test (1,000 images, 5 references, beam 3, COCO caption metrics).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the corpora sit beside a checkout (../shared/data): from the working directory, then
# from the repository (editable installs).
FLICKR8K_CANDIDATES = (
    Path("../shared/data/flickr8k"),
    REPO_ROOT.parent / "shared" / "data" / "flickr8k",
)
TOKEN_FILE = "Flickr8k.token.txt"

XE_ARGS = [
    "--epochs", "6",
    "--batch-size", "64",
    "--lr", "6e-4",
    "--embed-dim", "512",
    "--hidden-dim", "512",
    "--attention-dim", "256",
    "--dropout", "0.5",
    "--label-smoothing", "0.1",
    "--min-count", "5",
    "--max-length", "20",
    "--eval-limit", "500",
    "--beam-size", "3",
    "--keep-checkpoints", "2",
    "--threads", "1",
]  # fmt: skip
SCST_ARGS = [
    "--epochs", "4",
    "--batch-size", "32",
    "--lr", "1e-5",  # 5e-5 lost 0.04 dev CIDEr-D in its first epoch (captions shorter)
    "--samples", "5",
    "--baseline", "mean",
    "--max-length", "20",
    "--eval-limit", "500",
    "--beam-size", "3",
    "--threads", "1",
]  # fmt: skip
QUICK_ARGS = ["--epochs", "1", "--limit", "64", "--eval-limit", "16"]
# The everyday step (`captioner.pipelines.train_everyday`), from the Flickr8k bundle; settings
# chosen on the COCO dev photos and Flickr8k dev.
EVERYDAY_ARGS = [
    "--epochs", "10",
    "--batch-size", "128",
    "--lr", "5e-4",
    "--warmup", "0.02",
    "--text-per-epoch", "40000",
    "--threads", "1",
    "--log-every", "20",
]  # fmt: skip
QUICK_EVERYDAY = ["--epochs", "1", "--limit", "40", "--text-limit", "2000",
                  "--text-per-epoch", "200", "--flickr-eval", "20"]  # fmt: skip
# The bundle's decoding defaults, chosen on Flickr8k dev (1,000 images, beam 3, cross-entropy
# model): trigram blocking +0.002 BLEU-4 / +0.003 CIDEr-D and no "a red shirt and a red
# shirt"; beam 5 and length penalty 0.5 traded distinct or CIDEr-D for BLEU.
GENERATION = {"no_repeat_ngram_size": 3}


class MissingData(SystemExit):
    """A corpus the release needs is not where it was looked for (exit message)."""


def find_flickr8k(given: str | Path | None = None) -> Path:
    """The Flickr8k folder (with `Flickr8k.token.txt`, the split lists and the images):
    `given`, else `../shared/data/flickr8k`. A clear exit message when it is missing."""
    return find_corpus(
        given, FLICKR8K_CANDIDATES, TOKEN_FILE,
        "release: Flickr8k not found (looked for {marker} in {looked}). Give --flickr8k "
        "DIR: the folder with Flickr8k.token.txt, Flickr_8k.{{train,dev,test}}Images.txt and "
        "the photos, or --only scenes to rebuild only the scene-world model.",
    )  # fmt: skip


def find_corpus(given, candidates, marker: str, missing: str) -> Path:
    """The corpus folder holding `marker`: `given`, else the first of `candidates`; a
    `MissingData` exit with `missing` (formatted with {marker} and {looked}) otherwise."""
    folders = [Path(given).expanduser()] if given else list(candidates)
    for folder in folders:
        if (folder / marker).is_file():
            return folder.resolve()
    looked = ", ".join(str(c) for c in folders)
    raise MissingData(missing.format(marker=marker, looked=looked))


def train(work: Path, flickr8k: Path, device: str, *, quick: bool = False) -> Path:
    """Cross-entropy training, then SCST from its best epoch; returns the SCST model dir."""
    from captioner.pipelines import train_captioner, train_scst
    from captioner.pipelines.steps import train_step

    dataset = ["--dataset", f"flickr8k:{flickr8k}", "--name", "default"]
    quick_args = QUICK_ARGS if quick else []
    xe = train_step("photos cross-entropy", train_captioner.main, work / "photos-xe", device,
                    [*dataset, *XE_ARGS, *quick_args])  # fmt: skip
    return train_step("photos SCST", train_scst.main, work / "photos-scst", device,
                      [*dataset, "--init", str(xe), *SCST_ARGS, *quick_args])  # fmt: skip


def train_everyday(
    work: Path, init: Path, data: Path, flickr8k: Path, device: str, *, quick: bool = False
) -> Path:
    """The everyday-photo decoder, started from the Flickr8k bundle `init` (its captioner,
    tagger and sentiment model), on Flickr8k and the text-only corpora under `data`."""
    from captioner.pipelines import train_everyday
    from captioner.pipelines.steps import train_step

    argv = ["--init", str(init), "--data", str(data), "--flickr8k", str(flickr8k),
            "--name", "default", *EVERYDAY_ARGS]  # fmt: skip
    return train_step("everyday", train_everyday.main, work / "everyday", device,
                      [*argv, *(QUICK_EVERYDAY if quick else [])])  # fmt: skip


def score(model_dir: Path, flickr8k: Path, *, beam_size: int = 3, limit: int | None = None):
    """Flickr8k test scores (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) and caption statistics."""
    from captioner.api import Captioner
    from captioner.data import load_caption_dataset
    from captioner.evaluation import evaluate_captions

    model = Captioner.from_pretrained(model_dir)
    model.use_backend("auto")
    split = load_caption_dataset(f"flickr8k:{flickr8k}")["test"]
    if limit:
        split = split.select(range(min(limit, len(split))))
    r = evaluate_captions(model, split, generation=model.generation_config(beam_size=beam_size))
    log.info("release: flickr8k/test %s %s", r["scores"], r["stats"])
    return {"n": r["n"], "decoding": r["decoding"], **r["scores"], **r["stats"]}


# Real photographs outside Flickr8k that ship with scikit-image (public domain / permissive;
# see skimage.data), for the README's table of captions.
EXAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "clock", "coins",
                  "stereo_motorcycle", "moon", "hubble_deep_field", "grass", "brick")  # fmt: skip


def example_table(model: str = "default", *, beam_size: int = 3) -> str:
    """A Markdown table: each scikit-image photo, its caption, its top tag (>= 5 %) and the
    caption's sentiment (descriptions should come out neutral)."""
    import numpy as np
    import skimage.data

    from captioner.api import Captioner

    cap = Captioner.from_pretrained(model)
    images = []
    for name in EXAMPLE_PHOTOS:
        image = getattr(skimage.data, name)()
        images.append(np.asarray(image[0] if isinstance(image, tuple) else image))
    found = cap.describe(images, beam_size=beam_size, tags=1, min_tag_score=0.05)
    rows = ["| skimage.data photo | caption | top tag | caption sentiment |", "|---|---|---|---|"]
    for name, d in zip(EXAMPLE_PHOTOS, found):
        tag = f"{d.tags[0][0]} {d.tags[0][1]:.2f}" if d.tags else "-"
        mood = f"{d.sentiment[0]} {d.sentiment[1]:.2f}" if d.sentiment else "-"
        rows.append(f"| {name} | {d.caption} | {tag} | {mood} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m captioner.pipelines.photos [MODEL]: the README table
    import argparse

    from captioner.errors import ModelNotFoundError

    ap = argparse.ArgumentParser(
        prog="python -m captioner.pipelines.photos",
        description="Print the Markdown table of the scikit-image photos' captions, top tags "
        "and caption sentiment (docs/results.md) for a model.",
    )
    ap.add_argument("model", nargs="?", default="default",
                    help="model directory or bundled name (default: default)")  # fmt: skip
    ap.add_argument("--beam-size", type=int, default=3, help="beam width (default: 3)")
    args = ap.parse_args()
    try:
        print(example_table(args.model, beam_size=args.beam_size))
    except ModelNotFoundError as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
