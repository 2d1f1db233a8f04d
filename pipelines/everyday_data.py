"""The data of the everyday-photo recipe (`captioner.pipelines.train_everyday`).

- `encode_bank(model, paths)`: grid features (float16), pooled features and the photo's
  concepts, through the same `Captioner` preprocessing and encoder inference uses.
- `pair_captions(...)`: every text-only caption gets a stand-in photo from the bank: the photo
  whose tagger concepts best cover the caption's concepts, ties broken by how much its own
  captions share the caption's words (TF-IDF), drawn among the best few (unpaired captioning
  through a concept detector, in the spirit of Feng et al. 2019).
- `pseudo_rows(...)`: self-training rows, captions a model wrote for the unlabeled photos,
  kept where they name a concept the tagger clearly sees there.
- `EverydayRows`: the training rows, photo captions and paired text-only captions alike, each
  with the concepts the decoder reads (a text row's are the concepts its caption mentions,
  some dropped, with the paired photo's own tagger concepts as distractors).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from captioner.concepts import ConceptSet
from captioner.text import Vocabulary, tokenize

log = logging.getLogger(__name__)


@dataclass
class Bank:
    """Photos with their features: grid (P, N, C) float16, pooled (P, C), concepts per photo
    as (concept word, score) lists, and the photos' own captions ([] for unlabeled ones)."""

    paths: list[str]
    grid: Tensor
    pooled: Tensor
    concepts: list[list[tuple[str, float]]]
    captions: list[list[str]]


@torch.inference_mode()
def encode_bank(
    model, paths: list[str], concept_set: ConceptSet, captions: list[list[str]] | None = None,
    *, batch_size: int = 32, top_k: int = 5, threshold: float = 0.1, desc: str = "photos",
    cache: Path | None = None,
) -> Bank:  # fmt: skip
    """Encode `paths` with `model` (a `Captioner`) exactly as inference does. With `cache`
    (a .safetensors file), features saved there for the same paths are read instead."""
    from safetensors.torch import load_file, save_file

    from captioner.progress import progress_bar

    key = hashlib.sha1("\n".join(paths).encode()).hexdigest()
    if cache is not None and cache.is_file():
        stored = load_file(str(cache))
        if bytes(stored.pop("key").tolist()).decode() == key:
            grid, pooled = stored["grid"], stored["pooled"]
            return _bank(model, paths, concept_set, captions, grid, pooled, top_k, threshold)
    grids, pooleds = [], []
    bar = progress_bar(total=len(paths), desc=f"{desc} features", unit="img")
    for i in range(0, len(paths), batch_size):
        batch = paths[i : i + batch_size]
        grid, pooled = model.encoder(model.preprocess(batch))
        grids.append(grid.to(torch.float16).cpu())
        pooleds.append(pooled.float().cpu())
        bar.update(len(batch))
    bar.close()
    grid, pooled = torch.cat(grids), torch.cat(pooleds)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tag = torch.tensor(list(key.encode()), dtype=torch.uint8)
        save_file({"grid": grid, "pooled": pooled, "key": tag}, str(cache))
    return _bank(model, paths, concept_set, captions, grid, pooled, top_k, threshold)


@torch.inference_mode()
def _bank(model, paths, concept_set, captions, grid, pooled, top_k, threshold) -> Bank:
    probs = model.recognizer.probabilities(pooled.to(model.device))
    concepts = concept_set.from_probs(probs.cpu(), top_k=top_k, threshold=threshold)
    caps = captions if captions is not None else [[] for _ in paths]
    return Bank(list(paths), grid, pooled, concepts, caps)


def _tfidf(docs: list[list[str]], vocab: dict[str, int], idf: np.ndarray):
    from scipy import sparse

    rows, cols, vals = [], [], []
    for r, doc in enumerate(docs):
        counts = Counter(vocab[t] for t in doc if t in vocab)
        norm = math.sqrt(sum((c * idf[i]) ** 2 for i, c in counts.items())) or 1.0
        for i, c in counts.items():
            rows.append(r)
            cols.append(i)
            vals.append(c * idf[i] / norm)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)), dtype=np.float32)


SATURATION = 0.25  # a tagger score from which a photo counts as showing the concept


