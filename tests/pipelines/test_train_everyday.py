"""The everyday recipe's model: a concept decoder started from a trained one, saved and loaded."""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tests_support import tiny_captioner
from torch import nn

from captioner import Captioner
from captioner.concepts import build_concept_set
from captioner.decoding import GenerationConfig, generate
from captioner.pipelines import everyday_data as ed
from captioner.pipelines.train_everyday import (
    EverydayConfig,
    build_decoder,
    export,
    run_concepts,
)
from captioner.text import Vocabulary

CAT, LION, ESPRESSO = 281, 291, 967


@pytest.fixture(scope="module")
def concept_set():
    return build_concept_set(Counter({"cat": 99, "lion": 99, "coffee": 99, "dog": 99}))


def _images(n=2):
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, 224, 224, generator=g) for _ in range(n)]


def _concept_model(concept_set, extra_words=("lion", "coffee", "cat", "dog")):
    base = tiny_captioner(sentiment=False)
    vocab = Vocabulary([*base.vocab.itos, *[w for w in extra_words if w not in base.vocab]])
    torch.manual_seed(0)
    tagger = nn.Linear(base.decoder.config.feature_dim, 1000)
    cfg = EverydayConfig(out="unused", dropout=0.0, caption_style="coco")
    dec = build_decoder(cfg, base.decoder, base.vocab, vocab, concept_set, tagger)
    return base, Captioner(encoder=base.encoder, decoder=dec, vocab=vocab, device="cpu",
                           name="tiny-everyday")  # fmt: skip


def test_started_decoder_captions_like_the_one_it_started_from(concept_set):
    """Concept paths and new input columns start at zero: epoch 0 is the old model."""
    base, model = _concept_model(concept_set)
    images = _images()
    assert model.caption(images, beam_size=2) == base.caption(images, beam_size=2)
    assert model.decoder.config.num_concepts == len(concept_set.words)
    assert not model.decoder.tagger.weight.requires_grad
    config = model.decoder.config  # writes in COCO style, its style vectors at 0
    assert (config.num_styles, config.style) == (3, 1)
    assert not model.decoder.styles.weight.any()
    assert EverydayConfig(out="unused").caption_style == "none"  # did not pay on dev


