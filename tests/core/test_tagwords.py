"""The ImageNet class -> caption word table and mention matching."""

import json

import pytest

from captioner import tagwords


@pytest.mark.parametrize(
    ("index", "name"),
    [(285, "cat"), (207, "dog"), (339, "horse"), (967, "coffee"), (293, "cheetah"),
     (671, "bicycle"), (814, "boat"), (817, "car"), (937, "broccoli")],
)  # fmt: skip
def test_everyday_names_of_imagenet_classes(index, name):
    assert tagwords.tag_name(index) == name


def test_the_table_covers_every_class_in_order_with_its_own_words_first():
    table = json.loads(tagwords.TABLE.read_text())
    assert len(table) == 1000
    assert table[0]["wnid"] == "n01440764"  # tench: ImageNet's first class
    assert all(e["name"] and e["words"] for e in table)
    assert tagwords.tag_words(285)[0] == "egyptian cat"
    assert "cat" in tagwords.tag_words(285)  # a hypernym is a caption word too
    assert tagwords.tag_words(207).index("retriever") < tagwords.tag_words(207).index("dog")


@pytest.mark.parametrize(
    ("caption", "words", "expected"),
    [
        ("two dogs run on the beach", "dog", True),
        ("a man rides a bike", ["bicycle", "bike"], True),
        ("a puppy plays", "dog", False),
        ("a cup of coffee on a table", "coffee", True),
        ("a child with a coffee mug", ["coffee mug"], True),
        ("a coffee table", ["coffee mug"], False),
        ("three ponies graze", "pony", True),
        ("a doghouse", "dog", False),
    ],
)
def test_mentions_matches_whole_words_phrases_and_plurals(caption, words, expected):
    assert tagwords.mentions(caption, words) is expected


def test_holdout_drops_training_images_that_name_the_words_and_keeps_the_rest(
    tmp_path, monkeypatch
):
    from PIL import Image

    from captioner.data import load_caption_dataset

    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "cache"))
    images = tmp_path / "Images"
    images.mkdir()
    captions = {
        "a.jpg": "a horse runs in a field",
        "b.jpg": "two men ride bikes",
        "c.jpg": "a dog catches a ball",
        "d.jpg": "a horse jumps a fence",
    }
    lines = []
    for name, caption in captions.items():
        Image.new("RGB", (8, 6), "red").save(images / name)
        lines += [f"{name}#{k}\t{caption} ." for k in range(2)]
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, names in [("train", "a.jpg b.jpg c.jpg"), ("dev", "d.jpg"), ("test", "")]:
        (tmp_path / f"Flickr_8k.{split}Images.txt").write_text(names.replace(" ", "\n") + "\n")
    full = load_caption_dataset(f"flickr8k:{tmp_path}")
    held = load_caption_dataset(f"flickr8k:{tmp_path}?holdout=horse,bicycle,bike")
    assert full["train"]["image_id"] == ["a.jpg", "b.jpg", "c.jpg"]
    assert held["train"]["image_id"] == ["c.jpg"]  # plural "bikes" counts as "bike"
    assert held["validation"]["image_id"] == ["d.jpg"]  # scored on the held-out word later
    kw = load_caption_dataset(f"flickr8k:{tmp_path}", holdout="dog")
    assert kw["train"]["image_id"] == ["a.jpg", "b.jpg"]


# --- object naming (issue 10 part B) -------------------------------------------------------
MOUNTAIN_BIKE, CHEETAH, ESPRESSO, COWBOY_HAT, GOLDEN_RETRIEVER, TENNIS_BALL = (
    671, 293, 967, 515, 207, 852)  # fmt: skip


def _named(caption: str, tags, **kw) -> str:
    return " ".join(tagwords.name_objects(caption.split(), tags, **kw))


def test_an_unseen_object_word_becomes_the_confident_tag_of_its_kind():
    assert _named("a man rides a motorcycle", [(MOUNTAIN_BIKE, 0.8)]) == "a man rides a bicycle"
    assert _named("a dog runs in the water", [(CHEETAH, 0.7)]) == "a cheetah runs in the water"
    assert _named("a man in a red shirt", [(COWBOY_HAT, 0.6)]) == "a man in a red hat"
    assert _named("two dogs play", [(CHEETAH, 0.9)]) == "two cheetahs play"  # plural kept


