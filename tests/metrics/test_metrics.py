"""captioner.metrics against the COCO caption evaluation (pycocoevalcap).

Live checks run pycocoevalcap's PTBTokenizer, Bleu, Rouge, Cider and Meteor (Java) on a
seeded set of caption sets and compare. The same reference numbers are recorded in
tests/fixtures/ so the pure-Python path is also checked where Java is missing; regenerate
them with `python tests/metrics/test_metrics.py` (needs Java and pycocoevalcap).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from captioner import metrics
from captioner.metrics import bleu, cider_d, format_scores, rouge_l, score
from captioner.metrics import meteor as metrics_meteor
from captioner.metrics.ptb import ptb_tokenize, tokenize_captions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN_CASES = FIXTURES / "metrics_ptb_cases.json"
REFERENCE_SCORES = FIXTURES / "metrics_reference_scores.json"
TOLERANCE = 1e-3

# ---------------------------------------------------------------- seeded caption sets
SUBJECTS = ["man", "woman", "boy", "girl", "dog", "cat", "horse", "giraffe", "skier", "chef"]
ADJECTIVES = ["young", "old", "brown", "white", "black", "small", "large", "happy", "wet"]
ACTIONS = ["riding", "holding", "eating", "carrying", "watching", "chasing", "sitting on"]
OBJECTS = ["surfboard", "frisbee", "pizza", "umbrella", "skateboard", "bench", "kite", "banana"]
PLACES = ["on the beach", "in a kitchen", "near the water", "in the snow", "on a city street"]
NUMBERS = ["two", "three", "2", "3", "a couple of", "1,000", "3.5", "10:30"]
EXTRAS = [
    "it's sunny",
    "the dog's bone",
    "(in the background)",
    '"Stop" sign',
    "black-and-white photo",
    "Mr. Smith",
    "in the U.S.",
    "etc.",
    "St. Louis",
    "... maybe",
    "-- nice",
    "can't see",
    "café",
    "[blurry]",
    "{sic}",
    "A & B",
    "so cute!!",
    "what?!",
    "20% off",
    "$5 hot dog",
    "rock 'n' roll",
    "the letter A.",
    "3 1/2 feet",
    "e-mail",
    "he'll",
    "gonna",
    "cannot",
    ":)",
    "don't",
]
UNRELATED = ["quantum", "zeppelin", "violin", "glacier", "orchestra", "meteorite", "saxophone"]


def _scene_caption(rng: random.Random, scene: tuple[str, ...]) -> str:
    adj, subject, action, obj, place = scene
    words = [
        rng.choice(["A", "a", "The", "One"]),
        adj,
        subject,
        action,
        rng.choice(["a", "the"]),
        obj,
    ]
    if rng.random() < 0.7:
        words.append(place)
    if rng.random() < 0.4:
        words.insert(rng.randrange(1, len(words) + 1), rng.choice(EXTRAS))
    if rng.random() < 0.2:
        words.insert(0, rng.choice(NUMBERS))
    text = " ".join(words)
    if rng.random() < 0.1:
        text = text.upper()
    return text + rng.choice([".", ".", "", " .", "!", "..."])


def make_caption_sets(seed: int = 0, images: int = 300) -> tuple[dict, dict]:
    """Seeded references and hypotheses covering the cases the metrics handle specially."""
    rng = random.Random(seed)
    references, hypotheses = {}, {}
    for index in range(images):
        scene = (
            rng.choice(ADJECTIVES),
            rng.choice(SUBJECTS),
            rng.choice(ACTIONS),
            rng.choice(OBJECTS),
            rng.choice(PLACES),
        )
        refs = [_scene_caption(rng, scene) for _ in range(rng.choice([1, 2, 3, 5, 5]))]
        kind = index % 10
        if kind == 0:
            hyp = rng.choice(refs)  # verbatim copy
        elif kind == 1:
            hyp = " ".join(rng.sample(UNRELATED, 4))  # no n-gram shared with the references
        elif kind == 2:
            hyp = rng.choice([scene[1], "Dog.", rng.choice(UNRELATED)])  # single word
        elif kind == 3:
            hyp = " ".join([scene[1]] * rng.randint(2, 6))  # repeated word
        elif kind == 4:
            hyp = rng.choice(["...", "?!", "--", "a"])  # punctuation only / one letter
        elif kind == 5:
            hyp = " and ".join(_scene_caption(rng, scene) for _ in range(3))  # long
        else:
            hyp = _scene_caption(rng, scene)  # paraphrase of the same scene
        image_id = rng.choice([index, f"img{index:04d}"])
        references[image_id] = refs
        hypotheses[image_id] = hyp
    return references, hypotheses


def _checksum(references: dict, hypotheses: dict) -> str:
    blob = json.dumps(
        [[str(k), v, hypotheses[k]] for k, v in references.items()], ensure_ascii=False
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


TRICKY = [
    "A man riding a wave on top of a surfboard.",
    "The Dog's bone -- it's (sort of) BIG!",
    "\"Hello,\" she said. 'Quoted' `tick`",
    "Don't, can't, won't, cannot, gonna, wanna, I'm, they're, we've, he'd, you'll, dogs' toys",
    "Mr. Smith went to the U.S. He saw 3.5 cats and 1,000 dogs at 10:30 p.m.",
    "black-and-white photo of a cat -- or a dog - on a bed... really?! yes; no: maybe",
    "a & b * c / d and/or e+f = g @ h # i $ 5 % 10 ^ ~ | \\ < >",
    "café naïve — en–dash “smart quotes” ‘single’ … ellipsis",
    "visit http://www.example.com or www.example.org, mail foo@bar.com :) :-( ;)",
    "1/2 cup, 3 1/2 inches, 2nd place, 1980s, '90s, o'clock, rock'n'roll",
    "plan B. The end",
    "plan b. the end",
    "a sign that says no. and a man in the ft. of the hill etc.",
    "a [bracketed] {braced} <angled> word",
    "THE CAT SAT ON THE MAT.",
    "....... . . . !!! ?? ,,,",
    "photo.jpg of a dog at www.dogs.com",
    "emoji 😀 dog 🐶 and ☺ ♥",
    "'tis 'twas gotta lemme gimme",
    "soft\u00adhyphen and no\u00a0break space",
    "the letter A.",
    "A dog on a bed.",
    "",
    "   ",
    "#hashtag @user c++ C# AT&T Q&A R&D",
    "x-ray, e-mail, re-enter, self-driving, 5-year-old, mid-1990s",
    "hi.utf8=एक घड़ी का चेहरे| ml=ഒരു ക്ലോക്ക് th=หมายความว่าบางสิ่ง",
    "שָׁלוֹם עוֹלָם، مَرْحَبًا بِالْعَالَمِ; Ελληνικά; 日本語のテキスト。",
    "¼ ½ ¾ ⅓ ⅔ ⅕ £5 €5 ¢5 ¥5 5°C",
]
# every 13th BMP character between letters, between digits and alone (newlines excepted)
BMP_PROBES = [
    f"x{chr(c)}x 1{chr(c)}1 {chr(c)}"
    for c in range(0x20, 0x10000, 13)
    if not 0xD800 <= c <= 0xDFFF and chr(c) not in "\x85\u2028\u2029"
]


# ---------------------------------------------------------------- pycocoevalcap side
def _need_reference() -> None:
    pytest.importorskip("pycocoevalcap", reason="pycocoevalcap (dev dependency) is not installed")
    if shutil.which("java") is None:
        pytest.skip("no `java` on PATH: pycocoevalcap's PTBTokenizer and METEOR need Java")


def _ptb_reference(captions: list[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer on captions, one image per caption, in order."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(captions)})
    return [out[i][0] for i in range(len(captions))]


def _reference_scores(references: dict, hypotheses: dict, *, with_meteor: bool) -> dict:
    """The COCO evaluation pipeline: PTBTokenizer, then Bleu, Meteor, Rouge, Cider."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in refs] for i, refs in references.items()})
    res = tokenizer.tokenize({i: [{"caption": hypotheses[i]}] for i in references})
    result = {"tokenized_refs": gts, "tokenized_hyps": res}
    bleus, _ = Bleu(4).compute_score(gts, res, verbose=0)
    result.update({f"BLEU-{k + 1}": float(b) for k, b in enumerate(bleus)})
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    result.update({"ROUGE-L": float(rouge), "CIDEr-D": float(cider)})
    result["per_image"] = {
        "ROUGE-L": [float(x) for x in rouge_each],
        "CIDEr-D": [float(x) for x in cider_each],
    }
    if with_meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        result["METEOR"] = float(meteor.compute_score(gts, res)[0])
        process = meteor.meteor_p
        del meteor  # its __del__ stops the Java process but leaves the pipes open
        gc.collect()
        process.stdout.close()
        process.stderr.close()
    return result


