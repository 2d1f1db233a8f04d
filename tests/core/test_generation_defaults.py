"""A model directory's own decoding defaults (config.json "generation")."""

import json

import numpy as np
import pytest
from tests_support import tiny_captioner

from captioner.api import Captioner
from captioner.checkpoint import CheckpointError


def test_generation_defaults_round_trip_and_apply(tmp_path):
    cap = tiny_captioner()
    cap.generation_defaults = {"no_repeat_ngram_size": 3, "beam_size": 2}
    out = cap.save_pretrained(tmp_path / "m")
    config = json.loads((out / "config.json").read_text())
    assert config["generation"] == {"no_repeat_ngram_size": 3, "beam_size": 2}
    again = Captioner.from_pretrained(out, device="cpu", backend="torch")
    g = again.generation_config()
    assert (g.no_repeat_ngram_size, g.beam_size) == (3, 2)
    assert again.generation_config(beam_size=4).no_repeat_ngram_size == 3  # overrides keep it
    image = np.zeros((32, 32, 3), np.uint8)
    assert again.caption(image) == again.caption(image, no_repeat_ngram_size=3, beam_size=2)


def test_models_without_generation_defaults_use_the_package_defaults(tmp_path):
    out = tiny_captioner().save_pretrained(tmp_path / "m")
    assert "generation" not in json.loads((out / "config.json").read_text())
    g = Captioner.from_pretrained(out, device="cpu", backend="torch").generation_config()
    assert (g.beam_size, g.no_repeat_ngram_size) == (3, 0)


@pytest.mark.parametrize("bad", [{"beam_size": 0}, {"no_such_option": 1}, [3]])
def test_a_bad_generation_section_names_the_file(tmp_path, bad):
    out = tiny_captioner().save_pretrained(tmp_path / "m")
    config = json.loads((out / "config.json").read_text())
    config["generation"] = bad
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json.*generation"):
        Captioner.from_pretrained(out, device="cpu", backend="torch")


def test_label_and_caption_commands_keep_the_models_defaults_unless_a_flag_says(tmp_path):
    from captioner.cli import infer
    from captioner.labeling.engine import EngineOptions, LabelEngine

    cap = tiny_captioner()
    cap.generation_defaults = {"no_repeat_ngram_size": 3}
    engine = LabelEngine(cap, EngineOptions(backend="torch", generation=cap.generation_config(beam_size=2)))  # fmt: skip
    assert (engine.generation.no_repeat_ngram_size, engine.generation.beam_size) == (3, 2)
    args = infer.build_parser("caption").parse_args(["x.jpg"])
    assert infer._engine(cap, "caption", args).generation.no_repeat_ngram_size == 3
    args = infer.build_parser("caption").parse_args(["x.jpg", "--no-repeat-ngram-size", "0"])
    assert infer._engine(cap, "caption", args).generation.no_repeat_ngram_size == 0