def test_each_corpus_trains_its_own_caption_style(concept_set, tmp_path):
    """Rows carry their corpus's style; the style vector changes what the decoder writes;
    the saved model keeps the style it writes in, and its config can name another."""
    import json

    from captioner.pipelines.train_everyday import STYLE_OF, STYLES

    assert [STYLE_OF.get(k, "flickr") for k in ("coco-text", "cc-text", "flickr30k-text")] == [
        "coco", "cc", "flickr"]  # fmt: skip
    assert set(STYLE_OF.values()) < set(STYLES) and STYLES.index("coco") == 1
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "cat"])
    bank = SimpleNamespace(grid=torch.zeros(1, 2, 4), concepts=[[]])
    rows = ed.EverydayRows(bank, [ed.Row(0, vocab.encode("a cat"), None)],
                           [ed.Row(0, vocab.encode("a cat"), ["cat"], (0,), style=1)], vocab,
                           text_per_epoch=1, drop=0.0)  # fmt: skip
    assert ed.collate([rows[0], rows[1]])["styles"].tolist() == [0, 1]

    _, model = _concept_model(concept_set)
    dec = model.decoder
    grid = torch.rand(3, 49, dec.config.feature_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        dec.styles.weight.normal_(0, 3.0)
        dec.concept_init.weight.normal_(0, 0.5)
        caps = torch.tensor([[1, 4, 5, 2]] * 3)
        logits = {s: dec(grid, grid.mean(1), caps, styles=torch.full((3,), s))[0] for s in (0, 1)}
        assert not torch.allclose(logits[0], logits[1])
        own = dec(grid, grid.mean(1), caps)[0]  # no styles given: the config's (coco)
        assert torch.equal(own, logits[1])
    out = model.save_pretrained(tmp_path / "m")
    again = Captioner.from_pretrained(out, device="cpu", backend="torch")
    images = _images()
    assert again.decoder.config.style == 1 and again.caption(images) == model.caption(images)
    config = json.loads((out / "config.json").read_text())
    config["decoder"]["style"] = 0
    (out / "config.json").write_text(json.dumps(config))
    flickr = Captioner.from_pretrained(out, device="cpu", backend="torch")
    with torch.no_grad():
        a = flickr.decoder(grid, grid.mean(1), caps)[0]
    assert torch.allclose(a, logits[0], atol=1e-5)
    plain = build_decoder(EverydayConfig(out="unused", caption_style="none"), dec, model.vocab,
                          model.vocab, concept_set, dec.tagger)  # fmt: skip
    assert plain.styles is None and plain.config.num_styles == 0


@pytest.mark.parametrize("dtype", [None, torch.int8])
def test_concept_model_round_trips(concept_set, tmp_path, dtype):
    _, model = _concept_model(concept_set)
    with torch.no_grad():  # make the concept paths matter
        for p in (model.decoder.concept_init.weight, model.decoder.copy.weight):
            p.normal_(0, 0.5)
        model.decoder.tagger.bias[LION] = 30.0  # every image is a lion
    out = model.save_pretrained(tmp_path / "m", dtype=dtype)
    again = Captioner.from_pretrained(out, device="cpu", backend="torch")
    images = _images()
    ids, weights = again.decoder.concepts(again.encoder(again.preprocess(images))[1])
    lion = again.vocab.stoi["lion"]
    assert ids[0, 0] in (lion, again.vocab.stoi["cat"]) and lion in ids[0].tolist()
    assert torch.equal(again.decoder.concept_ids, model.decoder.concept_ids)
    if dtype is None:
        assert again.caption(images) == model.caption(images)


def test_the_exported_model_card_lists_every_corpus_once(concept_set, tmp_path):
    from captioner.model_card import read_training_data

    _, model = _concept_model(concept_set)
    model.training_data = ["flickr8k", "sst2"]  # what --init learnt from
    export(model, model.decoder, model.vocab, tmp_path / "out", SimpleNamespace(name="everyday"))
    listed = read_training_data(tmp_path / "out")
    assert listed[:2] == ["flickr8k", "sst2"] and len(listed) == len(set(listed))
    assert {"coco-text", "flickr30k-text", "cc-text", "coco-unlabeled"} <= set(listed)
    model.training_data = []  # an --init without a card still names Flickr8k
    export(model, model.decoder, model.vocab, tmp_path / "bare", SimpleNamespace(name="everyday"))
    assert read_training_data(tmp_path / "bare")[0] == "flickr8k"
    card = (tmp_path / "bare" / "README.md").read_text()
    assert "Flickr8k" in card and "Conceptual Captions" in card


def test_a_concept_decoder_restarts_with_a_new_concept_set(concept_set):
    """An earlier everyday run as --init: its learned concept paths stay, the concept set is
    the new run's (here one more word), and a photo whose concepts are the same as before
    gets the same caption."""
    _, model = _concept_model(concept_set)
    dec = model.decoder
    with torch.no_grad():
        for p in (dec.concept_init.weight, dec.copy.weight, dec.rnn.weight_ih):
            p.normal_(0, 0.5)
    wider = build_concept_set(Counter({"cat": 99, "lion": 99, "coffee": 99, "dog": 99, "bus": 99}))
    vocab = Vocabulary([*model.vocab.itos, "bus"])
    again = build_decoder(EverydayConfig(out="unused", dropout=0.0), dec, model.vocab, vocab,
                          wider, dec.tagger)  # fmt: skip
    assert again.config.num_concepts == len(concept_set.words) + 1
    for name in ("concept_init.weight", "copy.weight", "rnn.weight_ih", "rnn.weight_hh"):
        assert torch.equal(again.state_dict()[name], dec.state_dict()[name]), name
    assert torch.equal(again.tagger.weight, dec.tagger.weight)
    bus = vocab.stoi["bus"]
    assert bus in again.concept_ids.tolist() and bus not in dec.concept_ids.tolist()
    restarted = Captioner(encoder=model.encoder, decoder=again, vocab=vocab, device="cpu")
    lion = model.vocab.stoi["lion"]
    ids, weights = torch.tensor([[lion, 0]]), torch.tensor([[0.9, 0.0]])
    grid = torch.rand(1, 49, dec.config.feature_dim, generator=torch.Generator().manual_seed(3))
    cfg = GenerationConfig(beam_size=2)
    old = generate(*dec.start(grid, grid.mean(1), (ids, weights)), model.special_ids, cfg)
    new = generate(*again.start(grid, grid.mean(1), (ids, weights)), restarted.special_ids, cfg)
    assert [model.vocab.decode(t) for t in old.tokens] == [vocab.decode(t) for t in new.tokens]


def test_a_run_keeps_the_concept_set_it_started_with(concept_set, tmp_path):
    cfg = EverydayConfig(out=str(tmp_path / "m"))
    first = run_concepts(cfg, Counter({"cat": 99, "lion": 99}))
    assert (tmp_path / "m" / "run" / "concepts.json").is_file()
    again = run_concepts(cfg, Counter({"cat": 99, "lion": 99, "coffee": 99}))  # rules changed
    assert again.words == first.words and again.classes == first.classes
    assert "coffee" not in again.words


def test_pairing_prefers_photos_that_show_the_caption_concepts(concept_set):
    bank = ed.Bank(
        paths=["cat.jpg", "coffee.jpg", "dog.jpg"],
        grid=torch.zeros(3, 2, 4, dtype=torch.float16),
        pooled=torch.zeros(3, 4),
        concepts=[[("cat", 0.9)], [("coffee", 0.8), ("cat", 0.1)], []],
        captions=[["a cat on a sofa"], [], ["a dog runs on the grass"]],
    )
    texts = [["a", "cup", "of", "coffee"], ["a", "cat", "sleeping"], ["a", "dog", "running"]]
    concepts = [["coffee"], ["cat"], []]
    top = ed.pair_captions(texts, concepts, bank, concept_set, candidates=2)
    assert top[:, 0].tolist() == [1, 0, 2]  # the last by words alone (TF-IDF)


def test_text_rows_read_mentioned_concepts_and_the_photo_tags(concept_set):
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "cat", "coffee", "lion"])
    bank = SimpleNamespace(grid=torch.zeros(2, 2, 4), concepts=[[("cat", 0.7)], []])
    photo = ed.Row(0, vocab.encode("a cat"), None)
    text = ed.Row(1, vocab.encode("a lion"), ["lion"], (1,))
    rows = ed.EverydayRows(bank, [photo], [text], vocab, text_per_epoch=1, top_k=3, drop=0.0)
    assert len(rows) == 2
    _, caps, ids, w, style = rows[0]
    assert ids.tolist() == [vocab.stoi["cat"], 0, 0] and w[0] == pytest.approx(0.7)
    _, caps, ids, w, style = rows[1]
    assert caps.tolist() == vocab.encode("a lion")
    assert ids[0] == vocab.stoi["lion"] and 0.15 <= w[0] <= 0.95  # drawn: photo lacks it
    batch = ed.collate([rows[0], rows[1]])
    assert batch["captions"].shape == (2, 4) and batch["concept_ids"].shape == (2, 3)
    assert np.all(batch["concept_weights"].numpy() >= 0)