def test_naming_keeps_what_the_tagger_supports_and_what_is_unrelated():
    # the tagger sees the dog too: nothing to swap, the ball has no slot of its kind
    tags = [(GOLDEN_RETRIEVER, 0.5), (TENNIS_BALL, 0.4)]
    assert _named("a dog runs on the grass", tags) == "a dog runs on the grass"
    # coffee is no kin of a dog: no "a coffee runs"; without the kin rule it swaps
    assert _named("a dog runs", [(ESPRESSO, 0.9)]) == "a dog runs"
    assert _named("a dog runs", [(ESPRESSO, 0.9)], same_kind=False) == "a coffee runs"
    # unsure tags, words for people and words used in other senses never swap
    assert _named("a man rides a motorcycle", [(MOUNTAIN_BIKE, 0.2)]) == "a man rides a motorcycle"
    assert _named("a person in an orange shirt", [(ESPRESSO, 0.9)], same_kind=False) == (
        "a person in an orange coffee"
    )
    # a tag the caption already names is not used again
    assert _named("a bicycle and a motorcycle", [(MOUNTAIN_BIKE, 0.9)]) == (
        "a bicycle and a motorcycle"
    )


def test_each_confident_tag_fills_one_slot():
    tags = [(CHEETAH, 0.6), (MOUNTAIN_BIKE, 0.35)]
    got = _named("a dog chases a dog near a motorcycle", tags)
    assert got == "a cheetah chases a dog near a bicycle"


def test_the_api_names_objects_when_asked_and_only_with_an_imagenet_tagger(monkeypatch):
    import torch
    from tests_support import tiny_captioner

    from captioner.recognition import RecognitionConfig, RecognitionHead

    model = tiny_captioner(sentiment=False)
    monkeypatch.setattr(model.vocab, "decode", lambda ids: "a man rides a motorcycle")
    image = torch.zeros(3, 64, 64)
    assert model.caption(image, name_objects=True) == ["a man rides a motorcycle"]  # no tagger

    labels = [f"class {i}" for i in range(1000)]
    head = RecognitionHead(RecognitionConfig(in_dim=model.encoder.out_channels, labels=labels))
    torch.nn.init.zeros_(head.net[-1].weight)
    with torch.no_grad():
        head.net[-1].bias.zero_()
        head.net[-1].bias[MOUNTAIN_BIKE] = 10.0  # the tagger is sure: a mountain bike
    model.recognizer = head
    assert model.caption(image) == ["a man rides a motorcycle"]  # off unless asked
    assert model.caption(image, name_objects=True) == ["a man rides a bicycle"]
    model.generation_defaults = {"name_objects": True}  # a model's own default (config.json)
    assert model.describe(image, tags=1)[0].caption == "a man rides a bicycle"
    assert model.caption(image, name_objects=False) == ["a man rides a motorcycle"]