def pair_captions(
    texts_tokens: list[list[str]],
    text_concepts: list[list[str]],
    bank: Bank,
    concept_set: ConceptSet,
    *,
    candidates: int = 5,
    chunk: int = 1024,
    hub_penalty: float = 0.05,
) -> np.ndarray:
    """(T, candidates) bank indices for each text caption, best first: concept coverage (the
    mean over the caption's concepts of the photo's tagger score, counted in full from
    `SATURATION` up, so that among photos that clearly show the concepts the words decide)
    plus the TF-IDF cosine between the caption and the photo's own captions and concepts,
    less `hub_penalty` x log(1 + captions the photo already took), so that no photo becomes
    the stand-in for every caption of a common concept (chunk by chunk, deterministic)."""
    from scipy import sparse

    cindex = concept_set.index
    words = Counter(t for toks in texts_tokens for t in set(toks))
    vocab = {w: i for i, w in enumerate(sorted(words))}
    idf = np.array([math.log(len(texts_tokens) / words[w]) + 1.0 for w in sorted(words)])
    photo_docs = [
        [t for c in caps for t in tokenize(c)] + [w for w, _ in found]
        for caps, found in zip(bank.captions, bank.concepts)
    ]
    docs = _tfidf(photo_docs, vocab, idf).T.tocsc()  # (V, P)
    pc = np.zeros((len(cindex), len(bank.paths)), dtype=np.float32)  # concept score per photo
    for p, found in enumerate(bank.concepts):
        for w, s in found:
            pc[cindex[w], p] = min(1.0, s / SATURATION)
    out = np.zeros((len(texts_tokens), candidates), dtype=np.int64)
    used = np.zeros(len(bank.paths), dtype=np.float32)
    for start in range(0, len(texts_tokens), chunk):
        toks = texts_tokens[start : start + chunk]
        q = _tfidf(toks, vocab, idf)
        score = np.asarray((q @ docs).todense())  # (n, P)
        rows, cols, vals = [], [], []
        for r, cs in enumerate(text_concepts[start : start + chunk]):
            for w in cs:
                rows.append(r)
                cols.append(cindex[w])
                vals.append(1.0 / len(cs))
        qc = sparse.csr_matrix(
            (np.array(vals, np.float32), (rows, cols)), shape=(len(toks), len(cindex))
        )
        score += np.asarray(qc @ pc) - hub_penalty * np.log1p(used)[None]
        top = torch.from_numpy(score).topk(candidates, dim=1).indices.numpy()
        out[start : start + len(toks)] = top
        np.add.at(used, top[:, 0], 1.0)
    return out


def pseudo_rows(
    bank: Bank, first: int, captions: list[str], concept_set: ConceptSet, vocab: Vocabulary,
    *, min_score: float = SATURATION, max_length: int = 20,
) -> list[Row]:  # fmt: skip
    """Photo rows for captions a model wrote for the bank's photos `first`, `first + 1`, ...
    (unlabeled ones): a caption is kept when it names a concept the photo's tagger scores at
    `min_score` or more ("a herd of zebras" under zebra 0.94), so the decoder sees everyday
    photos with everyday captions, not only Flickr8k's photos; the rest are dropped."""
    rows = []
    for i, caption in enumerate(captions):
        toks = tokenize(caption)
        strong = {w for w, s in bank.concepts[first + i] if s >= min_score}
        if len(toks) <= max_length and strong & set(concept_set.from_text(toks, {})):
            rows.append(Row(first + i, vocab.encode(toks), None))
    return rows


def self_train_rows(
    teacher: str, cache: Path, bank: Bank, first: int, concept_set: ConceptSet,
    vocab: Vocabulary, *, beam_size: int = 3, max_length: int = 20,
) -> list[Row]:  # fmt: skip
    """`pseudo_rows` from the `teacher` model's captions of the bank's photos from `first` on
    (beam search, trigram blocking), written to `cache` (JSON) once and read back after."""
    import json

    if cache.is_file():
        captions = json.loads(cache.read_text(encoding="utf-8"))
    else:
        from captioner.api import Captioner
        from captioner.evaluation import decode_grids

        model = Captioner.from_pretrained(teacher, device="cpu", backend="torch")  # decoder only
        captions = decode_grids(model.decoder, model.vocab, bank.grid[first:], beam_size=beam_size,
                                max_length=max_length, no_repeat_ngram_size=3)  # fmt: skip
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(captions), encoding="utf-8")
    rows = pseudo_rows(bank, first, captions, concept_set, vocab, max_length=max_length)
    log.info("self-training: %d of %d unlabeled photos' captions kept", len(rows), len(captions))
    return rows


@dataclass
class Row:
    photo: int  # bank index
    ids: list[int]  # caption token ids with <start> / <end>
    concepts: list[str] | None  # a text row's mentioned concepts; None: the photo's own
    candidates: tuple[int, ...] = ()  # a text row's stand-in photos (one drawn per epoch)
    repeats: int = 1  # a text row's copies in the epoch order (its corpus weight)
    style: int = 0  # its corpus's caption style (index in train_everyday.STYLES)


