"""Concepts: the bridge from tagger output and caption text to the words a decoder reads."""

from collections import Counter

import pytest
import torch

from captioner.backbones import imagenet_categories
from captioner.concepts import (
    ALIASES,
    STOPWORDS,
    ConceptSet,
    build_concept_set,
    singular,
)
from captioner.decoders import CaptionDecoder, DecoderConfig, caption_loss, quantize_decoder
from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.metrics.objects import main_object_named, main_objects, objects_named
from captioner.tagwords import tag_name

LION, CHEETAH, TABBY, ESPRESSO, TROLLEYBUS = 291, 293, 281, 967, 874


@pytest.fixture(scope="module")
def concepts() -> ConceptSet:
    counts = Counter({"lion": 50, "cheetah": 30, "cat": 900, "coffee": 400, "bus": 800,
                      "espresso": 25, "tabby": 24, "top": 500, "dog": 5000})  # fmt: skip
    return build_concept_set(counts, min_count=20)


def test_concept_words_come_from_imagenet_chains_and_caption_counts(concepts):
    assert {"lion", "cheetah", "cat", "coffee", "bus", "espresso", "tabby"} <= set(concepts.words)
    assert "top" not in concepts.words  # a stop word, however common
    assert all(w not in STOPWORDS or w in ALIASES for w in concepts.words)
    idx = concepts.index
    assert LION in concepts.classes[idx["lion"]] and LION in concepts.classes[idx["cat"]]
    assert TROLLEYBUS in concepts.classes[idx["bus"]]
    assert ESPRESSO in concepts.classes[idx["coffee"]]
    assert tag_name(TROLLEYBUS) == "trolleybus"


def test_aliases_name_classes_the_wordnet_chains_miss():
    counts = Counter({"train": 900, "toilet": 300, "sign": 700, "sinks": 40, "cow": 3, "car": 900})
    concepts = build_concept_set(counts, min_count=20)
    idx = concepts.index
    names = imagenet_categories()
    named = {w: {names[c] for c in concepts.classes[idx[w]]} for w in concepts.words}
    assert {"passenger car", "steam locomotive", "bullet train"} <= named["train"]
    assert named["toilet"] == {"toilet seat"} and named["sink"] == {"washbasin"}  # plural counts
    assert named["sign"] == {"street sign"}  # a stop word names only its alias classes
    assert "cow" not in idx  # an alias captions rarely use is left out like any word
    assert "passenger car" in named["car"]  # aliases add to the chains, never take away
    assert set(ALIASES) >= {"train", "toilet", "sink", "sign"}


def test_text_concepts_add_hypernyms_and_fold_plurals(concepts):
    hyper = concepts.hypernyms()
    assert concepts.from_text("two lions resting in the grass".split(), hyper) == ["lion", "cat"]
    assert concepts.from_text("a cup of coffee on a table".split(), hyper) == ["coffee"]
    assert concepts.from_text("a man riding a horse".split(), hyper) == []
    assert singular("buses", concepts.index) == "bus"
    assert singular("puppies", {"puppy"}) == "puppy"
    assert singular("is", {"i"}) is None  # too short to be a plural


def test_photo_concepts_sum_class_probabilities(concepts):
    probs = torch.zeros(2, 1000)
    probs[0, LION], probs[0, CHEETAH], probs[0, TABBY] = 0.5, 0.3, 0.05
    probs[1, ESPRESSO] = 0.04  # below the threshold: no concept
    found = concepts.from_probs(probs, top_k=5, threshold=0.1)
    words = dict(found[0])
    assert found[0][0] == ("cat", pytest.approx(0.85))  # every cat class counts for "cat"
    assert words["lion"] == pytest.approx(0.5) and words["cheetah"] == pytest.approx(0.3)
    assert "tabby" not in words  # 0.05 < threshold
    assert found[1] == []


def test_concept_set_json_round_trip_and_errors(concepts):
    again = ConceptSet.from_json(concepts.to_json())
    assert again.words == concepts.words and again.classes == concepts.classes
    with pytest.raises(ValueError, match="words"):
        ConceptSet.from_json({"words": ["a"], "classes": []})


def _decoder(concepts: ConceptSet, vocab_size: int = 40) -> CaptionDecoder:
    torch.manual_seed(0)
    d = CaptionDecoder(DecoderConfig(
        vocab_size=vocab_size, feature_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8,
        num_concepts=len(concepts.words), num_classes=1000, concept_top_k=3, dropout=0.0,
    ))  # fmt: skip
    with torch.no_grad():
        d.concept_classes.copy_(concepts.matrix())
        d.concept_ids.copy_(4 + torch.arange(len(concepts.words)) % (vocab_size - 4))
    return d