def test_novel_object_scores_count_mentions_against_any_reference():
    from captioner.pipelines.novel_objects import mention_f1, score_rows

    refs = [["a man rides a bike", "a cyclist"], ["a dog runs"], ["a boy with a ball"]]
    caps = ["a man rides a bicycle", "a man rides a bike", "a dog runs"]
    # only image 0 has a reference naming a bike; captions 0 and 1 name one: 1 hit, 1 false
    assert mention_f1(refs, caps, ["bike", "bicycle"]) == 2 * 1 / (1 + 2)
    assert mention_f1(refs, caps, ["ball"]) == 0.0
    assert mention_f1(refs, ["a cat"] * 3, ["hat"]) == 0.0  # nobody names it: 0, not an error
    tags = [[(MOUNTAIN_BIKE, 0.9)], [(GOLDEN_RETRIEVER, 0.9)], [(TENNIS_BALL, 0.9)]]
    decoded = {"captions": ["a man rides a motorcycle", "a dog runs", "a boy with a toy"],
               "tags": tags}  # fmt: skip
    rows = score_rows(refs, decoded)
    assert "slots filled by the caption-word detector" not in rows  # no detector given
    assert rows["as decoded"]["bicycle"] == 0.0
    assert rows["name_objects"]["bicycle"] == 1.0  # motorcycle -> bicycle
    assert rows["naming without the hypernym rule"]["ball"] == 1.0  # toy -> ball
    assert set(rows["name_objects"]) >= {"mean F1", "BLEU-4", "CIDEr-D"}
    alone = rows["the tagger alone (no caption)"]  # a confident tag = a mention, no caption
    assert alone["bicycle"] == 1.0 and alone["ball"] == 1.0 and alone["hat"] == 0.0
    weak = [[(MOUNTAIN_BIKE, 0.04)], [], []]  # below TAGGER_MIN_SCORE: not said
    rows = score_rows(refs, {"captions": caps, "tags": weak})
    assert rows["the tagger alone (no caption)"]["bicycle"] == 0.0
    # a caption-word detector: its slot fills and its words alone (from DETECTOR_MIN_SCORE)
    detected = [[("bike", 0.7), ("hat", 0.1)], [("dog", 0.9)], [("ball", 0.19)]]
    rows = score_rows(refs, {"captions": caps, "tags": weak, "detected": detected,
                             "detector captions": ["a man rides a bike", "a dog", "a boy"],
                             "boosted captions": caps, "slot boost": 2.0,
                             "constrained captions": ["a bike", "a dog", "a hat and a ball"],
                             "slot min score": 0.2})  # fmt: skip
    assert rows["slots filled by the caption-word detector"]["bicycle"] == 1.0
    assert rows["+ slot boost 2"]["bicycle"] == 2 * 1 / (1 + 2)
    constrained = rows["+ constrained beam search, slot_min_score 0.2"]
    assert constrained["bicycle"] == 1.0 and constrained["ball"] == 1.0
    assert constrained["hat"] == 0.0  # said, but no reference names a hat
    alone = rows["the caption-word detector alone (no caption)"]
    assert alone["bicycle"] == 1.0 and alone["ball"] == 0.0 and alone["hat"] == 0.0


def test_novel_object_examples_show_images_naming_held_out_objects(capsys):
    import datasets

    from captioner.pipelines import novel_objects

    split = datasets.Dataset.from_dict({
        "image_id": ["a.jpg", "b.jpg", "c.jpg"],
        "captions": [["a dog runs"], ["a man rides a bike"], ["a girl in a hat on a bike"]],
    })  # fmt: skip
    decoded = {"captions": ["x0", "x1", "x2"], "boosted captions": ["y0", "y1", "y2"],
               "slot boost": 2.0}  # fmt: skip
    lines = novel_objects.example_lines(split, decoded, 5)
    assert lines[2:] == ["| b.jpg (bicycle) | x1 | y1 |", "| c.jpg (bicycle, hat) | x2 | y2 |"]
    assert lines[0].endswith("| as decoded | slot boost 2 |")
    assert len(novel_objects.example_lines(split, decoded, 1)) == 3
    with pytest.raises(SystemExit):  # a boost needs a detector
        novel_objects.main(["--flickr8k", "x", "--slot-boost", "2"])
    assert "--slot-boost needs --detector" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        novel_objects.main(["--flickr8k", "x", "--slot-min-score", "0.3"])
    assert "--slot-min-score needs --detector" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        novel_objects.main(["--flickr8k", "x", "--detector", "d", "--slot-min-score", "2"])
    assert "--slot-min-score must be between 0 and 1, got 2" in capsys.readouterr().err


