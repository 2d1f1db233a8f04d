"""Everyday photos: a caption decoder that learns its language from every caption we have,
bridged to images by the tagger's concepts.

    captioner train everyday --out runs/everyday --epochs 8
    python -m captioner.pipelines.train_everyday --out runs/everyday --resume

Flickr8k has 40k captions with photos; the text-only corpora beside it (COCO val2017 text,
Flickr30k, Conceptual Captions: `../shared/data`) hold 185k more about the everyday world
(cats on sofas, pizzas, buses, giraffes) that Flickr8k never shows. The ImageNet tagger knows
that world; concepts (`captioner.concepts`) are the bridge:

1. Photos (Flickr8k train and the unlabeled COCO photos) are encoded once, exactly as
   inference does, and their concepts read off the tagger.
2. Every text-only caption that mentions a concept gets a stand-in photo: the bank photo whose
   concepts best cover the caption's (`everyday_data.pair_captions`), one of the best few
   drawn per epoch.
3. The decoder (`DecoderConfig.num_concepts`) reads the image grid and the concepts; a learned
   copy gate lets it say a concept word the tagger saw. A text row's concepts are the ones
   its caption mentions (some dropped) plus the stand-in photo's real tagger concepts.
4. It starts from the `--init` model's decoder (the bundled default), the concept paths at
   zero, so epoch 0 is the old model; every epoch adds a new slice of text rows, scores the
   COCO dev photos (CIDEr-D and main object named) and Flickr8k dev, and keeps the best.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from captioner.concepts import ConceptSet, build_concept_set
from captioner.decoders import CaptionDecoder, caption_loss
from captioner.decoding import SpecialIds
from captioner.evaluation import caption_scores, decode_grids
from captioner.metrics.objects import main_object_named
from captioner.pipelines import everyday_data as ed
from captioner.pipelines.batching import length_batches
from captioner.pipelines.config import opt, run_recipe, to_dict
from captioner.pipelines.runstate import publish_model_dir
from captioner.pipelines.trainer import TrainConfig, Trainer, param_groups, setup
from captioner.text import SPECIALS, Vocabulary, tokenize

log = logging.getLogger("captioner.pipelines.train_everyday")  # also under python -m


# Caption styles: Flickr8k / Flickr30k say "a dog is running", COCO "a dog running", CC
# "actor attends the premiere". Each row trains its corpus's style vector.
STYLES = ("flickr", "coco", "cc")
STYLE_OF = {"coco-text": "coco", "cc-text": "cc"}  # other corpora and the photo rows: flickr


@dataclass
class EverydayConfig(TrainConfig):
    out: str = opt("", "output model directory (run files go to OUT/run/)", required=True)
    data: str = opt("../shared/data", "folder with flickr8k/, coco/, flickr30k_text/, cc_val/")
    flickr8k: str = opt("", "Flickr8k folder (default: DATA/flickr8k)")
    init: str = opt("default", "model whose encoder, tagger, sentiment and decoder start the run")
    texts: str = opt(
        "coco-text:{data}/coco/val2017_text.jsonl+flickr30k-text:{data}/flickr30k_text/"
        "captions.jsonl+cc-text:{data}/cc_val/captions.txt",
        "text-only caption corpora (captioner.data.text_corpora specs; {data} is --data)",
    )
    text_weights: str = opt(
        "", "repeat a corpus's text rows in the epoch order, e.g. coco-text=3,cc-text=0 (default 1)"
    )
    min_count: int = opt(8, "keep words seen at least this often in all captions")
    concept_min_count: int = opt(20, "concept words: seen at least this often in captions")
    max_length: int = opt(20, "longest caption in words")
    text_per_epoch: int = opt(60000, "text-only rows per epoch (a new slice each epoch)")
    concept_drop: float = opt(0.2, "drop each mentioned concept of a text row with this chance")
    concept_top_k: int = opt(5, "concepts the decoder reads per photo")
    concept_threshold: float = opt(0.1, "least summed tagger probability of a concept")
    candidates: int = opt(5, "stand-in photos per text caption (one drawn per epoch)")
    caption_style: str = opt("none", "style the model writes in (each corpus trains its own "
                             "style vector; none: no style input; coco did not pay on dev)",
                             choices=(*STYLES, "none"))  # fmt: skip
    style_lr: float = opt(5e-3, "learning rate of the style vectors (they start at zero, and "
                          "at --lr would barely move in a few epochs)")  # fmt: skip
    self_train: str = opt("", "self-training: this model captions the unlabeled COCO photos and "
                          "the captions naming a concept the tagger sees join the photo rows")  # fmt: skip
    self_train_weight: int = opt(5, "times each kept self-training caption appears per epoch")
    length_pool: int = opt(100, "batch captions of similar length: sort pools of N batches "
                           "by length (less padding, faster epochs; 0 = random batches)")  # fmt: skip
    dropout: float = opt(0.5, "dropout before the output layer")
    alpha_c: float = opt(1.0, "doubly stochastic attention regulariser weight")
    label_smoothing: float = opt(0.1, "label smoothing of the word loss")
    beam_size: int = opt(3, "validation beam")
    flickr_eval: int = opt(250, "Flickr8k dev photos scored each epoch (0 = none)")
    monitor: str = opt("score", "validation score that selects the best model")
    name: str = opt("everyday", "model name stored in config.json")
    limit: int | None = opt(None, "use only the first N photos of each set (smoke tests)")
    text_limit: int | None = opt(None, "use only the first N text-only captions")


# ---------------------------------------------------------------------------- data
@dataclass
class Prepared:
    vocab: Vocabulary
    concept_set: ConceptSet
    bank: ed.Bank
    rows: ed.EverydayRows
    val: dict[str, tuple[Tensor, list[list[str]]]]  # name -> (grids, references)


def corpus_weights(spec: str) -> dict[str, int]:
    """`coco-text=3,cc-text=0` -> {"coco-text": 3, "cc-text": 0}: how many times each text row
    of a corpus appears in the epoch order (corpora not named appear once)."""
    from captioner.data.text_corpora import TEXT_KINDS

    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, sep, value = part.partition("=")
        if kind not in TEXT_KINDS or not sep or not value.strip().isdigit():
            raise SystemExit(
                f"train everyday: bad --text-weights part {part!r}: use KIND=N with KIND one of "
                f"{', '.join(TEXT_KINDS)} and N a whole number, e.g. coco-text=3"
            )
        out[kind] = int(value)
    return out


def run_concepts(cfg: EverydayConfig, counts: Counter) -> ConceptSet:
    """The run's concept set: chosen from `counts` on its first start and written to
    OUT/run/concepts.json; a resumed run reads it back, so a later change to the concept
    rules (`captioner.concepts`) never changes a run's decoder under it."""
    import json

    path = Path(cfg.out) / "run" / "concepts.json"
    if path.is_file():
        return ConceptSet.from_json(json.loads(path.read_text(encoding="utf-8")))
    concept_set = build_concept_set(counts, min_count=cfg.concept_min_count)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(concept_set.to_json()), encoding="utf-8")
    return concept_set