@pytest.fixture(scope="module")
def caption_sets():
    return make_caption_sets()


@pytest.fixture(scope="module")
def our_meteor():
    """Our METEOR process, started early so its start-up overlaps the reference's."""
    _need_reference()
    scorer = metrics_meteor.MeteorScorer()
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def live_reference(caption_sets, our_meteor):
    return _reference_scores(*caption_sets, with_meteor=True)


# ---------------------------------------------------------------- tokenizer
def test_tokenizer_matches_recorded_ptbtokenizer_outputs():
    cases = json.loads(TOKEN_CASES.read_text(encoding="utf-8"))
    assert [c["text"] for c in cases] == TRICKY, (
        "fixture out of date: run python tests/metrics/test_metrics.py"
    )
    ours = tokenize_captions([c["text"] for c in cases])
    for case, got in zip(cases, ours):
        assert got == case["ptb"], case["text"]


def test_tokenizer_keeps_ptb_quirks():
    assert ptb_tokenize("A (brown) dog's bone, isn't it?") == [
        "a",
        "-lrb-",
        "brown",
        "-rrb-",
        "dog",
        "'s",
        "bone",
        "is",
        "n't",
        "it",
    ]
    assert ptb_tokenize("Mr. Smith cannot go to the U.S. today") == [
        "mr.",
        "smith",
        "can",
        "not",
        "go",
        "to",
        "the",
        "u.s.",
        "today",
    ]
    # a one-letter acronym before a sentence opener loses its period, even across captions
    assert tokenize_captions(["the letter B.", "The dog"]) == ["the letter b", "the dog"]
    assert tokenize_captions(["the letter B.", "the dog"]) == ["the letter b.", "the dog"]
    assert ptb_tokenize("3 1/2 cups") == ["3\xa01/2", "cups"]
    assert ptb_tokenize("Really...!?") == ["really", "!?"]


