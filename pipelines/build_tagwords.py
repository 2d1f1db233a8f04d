"""Build `captioner/data/imagenet_words.json`: caption words for the 1,000 ImageNet classes.

    apt-get install wordnet-base            # WordNet 3.0, the database ImageNet's ids point into
    pip download --no-deps timm -d /tmp/timm && unzip -o /tmp/timm/timm-*.whl \\
        'timm/data/_info/imagenet_synsets.txt' -d /tmp/timm
    python -m captioner.pipelines.build_tagwords --synsets /tmp/timm/timm/data/_info/imagenet_synsets.txt

For each class (in the classifier's order) the table lists words a caption could use for it,
from the most specific to the most general: the class's own lemmas, then the lemmas of its
WordNet hypernyms up to a few steps above it, stopping at abstract nodes ("artifact",
"organism", ...). "Egyptian cat" -> egyptian cat, domestic cat, house cat, cat, ...;
"golden retriever" -> golden retriever, retriever, sporting dog, ..., dog. The table is
derived from WordNet 3.0 and the ImageNet-1k class ids only; `captioner.tagwords` reads it.

Debian's `wordnet-base` lacks two files nltk's reader opens (`lexnames`, `index.sense`): the
builder copies the database into a temporary folder with a `lexnames` file written from
WordNet's fixed list of lexicographer files, and skips nltk's sense-key mapping, which only
serves other WordNet versions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "captioner" / "data" / "imagenet_words.json"
# WordNet 3.0's lexicographer files, in their fixed order (wndb(5WN)); pos: 1 n, 2 v, 3 a, 4 r
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
# Nodes too abstract to name a thing in a caption: the walk up the hypernyms stops there.
ABSTRACT = {
    "entity.n.01", "physical_entity.n.01", "abstraction.n.06", "object.n.01", "whole.n.02",
    "artifact.n.01", "instrumentality.n.03", "organism.n.01", "living_thing.n.01",
    "matter.n.03", "substance.n.01", "substance.n.07", "solid.n.01", "food.n.01", "food.n.02",
    "container.n.01", "device.n.01", "structure.n.01", "equipment.n.01", "implement.n.01",
    "commodity.n.01", "covering.n.02", "causal_agent.n.01", "vertebrate.n.01",
    "chordate.n.01", "invertebrate.n.01", "placental.n.01", "mammal.n.01", "conveyance.n.03",
    "system.n.01", "material.n.01", "part.n.02", "unit.n.03", "group.n.01", "creation.n.02",
    "decoration.n.01", "geological_formation.n.01", "natural_object.n.01",
}  # fmt: skip
MAX_STEPS = 7  # hypernym steps above the class
# The class's everyday name: the most specific lemma, at most NAME_STEPS above the class, that
# SemCor counts at least NAME_COUNT times (sorrel -> horse, golden retriever -> dog, sports
# car -> car); else the class's own first lemma (cheetah, laptop, coffee mug).
NAME_STEPS, NAME_COUNT = 4, 3
# Counted, but too vague to name the thing: the class keeps its own name (broccoli, banana).
GENERIC = {
    "vehicle", "instrument", "garment", "protection", "clothing", "tool", "machine",
    "vegetable", "fruit", "device", "game", "covering", "structure", "food", "drink",
    "beverage", "animal", "plant", "shop", "equipment", "container", "material", "article",
    "object", "thing", "dish", "building", "invertebrate", "organism", "produce", "solid",
}  # fmt: skip


def open_wordnet(directory: Path):
    """nltk's WordNet reader over the WordNet 3.0 files in `directory` (e.g. Debian's
    /usr/share/wordnet), via a temporary copy that has the files nltk expects."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    tmp = Path(tempfile.mkdtemp(prefix="captioner-wordnet-"))
    for name in ("data", "index"):
        for pos in ("noun", "verb", "adj", "adv"):
            shutil.copy(directory / f"{name}.{pos}", tmp / f"{name}.{pos}")
    if (directory / "cntlist.rev").is_file():  # lemma frequencies (SemCor counts)
        shutil.copy(directory / "cntlist.rev", tmp / "cntlist.rev")
    for pos in ("noun", "verb", "adj", "adv"):
        exc = directory / f"{pos}.exc"
        (tmp / f"{pos}.exc").write_bytes(exc.read_bytes() if exc.is_file() else b"")
    pos_of = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
    (tmp / "lexnames").write_text("".join(
        f"{i:02d}\t{n}\t{3 if n == 'adj.ppl' else pos_of[n.split('.')[0]]}\n"
        for i, n in enumerate(LEXNAMES)
    ))  # fmt: skip

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="3.0"):  # sense-key mapping: other WordNet versions only
            return None

    import nltk

    nltk.data.path.append(str(tmp))  # nltk only opens corpora under its data path
    return Reader(str(tmp), None)


def class_words(synset) -> tuple[str, list[str]]:
    """(everyday name, caption words) of one class synset. The words: its lemmas, then its
    hypernyms' (breadth first, at most MAX_STEPS up, not past an abstract node), lower-cased,
    "_" -> " ", no repeats."""
    words: list[str] = []
    name = None
    level, seen = [synset], set()
    for step in range(MAX_STEPS + 1):
        nxt = []
        for s in level:
            if s.name() in seen or s.name() in ABSTRACT:
                continue
            seen.add(s.name())
            for lemma in s.lemmas():
                word = lemma.name().replace("_", " ").lower()
                if word in words or any(c.isdigit() for c in word):
                    continue
                words.append(word)
                if name is None and step <= NAME_STEPS and lemma.count() >= NAME_COUNT:
                    name = word if word not in GENERIC else words[0]
            nxt += s.hypernyms()
        level = nxt
    return name or words[0], words


def build(wordnet_dir: Path, synsets_file: Path) -> list[dict]:
    wn = open_wordnet(wordnet_dir)
    wnids = synsets_file.read_text().split()
    if len(wnids) != 1000:
        raise SystemExit(f"{synsets_file}: expected 1,000 ImageNet ids, found {len(wnids)}")
    table = []
    for wnid in wnids:
        synset = wn.synset_from_pos_and_offset("n", int(wnid[1:]))
        name, words = class_words(synset)
        table.append({"wnid": wnid, "name": name, "words": words})
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m captioner.pipelines.build_tagwords",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 database folder")
    p.add_argument("--synsets", required=True, help="timm's imagenet_synsets.txt (1,000 ids)")
    p.add_argument("--out", default=str(OUT), help="output JSON (default: the package's table)")
    args = p.parse_args(argv)
    table = build(Path(args.wordnet), Path(args.synsets))
    Path(args.out).write_text(json.dumps(table, indent=0, ensure_ascii=False) + "\n")
    print(f"wrote {len(table)} classes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