def test_text_weights_repeat_a_corpus_in_the_epoch_order(concept_set):
    from captioner.pipelines.train_everyday import corpus_weights

    assert corpus_weights("coco-text=3, cc-text=0") == {"coco-text": 3, "cc-text": 0}
    assert corpus_weights("") == {}
    for bad in ("coco=3", "coco-text", "coco-text=x", "coco-text=-1"):
        with pytest.raises(SystemExit, match="--text-weights"):
            corpus_weights(bad)
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "cat", "lion"])
    bank = SimpleNamespace(grid=torch.zeros(1, 2, 4), concepts=[[]])
    lion = ed.Row(0, vocab.encode("a lion"), ["lion"], (0,), repeats=3)
    cat = ed.Row(0, vocab.encode("a cat"), ["cat"], (0,), repeats=1)
    gone = ed.Row(0, vocab.encode("a cat"), ["cat"], (0,), repeats=0)
    rows = ed.EverydayRows(bank, [], [lion, cat, gone], vocab, text_per_epoch=100, drop=0.0)
    assert len(rows) == 4  # one pass over the weighted order: 3 + 1 + 0
    seen = [rows.row(i) for i in range(len(rows))]
    assert sum(r is lion for r in seen) == 3 and sum(r is cat for r in seen) == 1
    assert not any(r is gone for r in seen)


def test_length_batches_follow_each_epochs_text_slice():
    from captioner.pipelines.batching import LengthBatches

    words = ["<pad>", "<start>", "<end>", "<unk>", "a", "cat"]
    vocab = Vocabulary(words)
    bank = SimpleNamespace(grid=torch.zeros(1, 2, 4), concepts=[[]])
    photo = [ed.Row(0, vocab.encode("a " + "cat " * k), None) for k in (1, 9)]
    text = [ed.Row(0, vocab.encode("a " + "cat " * k), ["cat"], (0,)) for k in range(1, 9)]
    rows = ed.EverydayRows(bank, photo, text, vocab, text_per_epoch=4, drop=0.0)
    batches = LengthBatches(rows.lengths, 2, pool=3)
    seen = {}
    for epoch in (1, 2):
        rows.set_epoch(epoch)  # the trainer sets the dataset's epoch before iterating
        batches.set_epoch(epoch)
        lengths = rows.lengths()
        assert lengths == [len(rows[i][1]) for i in range(len(rows))]
        got = list(batches)
        assert len(got) == len(batches) == 3
        assert sorted(i for b in got for i in b) == list(range(6))
        seen[epoch] = sorted(lengths)
    assert seen[1] != seen[2]  # a new text slice, read afresh