@pytest.mark.slow
def test_tokenizer_matches_live_ptbtokenizer(caption_sets, live_reference):
    references, hypotheses = caption_sets
    assert tokenize_captions(TRICKY) == _ptb_reference(TRICKY)
    assert tokenize_captions(BMP_PROBES) == _ptb_reference(BMP_PROBES)
    ids = list(references)
    flat = tokenize_captions([r for i in ids for r in references[i]])
    expected = [c for i in ids for c in live_reference["tokenized_refs"][i]]
    assert flat == expected
    assert tokenize_captions([hypotheses[i] for i in ids]) == [
        live_reference["tokenized_hyps"][i][0] for i in ids
    ]


# ---------------------------------------------------------------- scores
@pytest.mark.slow
def test_scores_match_pycocoevalcap_live(caption_sets, live_reference, our_meteor):
    references, hypotheses = caption_sets
    with our_meteor as scorer:
        ours = score(references, hypotheses, meteor=scorer)
        assert score({1: ["a dog"]}, {1: "a dog"}, meteor=scorer)["METEOR"] > 0.5  # reusable
    assert scorer._process.poll() is not None, (
        "METEOR's Java process must be gone after the with-block"
    )
    with pytest.raises(RuntimeError, match="closed"):
        scorer.score([["a dog"]], ["a dog"])
    for name in metrics.METRIC_NAMES:
        assert abs(ours[name] - live_reference[name]) < TOLERANCE, (
            name,
            ours[name],
            live_reference[name],
        )
    # per image, too
    ids = list(references)
    refs = [live_reference["tokenized_refs"][i] for i in ids]
    hyps = [live_reference["tokenized_hyps"][i][0] for i in ids]
    rouge_each = [rouge_l(r, h) for r, h in zip(refs, hyps)]
    assert (
        max(abs(a - b) for a, b in zip(rouge_each, live_reference["per_image"]["ROUGE-L"])) < 1e-9
    )
    assert (
        max(abs(a - b) for a, b in zip(cider_d(refs, hyps), live_reference["per_image"]["CIDEr-D"]))
        < 1e-9
    )


def test_scores_match_recorded_reference(caption_sets):
    references, hypotheses = caption_sets
    recorded = json.loads(REFERENCE_SCORES.read_text(encoding="utf-8"))
    assert recorded["checksum"] == _checksum(references, hypotheses), (
        "run python tests/metrics/test_metrics.py"
    )
    ours = score(references, hypotheses, meteor=False)
    assert "METEOR" not in ours
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"):
        assert abs(ours[name] - recorded["scores"][name]) < TOLERANCE, (name, ours[name])


