"""The bundled caption translators (EN->DE, EN->FR, EN->CS): their Multi30k recipe and their
bundle.

    python -m captioner.pipelines.release --only translators --multi30k ../shared/data/multi30k
    python -m captioner.pipelines.release --only translators --translator-targets cs \
        --translator-epochs 30 --translator-hidden 320 --translator-average 5

For each target language `release` trains a subword bidirectional-GRU encoder + Bahdanau GRU
decoder on Multi30k task 1 train (29,000 caption pairs; every setting chosen on the val split,
greedy BLEU on its first 500 sentences), scores the best epoch (or the average of the last
epochs, when that validates better) on test_2016_flickr at beam 4 (sacrebleu, tokenised and
detokenised), and copies it into `captioner/models/translate-en-XX` with its scores and
model card. Each direction trains in `WORK/translate-en-XX` with a checkpoint every epoch; a
second run of the same command resumes it (`--resume`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from captioner.checkpoint import CONFIG, WEIGHTS
from captioner.model_card import record_scores, write_card
from captioner.subwords import FILENAME as SUBWORDS_FILE

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
MULTI30K_CANDIDATES = (
    Path("../shared/data/multi30k"),
    REPO_ROOT.parent / "shared" / "data" / "multi30k",
)
MARKER = "raw/train.en.gz"  # what marks a Multi30k folder
TARGETS = ("de", "fr", "cs")  # the bundled directions, from English


@dataclass(frozen=True)
class Recipe:
    """The settings of a translator run that the release varies; the rest is `FIXED_ARGS`.

    The default is the recipe of the bundled EN->DE / EN->FR translators (6 epochs, hidden
    256: about 45 minutes a direction on one core, validation BLEU still rising at the end);
    docs/translation.md gives the longer one meant to reach the published level."""

    epochs: int = 6
    hidden: int = 256
    dropout: float = 0.3
    patience: int = 3
    average_last: int = 0  # 0: the best epoch; K: also try the mean of the last K epochs

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.hidden < 1 or self.patience < 0 or self.average_last < 0:
            raise ValueError(f"a translator recipe needs epochs, hidden >= 1, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def args(self) -> list[str]:
        out = ["--epochs", str(self.epochs), "--hidden-dim", str(self.hidden),
               "--dropout", str(self.dropout), "--patience", str(self.patience)]  # fmt: skip
        if self.average_last:
            out += ["--average-last", str(self.average_last)]
        return out


BUNDLED_RECIPE = Recipe()
# Chosen on Multi30k val (first 500 sentences, greedy) for the bundled recipe.
FIXED_ARGS = [
    "--vocab-size", "8000",
    "--embed-dim", "256",
    "--attention", "bahdanau",
    "--label-smoothing", "0.1",
    "--batch-size", "64",
    "--lr", "2e-3",
    "--eval-limit", "500",
    "--save-dtype", "float16",
    "--threads", "1",
]  # fmt: skip
TRANSLATE_ARGS = [*FIXED_ARGS, *BUNDLED_RECIPE.args()]  # the bundled translators' flags
QUICK_ARGS = ["--epochs", "1", "--limit", "300", "--eval-limit", "20", "--vocab-size", "300"]
BUNDLE_FILES = (CONFIG, WEIGHTS, SUBWORDS_FILE)


def find_multi30k(given: str | Path | None = None) -> Path:
    """The Multi30k folder (`raw/SPLIT.LANG.gz`, `tok/`): `given`, else
    `../shared/data/multi30k`. A clear exit message when it is missing."""
    from captioner.pipelines.photos import find_corpus

    return find_corpus(
        given, MULTI30K_CANDIDATES, MARKER,
        "release: Multi30k not found (looked for {marker} in {looked}). Give --multi30k DIR: "
        "the Multi30k task 1 folder (raw/SPLIT.LANG.gz per split and language, tok/).",
    )  # fmt: skip


def train_args(multi30k: Path, tgt: str, recipe: Recipe = BUNDLED_RECIPE, *,
               quick: bool = False) -> list[str]:  # fmt: skip
    """The `captioner train translate` flags of the EN->`tgt` run (without --out)."""
    if tgt not in TARGETS:
        raise ValueError(f"no release recipe for en->{tgt}: the targets are {TARGETS}")
    return ["--dataset", f"multi30k:{multi30k}", "--src", "en", "--tgt", tgt,
            "--name", f"translate-en-{tgt}", *FIXED_ARGS, *recipe.args(),
            *(QUICK_ARGS if quick else [])]  # fmt: skip


def train(work: Path, multi30k: Path, tgt: str, device: str, *, quick: bool = False,
          recipe: Recipe = BUNDLED_RECIPE) -> Path:  # fmt: skip
    """Train (or resume) the EN->`tgt` translator in `work/translate-en-TGT`."""
    from captioner.pipelines import train_translator
    from captioner.pipelines.steps import train_step

    argv = train_args(multi30k, tgt, recipe, quick=quick)
    return train_step(f"translator en-{tgt}", train_translator.main,
                      work / f"translate-en-{tgt}", device, argv)  # fmt: skip


def score(model_dir: Path, multi30k: Path) -> dict:
    """test_2016_flickr BLEU (tokenised and detokenised) of a translator directory, decoded
    the way users get it (`captioner.translation.DEFAULT_GENERATION`: beam 4)."""
    from captioner.data.multi30k import load_multi30k, tokenised_references
    from captioner.pipelines.translate_eval import evaluate_translator
    from captioner.translation import TranslationModel

    model = TranslationModel.load(model_dir)
    tgt = model.config.tgt_lang
    test = load_multi30k(str(multi30k), tgt=tgt)["test"]
    found = evaluate_translator(
        model, test, tokenised_references=tokenised_references(multi30k, "test", tgt)
    )
    log.info("release: translate-en-%s test_2016_flickr %s", tgt, found["scores"])
    return {"n": found["n"], "decoding": found["decoding"], **found["scores"]}


def bundle(run_out: Path, out: Path, multi30k: Path) -> dict:
    """Copy a trained translator into the model directory `out`, score it on
    test_2016_flickr and write its scores and card; returns the score row."""
    out.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        shutil.copyfile(run_out / name, out / name)
    config = json.loads((out / CONFIG).read_text(encoding="utf-8"))
    write_card(out, config, training_data=["multi30k"])
    row = score(out, multi30k)
    record_scores(out, {"multi30k/test_2016_flickr": row})
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    log.info("release: bundled %s (%.1f MB)", out, size)
    return row