def test_style_vectors_learn_at_their_own_rate(concept_set):
    """Style vectors start at zero: at the decoder's LR they would barely move in an epoch,
    so they get `--style-lr` in a group of their own (and no weight decay)."""
    from captioner.pipelines.train_everyday import EverydayModel, groups

    _, model = _concept_model(concept_set)
    net = EverydayModel(model.decoder)
    cfg = EverydayConfig(out="unused", lr=2e-4, style_lr=5e-3)
    found = groups(net, cfg)
    style = [g for g in found if any(p is net.decoder.styles.weight for p in g["params"])]
    assert len(style) == 1 and style[0]["lr"] == 5e-3 and style[0]["weight_decay"] == 0.0
    assert len(style[0]["params"]) == 1
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in found) == len(trainable)
    with pytest.raises(ValueError, match="style-lr"):
        EverydayConfig(out="unused", style_lr=-1.0)
    with pytest.raises(ValueError, match="self-train-weight"):
        EverydayConfig(out="unused", self_train_weight=-1)


def test_self_training_keeps_captions_that_name_what_the_tagger_sees(concept_set, tmp_path):
    """Captions a model wrote for unlabeled photos join the photo rows only where they name a
    concept the photo's tagger scores at 0.25 or more; the captions are written once and read
    back (a resumed run does not caption the photos again)."""
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "cat", "lion", "man", "on",
                        "sofa", "coffee", "cup", "of"])  # fmt: skip
    bank = ed.Bank(
        paths=["f8k.jpg", "u1.jpg", "u2.jpg", "u3.jpg"],
        grid=torch.zeros(4, 2, 4, dtype=torch.float16),
        pooled=torch.zeros(4, 4),
        concepts=[[("cat", 0.9)], [("cat", 0.6)], [("lion", 0.12)], [("coffee", 0.8)]],
        captions=[["a cat"], [], [], []],
    )
    captions = ["a cat on a sofa", "a lion", "a man on a sofa"]
    rows = ed.pseudo_rows(bank, 1, captions, concept_set, vocab)
    assert [(r.photo, vocab.decode(r.ids)) for r in rows] == [(1, "a cat on a sofa")]
    assert rows[0].concepts is None  # a photo row: the decoder reads the photo's own concepts
    cache = tmp_path / "run" / "self_train.json"
    cache.parent.mkdir()
    cache.write_text('["a cat on a sofa", "a lion", "a cup of coffee"]')
    rows = ed.self_train_rows("no-such-model", cache, bank, 1, concept_set, vocab)
    assert [r.photo for r in rows] == [1, 3]


def test_self_training_captions_the_unlabeled_photos_once(concept_set, tmp_path):
    import json

    _, model = _concept_model(concept_set)
    teacher = model.save_pretrained(tmp_path / "teacher")
    feature_dim = model.decoder.config.feature_dim
    bank = ed.Bank(
        paths=["f8k.jpg", "u1.jpg", "u2.jpg"],
        grid=torch.rand(3, 49, feature_dim, generator=torch.Generator().manual_seed(5)).half(),
        pooled=torch.zeros(3, feature_dim),
        concepts=[[], [], []],
        captions=[["a cat"], [], []],
    )
    cache = tmp_path / "run" / "self_train.json"
    rows = ed.self_train_rows(str(teacher), cache, bank, 1, concept_set, model.vocab,
                              beam_size=2, max_length=8)  # fmt: skip
    written = json.loads(cache.read_text())
    assert len(written) == 2 and all(isinstance(c, str) for c in written)
    assert rows == []  # no photo has a concept the tagger sees: nothing kept


def test_the_training_model_reads_each_rows_style(concept_set):
    """EverydayModel feeds the batch's styles to a styled decoder; a decoder without style
    vectors trains on the same batches and ignores them."""
    from captioner.pipelines.train_everyday import EverydayModel

    base, styled = _concept_model(concept_set)
    plain = build_decoder(EverydayConfig(out="unused", dropout=0.0), base.decoder, base.vocab,
                          styled.vocab, concept_set, styled.decoder.tagger)  # fmt: skip
    with torch.no_grad():
        styled.decoder.styles.weight.normal_(0, 3.0)
        styled.decoder.concept_init.weight.normal_(0, 0.5)
    g = torch.Generator().manual_seed(6)
    batch = {
        "grid": torch.rand(2, 49, plain.config.feature_dim, generator=g).half(),
        "captions": torch.tensor([[1, 4, 5, 2], [1, 5, 2, 0]]),
        "concept_ids": torch.tensor([[styled.vocab.stoi["cat"], 0]] * 2),
        "concept_weights": torch.tensor([[0.8, 0.0]] * 2),
        "styles": torch.tensor([0, 0]),
    }
    with torch.no_grad():
        flickr = EverydayModel(styled.decoder.eval())(batch)[0]
        coco = EverydayModel(styled.decoder)({**batch, "styles": torch.tensor([1, 1])})[0]
        assert not torch.allclose(flickr, coco)
        out = EverydayModel(plain.eval())(batch)[0]
    assert out.shape == flickr.shape