def prepare(cfg: EverydayConfig, model) -> Prepared:
    """Read every corpus, choose vocabulary and concepts, encode the photos, pair the texts
    (10-25 minutes on two busy CPU cores; a resumed run does it again, deterministically,
    but reads the photo features back from OUT/run/features)."""
    root = Path(cfg.data).expanduser()
    f8k = Path(cfg.flickr8k).expanduser() if cfg.flickr8k else root / "flickr8k"
    train_paths, train_caps = ed.flickr8k_split(f8k, "train")
    if cfg.limit:
        train_paths, train_caps = train_paths[: cfg.limit], train_caps[: cfg.limit]
    from captioner.data.text_corpora import load_text_captions

    corpus = load_text_captions(cfg.texts.replace("{data}", str(root)))
    texts = [c for caps in corpus["captions"] for c in caps][: cfg.text_limit or None]
    weights = corpus_weights(cfg.text_weights)
    kinds = [i.partition(":")[0] for i, caps in zip(corpus["image_id"], corpus["captions"])
             for _ in caps][: len(texts)]  # fmt: skip
    log.info("%d Flickr8k train photos, %d text-only captions", len(train_paths), len(texts))
    text_tokens = [tokenize(t) for t in texts]
    photo_tokens = [[tokenize(c) for c in caps] for caps in train_caps]
    counts = Counter(t for toks in text_tokens for t in toks)
    counts.update(t for caps in photo_tokens for toks in caps for t in toks)
    concept_set = run_concepts(cfg, counts)
    kept = sorted(
        (t for t, c in counts.items() if c >= cfg.min_count), key=lambda t: (-counts[t], t)
    )
    known = set(kept)
    kept += [w for w in concept_set.words if w not in known]  # every concept is a word
    vocab = Vocabulary([*SPECIALS, *kept])
    log.info("vocabulary %d words, %d concepts", len(vocab), len(concept_set.words))

    coco_paths = ed.unlabeled_coco(root)[: cfg.limit or None]
    kw = {"top_k": cfg.concept_top_k, "threshold": cfg.concept_threshold}
    features = Path(cfg.out) / "run" / "features"
    bank = ed.encode_bank(model, train_paths + coco_paths, concept_set,
                          train_caps + [[] for _ in coco_paths], desc="bank",
                          cache=features / "bank.safetensors", **kw)  # fmt: skip
    hyper = concept_set.hypernyms()
    text_concepts = [concept_set.from_text(toks, hyper) for toks in text_tokens]
    keep = [i for i, cs in enumerate(text_concepts) if cs and len(text_tokens[i]) <= cfg.max_length]
    log.info("%d text-only captions mention a concept and are paired with a photo", len(keep))
    cands = ed.pair_captions([text_tokens[i] for i in keep], [text_concepts[i] for i in keep],
                             bank, concept_set, candidates=cfg.candidates)  # fmt: skip
    photo_rows = [
        ed.Row(p, vocab.encode(toks), None)
        for p, caps in enumerate(photo_tokens)
        for toks in caps
        if len(toks) <= cfg.max_length
    ]
    if cfg.self_train:  # captions of the unlabeled photos, written once to OUT/run
        photo_rows += cfg.self_train_weight * ed.self_train_rows(
            cfg.self_train, Path(cfg.out) / "run" / "self_train.json", bank, len(train_paths),
            concept_set, vocab, beam_size=cfg.beam_size, max_length=cfg.max_length)  # fmt: skip
    text_rows = [
        ed.Row(
            int(c[0]),
            vocab.encode(text_tokens[i]),
            text_concepts[i],
            tuple(int(x) for x in c),
            weights.get(kinds[i], 1),
            STYLES.index(STYLE_OF.get(kinds[i], "flickr")),
        )
        for i, c in zip(keep, cands)
    ]
    if weights:
        shares = Counter()
        for r, i in zip(text_rows, keep):
            shares[kinds[i]] += r.repeats
        log.info("text rows per corpus in the epoch order: %s", dict(shares))
    rows = ed.EverydayRows(bank, photo_rows, text_rows, vocab, text_per_epoch=cfg.text_per_epoch,
                           top_k=cfg.concept_top_k, drop=cfg.concept_drop, seed=cfg.seed)  # fmt: skip
    sets = {"coco": [x[: cfg.limit or None] for x in ed.coco_dev(root)]}
    if cfg.flickr_eval:
        sets["flickr8k"] = [x[: cfg.flickr_eval] for x in ed.flickr8k_split(f8k, "dev")]
    val = {
        name: (ed.encode_bank(model, paths, concept_set, desc=f"{name} dev",
                              cache=features / f"{name}_dev.safetensors", **kw).grid, caps)
        for name, (paths, caps) in sets.items()
    }  # fmt: skip
    return Prepared(vocab, concept_set, bank, rows, val)