def test_object_slots_replace_object_words_and_fill_from_the_tags():
    assert tagwords.slot_caption("A dog chases a red ball.") == "a xobj chases a red xobj"
    assert tagwords.slot_caption("A man rides his bikes") == "a man rides his xobj"  # plural
    assert tagwords.slot_caption("a girl in an orange top") == "a girl in an orange top"
    tags = [(GOLDEN_RETRIEVER, 0.6), (TENNIS_BALL, 0.3)]
    assert _filled("a xobj chases a xobj", tags) == "a dog chases a ball"
    assert _filled("a dog chases a xobj", tags) == "a dog chases a ball"  # dog is taken
    assert _filled("a xobj and a xobj and a xobj", tags) == "a dog and a ball and a object"
    assert _filled("a man rides", tags) == "a man rides"


def _filled(caption: str, tags) -> str:
    return " ".join(tagwords.fill_slots(caption.split(), tags))


def test_a_slot_model_fills_its_slots_from_the_tagger_at_decoding(monkeypatch):
    import torch
    from tests_support import tiny_captioner

    from captioner.recognition import RecognitionConfig, RecognitionHead

    model = tiny_captioner(sentiment=False)
    model.vocab = type(model.vocab)([*model.vocab.itos, tagwords.SLOT])
    monkeypatch.setattr(model.vocab, "decode", lambda ids: "a xobj rides a xobj")
    image = torch.zeros(3, 64, 64)
    assert model.caption(image) == ["an object rides an object"]  # no tagger: generic word
    labels = [f"class {i}" for i in range(1000)]
    head = RecognitionHead(RecognitionConfig(in_dim=model.encoder.out_channels, labels=labels))
    torch.nn.init.zeros_(head.net[-1].weight)
    with torch.no_grad():
        head.net[-1].bias.zero_()
        head.net[-1].bias[GOLDEN_RETRIEVER] = 10.0
        head.net[-1].bias[MOUNTAIN_BIKE] = 9.0
    model.recognizer = head
    assert model.caption(image) == ["a dog rides a bicycle"]


def test_slot_training_rewrites_only_the_training_captions():
    import datasets

    from captioner.pipelines.train_captioner import slot_training_captions

    split = {"image_id": ["a.jpg"], "captions": [["A dog on a bike.", "a dog"]]}
    dsd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(split),
            "validation": datasets.Dataset.from_dict(split),
        }
    )
    out = slot_training_captions(dsd)
    assert out["train"]["captions"] == [["a xobj on a xobj", "a xobj"]]
    assert out["validation"]["captions"] == [["A dog on a bike.", "a dog"]]
    dsd["train"] = datasets.Dataset.from_dict(split)
    typed = slot_training_captions(dsd, typed=True)
    assert typed["train"]["captions"] == [["a xanimal on a xvehicle", "a xanimal"]]


def test_typed_slots_take_only_tags_of_their_kind():
    words = ("dog", "bike", "canoe", "shirt", "ball", "camera", "bench", "bottle", "bucket")
    kinds = [tagwords.object_kind(w) for w in words]
    assert kinds == ["animal", "vehicle", "vehicle", "clothing", "equipment", "equipment",
                     "thing", "thing", "thing"]  # a bottle is a vessel, but no vehicle  # fmt: skip
    assert tagwords.typed_slot_caption("A man in a red shirt rides a bike past a dog.") == (
        "a man in a red xclothing rides a xvehicle past a xanimal"
    )
    caption = "a man in a red xclothing rides a xvehicle".split()
    # the bicycle goes to the vehicle slot, the hat to the garment slot, never the other way
    tags = [(MOUNTAIN_BIKE, 0.6), (COWBOY_HAT, 0.2)]
    assert tagwords.fill_typed_slots(caption, tags) == "a man in a red hat rides a bicycle".split()
    # no confident tag of a slot's kind: the kind's fallback word, not a dog for a garment
    got = tagwords.fill_typed_slots(caption, [(GOLDEN_RETRIEVER, 0.9)])
    assert got == "a man in a red shirt rides a motorcycle".split()