def test_decoder_reads_the_concepts_its_tagger_finds(concepts):
    d = _decoder(concepts).eval()
    with torch.no_grad():
        d.tagger.weight.zero_()
        d.tagger.bias.fill_(-20.0)
        d.tagger.bias[LION] = 20.0  # every image is a lion
    pooled = torch.randn(2, 16)
    ids, weights = d.concepts(pooled)
    lion = concepts.index["lion"]
    assert int(ids[0, 0]) in (int(d.concept_ids[lion]), int(d.concept_ids[concepts.index["cat"]]))
    assert weights[0, 0] > 0.99 and weights[0, -1] == 0.0  # nothing else passes the threshold
    # explicit concepts replace the tagger's (what training on text-only captions does)
    grid = torch.randn(2, 4, 16)
    caps = torch.randint(4, 40, (2, 5))
    own, _ = d(grid, pooled, caps)
    given, _ = d(
        grid, pooled, caps, (torch.tensor([[5, 0, 0]] * 2), torch.tensor([[0.9, 0, 0]] * 2))
    )
    assert not torch.allclose(own, given)


def test_decoder_says_the_concept_it_is_given(concepts):
    """Rows alike but for their concept (A or B) and caption ("A" or "B"): after a few steps
    of training only the concept input can tell the decoder which word to say."""
    d = _decoder(concepts)
    a, b = 7, 9
    grid = torch.randn(16, 4, 16)
    words = torch.tensor([a, b] * 8)
    caps = torch.stack([torch.ones(16, dtype=torch.long), words, torch.full((16,), 2)], 1)
    ids = torch.stack([words, torch.zeros(16, dtype=torch.long)], 1)
    w = torch.tensor([[0.9, 0.0]] * 16)
    opt = torch.optim.Adam(d.parameters(), lr=0.05)
    for _ in range(60):
        logits, alphas = d(grid, grid.mean(1), caps, (ids, w))
        loss = caption_loss(logits, caps, alphas)
        opt.zero_grad()
        loss.backward()
        opt.step()
    d.eval()
    special = SpecialIds(bos_id=1, eos_id=2)
    config = GenerationConfig(method="greedy", max_length=4)
    probe = torch.randn(2, 4, 16)  # new images
    given = (torch.tensor([[b, 0], [a, 0]]), torch.tensor([[0.9, 0.0], [0.9, 0.0]]))
    for decoder in (d, quantize_decoder(d)):  # the int8 copy too
        step, state = decoder.start(probe, probe.mean(1), given)
        out = generate(step, state, special, config)
        assert [t[0] for t in out.tokens] == [b, a]


def test_decoder_without_concepts_is_unchanged():
    d = CaptionDecoder(DecoderConfig(vocab_size=20, feature_dim=8, embed_dim=4, hidden_dim=8))
    assert d.tagger is None and "concept_ids" not in d.state_dict()
    with pytest.raises(ValueError):
        DecoderConfig(vocab_size=20, feature_dim=8, num_concepts=-1)
    assert d.styles is None and "styles.weight" not in d.state_dict()
    with pytest.raises(ValueError, match="needs num_concepts"):
        DecoderConfig(vocab_size=20, feature_dim=8, num_styles=3)
    with pytest.raises(ValueError, match="style must be in"):
        DecoderConfig(vocab_size=20, feature_dim=8, num_concepts=2, num_styles=3, style=3)


def test_main_object_named():
    refs = [
        ["a bear in the grass", "a brown bear walking", "a grizzly bear", "a large animal",
         "an animal outside"],
        ["a man on a street", "a man walking", "people walking", "a person", "a crowd"],
    ]  # fmt: skip
    assert objects_named("two dogs and a cat on a sofa") == {"dog", "cat", "couch"}
    assert main_objects(refs[0]) == {"bear"}
    got = main_object_named(refs, ["a black bear in the woods", "a man walking"])
    assert got == {"main_object_named": 1.0, "main_object_photos": 1}  # people left out
    assert main_object_named(refs, ["a dog in the grass", "x"])["main_object_named"] == 0.0


def test_a_concept_is_copied_once(concepts):
    """The copy bonus of a concept stops once the word is said ("a teddy teddy teddy bear"
    came from copying the same concept at every step)."""
    d = _decoder(concepts).eval()
    a = 7
    with torch.no_grad():
        d.copy.weight.zero_()
        d.copy.bias.fill_(50.0)  # copying always wins while it may
        d.out.bias[a] = -10.0  # the word alone is never likely
    grid = torch.randn(2, 4, 16)
    given = (torch.tensor([[a, 0]] * 2), torch.tensor([[1.0, 0.0]] * 2))
    special = SpecialIds(bos_id=1, eos_id=2)
    for config in (
        GenerationConfig(method="greedy", max_length=5),
        GenerationConfig(beam_size=3, max_length=5),
    ):
        step, state = d.start(grid, grid.mean(1), given)
        out = generate(step, state, special, config)
        for tokens in out.tokens:
            assert tokens[0] == a and a not in list(tokens[1:])