# ---------------------------------------------------------------------------- model
def build_decoder(cfg: EverydayConfig, init: CaptionDecoder, init_vocab: Vocabulary,
                  vocab: Vocabulary, concept_set: ConceptSet, tagger: nn.Linear) -> CaptionDecoder:  # fmt: skip
    """A concept decoder with `vocab`, started from `init`: the shared words' embeddings and
    output rows, every recurrent / attention weight; new words as unlikely as the least
    likely old one (so it captions as `init` did); the tagger copied from the model's. From
    a decoder without concepts, the new input columns and the concept paths start at zero;
    from a concept decoder (an earlier everyday run) they are kept, and only the concept set
    (which words, which classes) is the new one."""
    old = init.config
    styled = cfg.caption_style != "none"
    config = dataclasses.replace(
        old, vocab_size=len(vocab), dropout=cfg.dropout, num_concepts=len(concept_set.words),
        num_classes=tagger.out_features, concept_top_k=cfg.concept_top_k,
        concept_threshold=cfg.concept_threshold, num_styles=len(STYLES) if styled else 0,
        style=STYLES.index(cfg.caption_style) if styled else 0,
    )  # fmt: skip
    new = CaptionDecoder(config)
    src, dst = init.state_dict(), new.state_dict()
    with torch.no_grad():
        shared = [(vocab.stoi[t], i) for i, t in enumerate(init_vocab.itos) if t in vocab.stoi]
        to, frm = torch.tensor([a for a, _ in shared]), torch.tensor([b for _, b in shared])
        new_rows = torch.ones(len(vocab), dtype=torch.bool)
        new_rows[to] = False
        dst["out.weight"][new_rows] = 0.0  # new words start as the least likely old word
        dst["out.bias"][new_rows] = src["out.bias"].min()
        for name in ("embed.weight", "out.weight", "out.bias"):
            dst[name][to] = src[name][frm].to(dst[name].dtype)
        for name, tensor in src.items():
            if name in ("embed.weight", "out.weight", "out.bias"):
                continue
            if name in ("concept_classes", "concept_ids") or name.startswith("tagger."):
                continue  # from the new concept set and the model's tagger, below
            if name == "rnn.weight_ih":  # new concept columns at the end start at zero
                dst[name].zero_()
                dst[name][:, : tensor.size(1)] = tensor
            elif name in dst and dst[name].shape == tensor.shape:
                dst[name].copy_(tensor)
        if not old.num_concepts:
            for name in ("concept_init.weight", "concept_init.bias", "copy.weight", "copy.bias"):
                dst[name].zero_()
        if styled and not old.num_styles:
            dst["styles.weight"].zero_()  # styles start neutral: captions as `init` did
        dst["tagger.weight"].copy_(tagger.weight)
        dst["tagger.bias"].copy_(tagger.bias)
        dst["concept_classes"].copy_(concept_set.matrix(tagger.out_features))
        dst["concept_ids"].copy_(torch.tensor([vocab.stoi[w] for w in concept_set.words]))
    new.load_state_dict(dst)
    new.tagger.requires_grad_(False)
    return new