def test_a_typed_slot_model_is_filled_by_kind_at_decoding(monkeypatch):
    import torch
    from tests_support import tiny_captioner

    from captioner.recognition import RecognitionConfig, RecognitionHead

    model = tiny_captioner(sentiment=False)
    model.vocab = type(model.vocab)([*model.vocab.itos, *tagwords.TYPED_SLOTS.values()])
    monkeypatch.setattr(model.vocab, "decode", lambda ids: "a xanimal rides a xvehicle")
    image = torch.zeros(3, 64, 64)
    assert model.caption(image) == ["a dog rides a motorcycle"]  # no tagger: fallbacks
    labels = [f"class {i}" for i in range(1000)]
    head = RecognitionHead(RecognitionConfig(in_dim=model.encoder.out_channels, labels=labels))
    torch.nn.init.zeros_(head.net[-1].weight)
    with torch.no_grad():
        head.net[-1].bias.zero_()
        head.net[-1].bias[MOUNTAIN_BIKE] = 10.0  # most probable, but not an animal
        head.net[-1].bias[CHEETAH] = 9.0
    model.recognizer = head
    assert model.caption(image) == ["a cheetah rides a bicycle"]


def test_a_caption_word_detector_fills_typed_slots_with_its_best_word_of_the_kind(monkeypatch):
    import torch
    from tests_support import tiny_captioner

    from captioner.recognition import RecognitionConfig, RecognitionHead

    caption = "a man in a xclothing rides a xvehicle".split()
    detected = [("dog", 0.9), ("shirt", 0.2), ("hat", 0.4), ("bike", 0.03), ("car", 0.01)]
    # the best word of each slot's kind, however unsure; the most probable object (dog) has
    # no slot of its kind and is not said
    assert tagwords.fill_typed_slots(caption, [], detected=detected) == (
        "a man in a hat rides a bike".split()
    )
    # a word the caption already says is not said twice; detector words before ImageNet tags
    got = tagwords.fill_typed_slots("a hat and a xclothing on a xvehicle".split(),
                                    [(MOUNTAIN_BIKE, 0.9)], detected=[("hat", 0.8), ("car", 0.1)])  # fmt: skip
    assert got == "a hat and a shirt on a car".split()
    # a garment named in the plural only keeps its plural, as a label and in a slot
    assert tagwords.caption_objects(["a man in blue jeans and a red hat"]) == ["hat", "jeans"]
    got = tagwords.fill_typed_slots(
        "a man in blue xclothing".split(), [], detected=[("jeans", 0.9)]
    )
    assert got == "a man in blue jeans".split()
    # one thing is named once: after "bike", neither "bike" nor "bicycle" fills another slot
    detected = [("bike", 0.9), ("bicycle", 0.8), ("boat", 0.1)]
    got = tagwords.fill_typed_slots("a man rides a xvehicle near a xvehicle".split(), [],
                                    detected=detected)  # fmt: skip
    assert got == "a man rides a bike near a boat".split()
    got = tagwords.fill_typed_slots("a man rides a bike near a xvehicle".split(), [],
                                    detected=detected)  # fmt: skip
    assert got == "a man rides a bike near a boat".split()

    model = tiny_captioner(sentiment=False)
    model.vocab = type(model.vocab)([*model.vocab.itos, *tagwords.TYPED_SLOTS.values()])
    monkeypatch.setattr(model.vocab, "decode", lambda ids: "a xanimal rides a xvehicle")
    labels = ["bike", "car", "dog", "horse"]
    head = RecognitionHead(RecognitionConfig(in_dim=model.encoder.out_channels, labels=labels,
                                             multi_label=True, caption_objects=True))  # fmt: skip
    torch.nn.init.zeros_(head.net[-1].weight)
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.tensor([-3.0, -1.0, -4.0, -2.0]))  # car, horse lead
    model.recognizer = head
    assert model.caption(torch.zeros(3, 64, 64)) == ["a horse rides a car"]