class EverydayRows(Dataset):
    """Training rows: all photo rows every epoch plus `text_per_epoch` text rows, a different
    slice each epoch (`set_epoch`) of one shuffled order in which a text row appears
    `row.repeats` times (its corpus weight). An item is the photo's grid, the caption ids and
    the concepts (vocabulary ids and weights, `top_k` of them, most confident first) and
    the row's caption style."""

    def __init__(
        self,
        bank: Bank,
        photo_rows: list[Row],
        text_rows: list[Row],
        vocab: Vocabulary,
        *,
        text_per_epoch: int,
        top_k: int = 5,
        drop: float = 0.2,
        seed: int = 0,
    ):
        self.bank, self.photo_rows, self.text_rows = bank, photo_rows, text_rows
        self.vocab, self.top_k, self.drop, self.seed = vocab, top_k, drop, seed
        self.order = [i for i, r in enumerate(text_rows) for _ in range(r.repeats)]
        random.Random(seed).shuffle(self.order)
        self.text_per_epoch = min(text_per_epoch, len(self.order))
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.photo_rows) + self.text_per_epoch

    def lengths(self) -> list[int]:
        """This epoch's caption lengths, item by item (for batches of similar length)."""
        return [len(self.row(i).ids) for i in range(len(self))]

    def row(self, i: int) -> Row:
        if i < len(self.photo_rows):
            return self.photo_rows[i]
        k = (self.epoch - 1) * self.text_per_epoch + (i - len(self.photo_rows))
        return self.text_rows[self.order[k % len(self.order)]]

    def concepts_of(self, row: Row, photo: int, rng: random.Random) -> list[tuple[str, float]]:
        own = self.bank.concepts[photo]
        if row.concepts is None:
            return own
        scores = dict(own)
        chosen = [
            (w, scores.get(w) or rng.uniform(0.15, 0.95))
            for w in row.concepts
            if rng.random() >= self.drop
        ]
        taken = {w for w, _ in chosen}
        chosen += [(w, s) for w, s in own if w not in taken]  # the photo's real tags
        return sorted(chosen, key=lambda ws: -ws[1])[: self.top_k]

    def __getitem__(self, i: int):
        row = self.row(i)
        rng = random.Random(hash((self.seed, self.epoch, i)))
        photo = rng.choice(row.candidates) if row.candidates else row.photo
        found = self.concepts_of(row, photo, rng)
        ids = torch.zeros(self.top_k, dtype=torch.long)
        weights = torch.zeros(self.top_k)
        for k, (w, s) in enumerate(found):
            ids[k], weights[k] = self.vocab.stoi.get(w, self.vocab.unk_id), s
        return self.bank.grid[photo], torch.tensor(row.ids), ids, weights, row.style


def collate(items, pad_id: int = 0) -> dict[str, Tensor]:
    grids, caps, ids, weights, styles = zip(*items)
    length = max(len(c) for c in caps)
    captions = torch.full((len(caps), length), pad_id, dtype=torch.long)
    for r, c in enumerate(caps):
        captions[r, : len(c)] = c
    return {
        "grid": torch.stack(grids),
        "captions": captions,
        "concept_ids": torch.stack(ids),
        "concept_weights": torch.stack(weights),
        "styles": torch.tensor(styles, dtype=torch.long),
    }


# ---------------------------------------------------------------------------- readers
def flickr8k_split(root: Path, split: str) -> tuple[list[str], list[list[str]]]:
    """Image paths and their captions for a Flickr8k split ("train" / "dev" / "test")."""
    names = (root / f"Flickr_8k.{split}Images.txt").read_text().split()
    caps: dict[str, list[str]] = {}
    for line in (root / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            key, text = line.split("\t", 1)
            caps.setdefault(key.split("#")[0], []).append(text.strip())
    folder = next((root / d for d in ("Flicker8k_Dataset", "Images") if (root / d).is_dir()), root)
    names = [n for n in names if n in caps and (folder / n).is_file()]
    return [str(folder / n) for n in names], [caps[n] for n in names]


def coco_dev(root: Path) -> tuple[list[str], list[list[str]]]:
    import json

    data = json.loads((root / "coco" / "dev_captions.json").read_text(encoding="utf-8"))
    caps: dict[int, list[str]] = {}
    for a in data["annotations"]:
        caps.setdefault(a["image_id"], []).append(a["caption"].strip())
    images = sorted(data["images"], key=lambda im: im["id"])
    folder = root / "coco" / "dev_images"
    return [str(folder / im["file_name"]) for im in images], [caps[im["id"]] for im in images]


def unlabeled_coco(root: Path) -> list[str]:
    folder = root / "coco" / "unlabeled_images"
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