class EverydayModel(nn.Module):
    def __init__(self, decoder: CaptionDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, batch: dict[str, Tensor]):
        grid = batch["grid"].float()
        concepts = (batch["concept_ids"], batch["concept_weights"])
        # the rows' styles (a decoder without style vectors reads none)
        return self.decoder(grid, grid.mean(dim=1), batch["captions"], concepts, batch["styles"])


def groups(net: EverydayModel, cfg: EverydayConfig) -> list[dict]:
    """The engine's AdamW groups, with the style vectors in their own at `--style-lr`."""
    out = param_groups(net, cfg)
    style = net.decoder.styles.weight if net.decoder.styles is not None else None
    if style is not None:
        for g in out:
            g["params"] = [p for p in g["params"] if p is not style]
        out.append({"params": [style], "lr": cfg.style_lr, "weight_decay": 0.0, "name": "styles"})
    return [g for g in out if g["params"]]


def _tagger(model) -> nn.Linear:
    linears = [m for m in model.recognizer.modules() if isinstance(m, nn.Linear)]
    if len(linears) != 1:
        raise SystemExit("train everyday: --init's tagger must be one linear layer")
    return linears[0]


# ---------------------------------------------------------------------------- validation
def validate(prep: Prepared, decoder: CaptionDecoder, cfg: EverydayConfig, device) -> dict:
    scores: dict[str, float] = {}
    for name, (grids, refs) in prep.val.items():
        hyps = decode_grids(decoder, prep.vocab, grids, beam_size=cfg.beam_size,
                            max_length=cfg.max_length, no_repeat_ngram_size=3,
                            device=device)  # fmt: skip
        s = caption_scores(refs, hyps, meteor=False)
        scores[f"{name}_CIDEr-D"] = s["CIDEr-D"]
        scores[f"{name}_BLEU-4"] = s["BLEU-4"]
        if name == "coco":
            scores["coco_object"] = main_object_named(refs, hyps)["main_object_named"]
        log.info("%s sample: %r", name, hyps[:4])
    # one number to select on: COCO dev CIDEr-D and object naming, Flickr8k dev CIDEr-D
    scores["score"] = (
        scores.get("coco_CIDEr-D", 0) + 0.5 * scores.get("coco_object", 0)
        + 0.5 * scores.get("flickr8k_CIDEr-D", 0)
    )  # fmt: skip
    return scores


