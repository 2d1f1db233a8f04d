import io
import json
from collections import Counter

import datasets
import numpy as np
import pytest
from PIL import Image

from captioner.data.scenes import (
    HELD_OUT_PAIRS,
    RGB,
    SEEN_PAIRS,
    SPLITS,
    build_scene_dataset,
    canonical_caption,
    generate_scene,
    make_example,
    parse_caption,
    render_scene,
    scene_captions,
    scene_score,
)
from captioner.scene_grammar import (
    COLORS,
    COUNT_WORDS,
    PLURALS,
    REL_WORDS,
    SHAPES,
    SIZE_WORDS,
    Instance,
    ObjectGroup,
    SceneGraph,
    caption_relation,
)
from captioner.text import tokenize

KEY = lambda g: (g.count, g.size, g.color, g.shape)  # noqa: E731


def scenes(n, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return [generate_scene(rng, **kw) for _ in range(n)], rng


@pytest.fixture(scope="module")
def small():
    return build_scene_dataset(num_train=200, num_eval=40, seed=3, image_size=64)


# ----------------------------------------------------------------------------- grammar


def test_parser_round_trips_every_generated_caption():
    batch, rng = scenes(500)
    for scene in batch:
        captions = scene_captions(scene, rng, n=5)
        assert len(captions) == 5 and len(set(captions)) == 5, captions
        assert captions[0] == canonical_caption(scene)
        for caption in captions:
            parsed = parse_caption(caption)
            assert parsed is not None, caption
            # every group is mentioned exactly once with count, size, colour and shape
            assert sorted(map(KEY, parsed.objects)) == sorted(map(KEY, scene.objects)), caption
            index = {KEY(g): i for i, g in enumerate(scene.objects)}
            to_true = [index[KEY(g)] for g in parsed.objects]
            assert len(parsed.relations) == (len(scene.objects) > 1), caption
            for r in parsed.relations:  # every stated relation is true
                assert scene.holds(to_true[r.subject], r.predicate, to_true[r.object]), caption


def test_captions_use_only_the_grammar_words():
    words = {
        "there",
        "is",
        "are",
        "an",
        "image",
        "of",
        "and",
        "in",
        "the",
        "picture",
        *COLORS,
        *SHAPES,
    }
    words |= {*PLURALS.values(), *(w for ws in COUNT_WORDS.values() for w in ws)}
    words |= {w for ws in SIZE_WORDS.values() for w in ws}
    words |= {t for ws in REL_WORDS.values() for phrase in ws for t in phrase.split()}
    batch, rng = scenes(300, seed=1)
    seen = Counter()
    for scene in batch:
        for caption in scene_captions(scene, rng):
            assert caption == caption.lower() and set(caption) <= set(
                "abcdefghijklmnopqrstuvwxyz ,"
            )
            seen.update(tokenize(caption))
    assert set(seen) <= words
    assert len(seen) >= 45  # paraphrases really use the synonyms


@pytest.mark.slow
def test_canonical_caption_is_the_greedy_mode_of_the_references():
    """The most probable next word, given the canonical prefix, is always the canonical one,
    so a decoder trained on the references can learn to say the canonical caption."""
    batch, _ = scenes(40, seed=2)
    for i, scene in enumerate(batch):
        pool = [
            c.split()
            for k in range(60)
            for c in scene_captions(scene, np.random.default_rng([i, k]))
        ]
        out: list[str] = []
        while True:
            nxt = Counter(
                t[len(out)] if len(t) > len(out) else None for t in pool if t[: len(out)] == out
            )
            word = nxt.most_common(1)[0][0]
            if word is None:
                break
            out.append(word)
        assert " ".join(out) == canonical_caption(scene)


def test_parse_caption_partial_and_outside_grammar():
    assert parse_caption("") is None
    assert parse_caption("hello world , nothing here !") is None
    assert parse_caption(None) is None
    g = parse_caption("A red thing and two BIG blue squares, left of the circle.")
    assert [KEY(o) for o in g.objects] == [
        (2, "large", "blue", "square"),
        (1, None, None, "circle"),
    ]
    assert g.relations == []  # "the" breaks the relation: not in the grammar
    g = parse_caption("three little green stars are under a large black hexagon")
    assert [KEY(o) for o in g.objects] == [
        (3, "small", "green", "star"),
        (1, "large", "black", "hexagon"),
    ]
    assert [(r.subject, r.predicate, r.object) for r in g.relations] == [(1, "above", 0)]
    rng = np.random.default_rng(0)
    vocab = [
        "a",
        "two",
        "red",
        "big",
        "circle",
        "left",
        "of",
        "to",
        "the",
        "above",
        "is",
        "and",
        "zzz",
        ",",
        "'s",
    ]
    for _ in range(2000):  # never raises on junk
        text = " ".join(rng.choice(vocab, size=rng.integers(0, 12)))
        parsed = parse_caption(text)
        assert parsed is None or all(0 <= r.subject < len(parsed.objects) for r in parsed.relations)


def test_scene_graph_json_round_trip_and_errors():
    batch, _ = scenes(20, seed=4)
    for scene in batch:
        assert SceneGraph.from_json(scene.to_json()) == scene
    with pytest.raises(ValueError, match="malformed scene graph JSON"):
        SceneGraph.from_json("{not json")
    with pytest.raises(ValueError, match="malformed scene graph JSON"):
        SceneGraph.from_json(json.dumps({"objects": [{"colour": "red"}]}))


# ----------------------------------------------------------------------------- scoring


def test_scene_score_true_captions_score_one():
    batch, rng = scenes(100, seed=5)
    jsons = [s.to_json() for s in batch for _ in range(5)]
    captions = [c for s in batch for c in scene_captions(s, rng)]
    result = scene_score(jsons, captions)
    assert all(v == 1.0 for v in result.values()), result
    assert {
        "scene_precision",
        "scene_recall",
        "scene_f1",
        "object_f1",
        "color_f1",
        "size_f1",
    } <= set(result)
    assert {"count_f1", "relation_f1", "parse_rate"} <= set(result)


def two_group_scene():
    a = ObjectGroup(
        "circle", "red", "small", 2, [Instance(0.1, 0.5, 0.05), Instance(0.25, 0.5, 0.05)]
    )
    b = ObjectGroup("square", "blue", "large", 1, [Instance(0.75, 0.5, 0.1)])
    from captioner.data.scenes import scene_relations

    return SceneGraph([a, b], scene_relations([a, b]), "plain")


def test_scene_score_penalises_wrong_and_missing_facts():
    scene = two_group_scene().to_json()
    assert caption_relation(SceneGraph.from_json(scene)) == (0, "left", 1)
    true = "two small red circles left of a large blue square"
    assert scene_score([scene], [true])["scene_f1"] == 1.0
    wrong_colour = scene_score([scene], ["two small green circles left of a large blue square"])
    assert wrong_colour["color_precision"] == 0.5 and wrong_colour["color_recall"] == 0.5
    assert wrong_colour["object_f1"] == 1.0 and wrong_colour["size_f1"] == 1.0
    assert wrong_colour["scene_precision"] == pytest.approx(8 / 9)
    missing = scene_score([scene], ["two small red circles"])
    assert missing["scene_precision"] == 1.0 and missing["scene_recall"] == pytest.approx(4 / 9)
    assert missing["object_recall"] == 0.5 and missing["relation_recall"] == 0.0
    wrong_rel = scene_score([scene], ["two small red circles right of a large blue square"])
    assert wrong_rel["relation_precision"] == 0.0 and wrong_rel["object_f1"] == 1.0
    inverse = scene_score([scene], ["a big blue square to the right of two little red circles"])
    assert inverse["scene_f1"] == 1.0
    wrong_count = scene_score([scene], ["a small red circle left of a large blue square"])
    assert wrong_count["count_f1"] == 0.5 and wrong_count["color_f1"] == 1.0
    junk = scene_score([scene, scene], ["nothing at all", true])
    assert (
        junk["parse_rate"] == 0.5 and junk["scene_recall"] == 0.5 and junk["scene_precision"] == 1.0
    )


def test_scene_score_errors():
    with pytest.raises(ValueError, match="2 scenes but 1 captions"):
        scene_score([two_group_scene().to_json()] * 2, ["a red circle"])
    with pytest.raises(ValueError, match="malformed scene graph JSON"):
        scene_score(["[]"], ["a red circle"])


# ----------------------------------------------------------------------------- world


def test_generated_scenes_are_clean():
    batch, _ = scenes(400, seed=6)
    assert Counter(len(s.objects) for s in batch).keys() == {1, 2, 3, 4}
    for s in batch:
        keys = [(g.size, g.color, g.shape) for g in s.objects]
        assert len(set(keys)) == len(keys) and all((c, sh) in SEEN_PAIRS for _, c, sh in keys)
        assert 1 <= sum(g.count for g in s.objects) <= 4
        for g in s.objects:
            assert g.count == len(g.instances) and 1 <= g.count <= 3
            for a in g.instances:
                assert a.r <= a.x <= 1 - a.r and a.r <= a.y <= 1 - a.r
                assert all(
                    np.hypot(a.x - b.x, a.y - b.y) > a.r + b.r for b in g.instances if b is not a
                )
        if len(s.objects) > 1:  # the captioned pair is related along exactly one axis
            i, pred, j = caption_relation(s)
            assert (i, j) == (0, 1)
            assert s.holds(0, "left", 1) + s.holds(0, "above", 1) + s.holds(1, "left", 0) >= 1
        for r in s.relations:  # relations are exactly the geometric facts
            axis = 0 if r.predicate == "left" else 1
            right = max((a.x, a.y)[axis] + a.r for a in s.objects[r.subject].instances)
            assert right < min((b.x, b.y)[axis] - b.r for b in s.objects[r.object].instances)


@pytest.mark.parametrize("size", [224, 64])
def test_render_shows_the_true_colours(size):
    batch, rng = scenes(60, seed=7)
    palette = np.array(list(RGB.values()), np.float32)
    for s in batch:
        pixels = np.asarray(render_scene(s, size, rng), np.float32)
        assert pixels.shape == (size, size, 3)
        for g in s.objects:
            if size < 100 and g.size == "small":
                continue
            for inst in g.instances:
                px = pixels[int(inst.y * size), int(inst.x * size)]
                assert COLORS[int(np.argmin(((palette - px) ** 2).sum(1)))] == g.color
        assert np.median(pixels.min(-1)) > 170  # a light background


def test_render_errors():
    scene = two_group_scene()
    with pytest.raises(ValueError, match="image_size"):
        render_scene(scene, 8)
    scene.objects[0].color = "mauve"
    with pytest.raises(ValueError, match="unknown colour 'mauve'"):
        render_scene(scene, 64)
    with pytest.raises(ValueError, match="cannot caption group 0"):
        scene_captions(scene, np.random.default_rng(0))
    with pytest.raises(ValueError, match="without objects"):
        scene_captions(SceneGraph(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least one"):
        generate_scene(np.random.default_rng(0), pairs=[])


def test_determinism():
    a, b = make_example(0, "train", 7, 64), make_example(0, "train", 7, 64)
    assert a == b
    c = make_example(1, "train", 7, 64)
    assert c["image"]["bytes"] != a["image"]["bytes"] and c["scene"] != a["scene"]
    assert make_example(0, "test", 7, 64)["scene"] != a["scene"]
    one = build_scene_dataset(num_train=6, num_eval=2, seed=0, image_size=32)
    two = build_scene_dataset(num_train=6, num_eval=2, seed=0, image_size=32, num_proc=2)
    for split in SPLITS:
        assert one[split].data.table.equals(two[split].data.table)


# ----------------------------------------------------------------------------- datasets


def test_splits_columns_and_images(small):
    assert list(small) == list(SPLITS)
    assert [len(small[s]) for s in SPLITS] == [200, 40, 40, 40]
    for split in SPLITS:
        ds = small[split]
        assert isinstance(ds.features["image"], datasets.Image)
        assert set(ds.column_names) == {"image", "captions", "image_id", "scene"}
        row = ds[0]
        assert row["image"].size == (64, 64) and row["image"].mode == "RGB"
        assert len(row["captions"]) == 5 and row["captions"][0] == canonical_caption(
            SceneGraph.from_json(row["scene"])
        )
        raw = ds.with_format("arrow")[:1]["image"][0]["bytes"].as_py()
        assert Image.open(io.BytesIO(raw)).format == "PNG"
    ids = [i for s in SPLITS for i in small[s]["image_id"]]
    assert len(set(ids)) == len(ids)


def test_test_novel_holds_only_unseen_pairs(small):
    pairs_by_split = {}
    for split in SPLITS:
        pairs = set()
        for text, captions in zip(small[split]["scene"], small[split]["captions"]):
            scene = SceneGraph.from_json(text)
            pairs |= {(g.color, g.shape) for g in scene.objects}
            assert scene_score([text] * 5, captions)["scene_f1"] == 1.0
        pairs_by_split[split] = pairs
    assert pairs_by_split["test_novel"] <= set(HELD_OUT_PAIRS)
    assert len(pairs_by_split["test_novel"]) == len(HELD_OUT_PAIRS)
    for split in ("train", "validation", "test"):
        assert not pairs_by_split[split] & set(HELD_OUT_PAIRS)
    assert len(pairs_by_split["train"]) > 0.9 * len(SEEN_PAIRS)


def test_default_image_size_is_224():
    ds = build_scene_dataset(num_train=1, num_eval=1, seed=9)
    assert all(ds[s][0]["image"].size == (224, 224) for s in SPLITS)
    with pytest.raises(ValueError, match="num_train"):
        build_scene_dataset(num_train=-1)