def test_slot_boost_makes_room_for_what_the_detector_sees(tmp_path):
    """GenerationConfig.slot_boost: a typed-slot decoder whose captions name no animal says
    the detector's animal once the animal slot is favoured by the detector's confidence."""
    import torch

    from captioner.api import Captioner

    labels = ["bike", "dog", "horse"]
    model = _animal_shy_captioner(labels, [-4.0, -3.0, 3.0])  # a horse, surely
    image = torch.zeros(3, 64, 64)
    (plain,) = model.caption(image, max_length=6)
    assert "horse" not in plain.split()
    (boosted,) = model.caption(image, max_length=6, slot_boost=60.0)
    assert "horse" in boosted.split() and "xanimal" not in boosted.split()
    assert model.caption(image, max_length=6, slot_boost=0.0) == [plain]
    # a model directory keeps the detector and the boost as its own default
    model.generation_defaults = {"slot_boost": 60.0}
    again = Captioner.from_pretrained(model.save_pretrained(tmp_path / "m"), device="cpu",
                                      backend="torch")  # fmt: skip
    assert again.recognizer.config.caption_objects and again.recognizer.labels == labels
    assert again.caption(image, max_length=6) == [boosted]
    model.generation_defaults = {}
    # without a caption-word detector the boost has nothing to go by: no change
    model.recognizer = None
    assert "horse" not in model.caption(image, max_length=6, slot_boost=60.0)[0].split()


def test_slot_min_score_gives_each_confident_detector_word_a_slot(tmp_path):
    """GenerationConfig.slot_min_score: constrained beam search writes a slot of its kind for
    every detector word at least that probable, even where the decoder would never name one,
    and the slots take those words."""
    import torch

    from captioner.api import Captioner

    # bike 0.02, dog 0.88, horse 0.95, retriever (a dog) 0.73
    model = _animal_shy_captioner(["bike", "dog", "horse", "retriever"], [-4.0, 2.0, 3.0, 1.0])
    image = torch.zeros(3, 64, 64)
    (plain,) = model.caption(image, max_length=8)
    assert not {"horse", "dog", "xanimal"} & set(plain.split())
    (one,) = model.caption(image, max_length=8, slot_min_score=0.9)  # the horse only
    assert one.split().count("horse") == 1 and "dog" not in one.split()
    (two,) = model.caption(image, max_length=8, slot_min_score=0.5)  # horse and dog
    words = two.split()
    assert words.count("horse") == 1 and words.count("dog") == 1  # the retriever is a dog
    assert "retriever" not in words and "xanimal" not in words
    assert model.caption(image, max_length=8, slot_min_score=0.99) == [plain]  # none reach it
    # greedy search meets the constraints too, with one beam per state
    (greedy,) = model.caption(image, max_length=8, beam_size=1, slot_min_score=0.9)
    assert "horse" in greedy.split()
    # a model directory keeps the setting as its own default
    model.generation_defaults = {"slot_min_score": 0.5}
    again = Captioner.from_pretrained(model.save_pretrained(tmp_path / "m"), device="cpu",
                                      backend="torch")  # fmt: skip
    assert again.caption(image, max_length=8) == [two]
    with pytest.raises(ValueError, match=r"slot_min_score must be in \[0, 1\], got 1.5"):
        model.caption(image, slot_min_score=1.5)
    # without a caption-word detector there is nothing to constrain to: no change
    model.generation_defaults = {}
    model.recognizer = None
    assert model.caption(image, max_length=8, slot_min_score=0.5) == [plain]


@pytest.mark.parametrize(
    "caption, expected",
    [
        ("a man in a apron", "a man in an apron"),
        ("an dog chases an elephant", "a dog chases an elephant"),
        ("a man in a blue jeans", "a man in blue jeans"),
        ("a girl in a pants", "a girl in pants"),
        ("a pair of jeans", "a pair of jeans"),
        ("a boy in an uniform holds an umbrella", "a boy in a uniform holds an umbrella"),
        ("a man plays a ukulele for an hour", "a man plays a ukulele for an hour"),
        ("two dogs and a 8", "two dogs and a 8"),  # not a word: left alone
        ("a", "a"),
    ],
)
def test_articles_agree_with_the_word_put_after_them(caption, expected):
    assert " ".join(tagwords.agree_articles(caption.split())) == expected