def test_scores_on_known_cases():
    refs = {1: ["a dog runs on the grass", "a brown dog running"], 2: ["two cats sleep on a sofa"]}
    same = score(
        refs, {1: "A dog runs on the grass.", 2: "Two cats sleep on a sofa!"}, meteor=False
    )
    assert same["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert same["ROUGE-L"] == pytest.approx(1.0)
    unrelated = score(refs, {1: "quantum violin", 2: "zeppelin glacier orchestra"}, meteor=False)
    assert (
        unrelated["BLEU-1"] < 1e-6 and unrelated["ROUGE-L"] == 0.0 and unrelated["CIDEr-D"] == 0.0
    )
    assert bleu([["a b c d"]], ["a b c d"])[3] == pytest.approx(1.0, abs=1e-6)
    assert rouge_l(["x y z"], "x q z") == pytest.approx(2 / 3)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("references", "hypotheses", "message"),
    [
        ({1: ["a cat"], 2: ["a dog"]}, {1: "a cat"}, "no hypothesis for [2]"),
        ({1: ["a cat"]}, {1: "a cat", "x": "a dog"}, "no references for ['x']"),
        ({1: []}, {1: "a cat"}, "references[1] is empty"),
        ({"im7": "a cat"}, {"im7": "a cat"}, "references['im7'] must be a list of strings"),
        ({3: ["a cat", None]}, {3: "a cat"}, "references[3][1] must be a string"),
        ({4: ["a cat"]}, {4: ["a cat"]}, "hypotheses[4] must be a string"),
        ({}, {}, "nothing to score"),
        ([["a cat"]], {0: "a cat"}, "references must be a dict"),
    ],
)
def test_validation_errors_name_the_problem(references, hypotheses, message):
    with pytest.raises(ValueError) as err:
        score(references, hypotheses, meteor=False)
    assert message in str(err.value)


# ---------------------------------------------------------------- METEOR availability
def test_meteor_absent_without_pycocoevalcap(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)
    monkeypatch.setitem(sys.modules, "pycocoevalcap.meteor", None)
    refs, hyps = {1: ["a dog on the grass"]}, {1: "a dog on grass"}
    with caplog.at_level(logging.WARNING, logger="captioner.metrics"):
        result = score(refs, hyps)
    assert "METEOR" not in result
    assert result == score(refs, hyps, meteor=False)
    assert any(
        "METEOR left out" in r.message and "pycocoevalcap" in r.message for r in caplog.records
    )
    assert metrics_meteor.find_meteor_jar() is None


def test_meteor_absent_without_java(monkeypatch, caplog):
    pytest.importorskip("pycocoevalcap")
    monkeypatch.setattr(metrics_meteor.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="captioner.metrics"):
        result = score({1: ["a red bus"]}, {1: "a bus"})
    assert "METEOR" not in result and result["BLEU-1"] > 0
    assert any("java" in r.message for r in caplog.records)
    with pytest.raises(RuntimeError, match="METEOR unavailable"):
        metrics_meteor.MeteorScorer()


def test_meteor_jar_failure_is_a_warning_not_a_crash(monkeypatch, caplog):
    _need_reference()
    started = []

    class StarvedMeteor(metrics_meteor.MeteorScorer):  # the JVM refuses a 1 KiB heap
        def __init__(self, **options):
            super().__init__(memory="1k", **options)
            started.append(self)

    monkeypatch.setattr(metrics.coco_scores, "MeteorScorer", StarvedMeteor)
    with caplog.at_level(logging.WARNING, logger="captioner.metrics"):
        result = score({1: ["a red bus"]}, {1: "a bus"})
    assert "METEOR" not in result and result["ROUGE-L"] > 0
    assert any(
        "METEOR jar failed" in r.message and "initialization" in r.message for r in caplog.records
    )
    assert started and started[0]._process.poll() is not None


@pytest.mark.slow
def test_forgotten_meteor_process_does_not_outlive_python():
    _need_reference()
    script = (
        "from captioner.metrics.meteor import MeteorScorer\n"
        "scorer = MeteorScorer()\n"
        "print(scorer._process.pid, flush=True)\n"  # exits without close()
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the finalizer reaped Java at interpreter exit


def test_meteor_off_means_no_key_and_no_warning(caplog):
    with caplog.at_level(logging.WARNING):
        result = score({1: ["a red bus"]}, {1: "a bus"}, meteor=False)
    assert list(result) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"]
    assert not caplog.records


def test_format_scores_is_one_ordered_line():
    line = format_scores({"CIDEr-D": 1.23456, "BLEU-1": 0.5, "METEOR": 0.25, "extra": 2})
    assert line == "BLEU-1 0.500 | METEOR 0.250 | CIDEr-D 1.235 | extra 2.000"


# ---------------------------------------------------------------- fixture recording
def _record() -> None:  # pragma: no cover - run by hand with Java + pycocoevalcap
    cases = [{"text": t, "ptb": p} for t, p in zip(TRICKY, _ptb_reference(TRICKY))]
    TOKEN_CASES.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    references, hypotheses = make_caption_sets()
    ref = _reference_scores(references, hypotheses, with_meteor=True)
    names = metrics.METRIC_NAMES
    payload = {"checksum": _checksum(references, hypotheses), "scores": {n: ref[n] for n in names}}
    REFERENCE_SCORES.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {TOKEN_CASES} and {REFERENCE_SCORES}")


if __name__ == "__main__":
    _record()