# what every everyday run trains on (the model card lists their terms)
RECIPE_DATA = ("flickr8k", "coco-text", "flickr30k-text", "cc-text", "coco-unlabeled")


def export(model, decoder: CaptionDecoder, vocab: Vocabulary, out: Path, cfg) -> None:
    m = copy.copy(model)
    m.decoder, m.vocab = copy.deepcopy(decoder).eval(), vocab
    m.special_ids = SpecialIds.from_vocab(vocab)
    m.name = cfg.name
    # the card's data list: what --init learnt from, then this recipe's corpora, each once
    m.training_data = list(dict.fromkeys([*model.training_data, *RECIPE_DATA]))
    publish_model_dir(m.save_pretrained(out / "run" / "best", dtype=torch.int8), out)
    log.info("exported %s", out)


def train(cfg: EverydayConfig):
    from captioner.api import Captioner

    dist = setup(cfg)
    model = Captioner.from_pretrained(cfg.init, device="cpu")
    if model.decoder is None or model.recognizer is None:
        raise SystemExit(f"train everyday: --init {cfg.init} needs a caption decoder and a tagger")
    model.use_backend("auto")
    prep = prepare(cfg, model)
    decoder = build_decoder(cfg, model.decoder, model.vocab, prep.vocab, prep.concept_set,
                            _tagger(model))  # fmt: skip
    net = EverydayModel(decoder)
    out = Path(cfg.out)

    def loss_fn(m, batch):
        logits, alphas = m(batch)
        return caption_loss(logits, batch["captions"], alphas, alpha_c=cfg.alpha_c,
                            label_smoothing=cfg.label_smoothing)  # fmt: skip

    batches = length_batches(prep.rows.lengths, cfg, dist)  # None: random batches
    trainer = Trainer(
        model=net,
        config=cfg,
        train_dataset=prep.rows,
        batch_sampler=batches,
        collate_fn=ed.collate,
        loss_fn=loss_fn,
        evaluate_fn=lambda m, epoch: validate(prep, m.decoder, cfg, dist.device),
        monitor=cfg.monitor,
        mode="max",
        on_best=lambda m, scores, epoch: export(model, m.decoder, prep.vocab, out, cfg),
        run_dir=out / "run",
        param_groups=groups(net, cfg),
        run_config={"recipe": "everyday", **to_dict(cfg)},
        dist=dist,
    )
    return trainer.fit()


def main(argv: list[str] | None = None) -> int:
    return run_recipe(EverydayConfig, train, argv, prog="captioner train everyday",
                      description=__doc__.split("\n\n")[0])  # fmt: skip


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