def test_a_filled_slot_gets_the_article_it_needs(monkeypatch):
    import torch
    from tests_support import tiny_captioner

    from captioner.recognition import RecognitionConfig, RecognitionHead

    model = tiny_captioner(sentiment=False)
    model.vocab = type(model.vocab)([*model.vocab.itos, *tagwords.TYPED_SLOTS.values()])
    monkeypatch.setattr(
        model.vocab, "decode", lambda ids: "a man in a blue xclothing and a xclothing"
    )
    labels = ["apron", "jeans", "shirt"]
    head = RecognitionHead(RecognitionConfig(in_dim=model.encoder.out_channels, labels=labels,
                                             multi_label=True, caption_objects=True))  # fmt: skip
    torch.nn.init.zeros_(head.net[-1].weight)
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.tensor([1.0, 2.0, -3.0]))  # jeans, then apron
    model.recognizer = head
    assert model.caption(torch.zeros(3, 64, 64)) == ["a man in blue jeans and an apron"]


@pytest.mark.parametrize(
    "word, expected",
    [("dog", "dogs"), ("bus", "buses"), ("puppy", "puppies"), ("toy", "toys"),
     ("sheep", "sheep"), ("man", "men"), ("jeans", "jeans"), ("box", "boxes")],
)  # fmt: skip
def test_plurals_of_object_words(word, expected):
    assert tagwords.plural(word) == expected


def test_a_slot_after_a_count_takes_the_plural():
    detected = [("dog", 0.9), ("ball", 0.6), ("jeans", 0.5)]
    got = tagwords.fill_typed_slots("two black xanimal chase a xequipment".split(), [],
                                    detected=detected)  # fmt: skip
    assert got == "two black dogs chase a ball".split()
    got = tagwords.fill_typed_slots("two men in xclothing play".split(), [], detected=detected)
    assert got == "two men in jeans play".split()  # the count is not the garment's
    got = tagwords.fill_typed_slots("several xequipment".split(), [], detected=[])
    assert got == "several toys".split()  # the kind's fallback word too


def test_a_narrower_word_for_the_same_thing_fills_the_slot_when_nearly_as_probable():
    detected = [("vehicle", 0.9), ("car", 0.85), ("toy", 0.54)]
    assert tagwords.rank_detected(detected)[:2] == ["car", "vehicle"]
    got = tagwords.fill_typed_slots("a boy on a xvehicle".split(), [], detected=detected)
    assert got == "a boy on a car".split()
    assert tagwords.rank_detected([("vehicle", 0.9), ("car", 0.3)])[:1] == ["vehicle"]  # unsure
    # a basic word keeps its rank: the dog is not called by its breed
    assert tagwords.rank_detected([("retriever", 0.7), ("dog", 0.95)]) == ["dog", "retriever"]
    got = tagwords.fill_typed_slots("a xanimal runs".split(), [],
                                    detected=[("dog", 0.95), ("collie", 0.3)])  # fmt: skip
    assert got == "a dog runs".split()


def _animal_shy_captioner(labels: list[str], logits: list[float]):
    """A tiny typed-slot captioner that never says an animal by itself, beside a caption-word
    detector of `labels` whose probabilities are sigmoid(`logits`) for every image."""
    import torch
    from tests_support import CAPTIONS, build_encoder, tiny_decoder

    from captioner.api import Captioner
    from captioner.recognition import RecognitionConfig, RecognitionHead
    from captioner.text import Vocabulary

    torch.manual_seed(0)
    encoder = build_encoder("resnet18", weights=None)
    vocab = Vocabulary.build([*CAPTIONS, "a xanimal near a xvehicle"])
    decoder = tiny_decoder(vocab, encoder.out_channels)
    with torch.no_grad():
        decoder.out.bias[vocab.stoi["xanimal"]] = -30.0
    head = RecognitionHead(RecognitionConfig(in_dim=encoder.out_channels, labels=labels,
                                             multi_label=True, caption_objects=True))  # fmt: skip
    torch.nn.init.zeros_(head.net[-1].weight)
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.tensor(logits))
    return Captioner(encoder=encoder, decoder=decoder, vocab=vocab, recognizer=head,
                     device="cpu", name="tiny")  # fmt: skip
