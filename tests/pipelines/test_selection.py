"""The recipes' shared best-model helpers: selection score and model export."""

from __future__ import annotations

import pytest

from captioner import Captioner
from captioner.pipelines.selection import export_model, selection_score
from captioner.recognition import RecognitionConfig, RecognitionHead


def test_selection_score_breaks_ties_by_loss_only():
    assert selection_score(0.8, 0.3) > selection_score(0.8, 0.5)
    assert selection_score(0.8, 10.0) > selection_score(0.8 - 1e-5, 0.0)  # accuracy first
    assert selection_score(0.8, 50.0) == selection_score(0.8, 10.0)  # the loss term is capped


@pytest.mark.parametrize("training", [True, False])
def test_export_model_writes_publishes_and_keeps_the_training_mode(tmp_path, training):
    from captioner.encoders import build_encoder

    encoder = build_encoder("mobilenet_v3_small", weights=None)
    head = RecognitionHead(RecognitionConfig(in_dim=encoder.out_channels, labels=["a", "b"]))
    head.train(training)
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "stale.json").write_text("{}")
    staged = export_model(head, out / "run" / "best", out, data="scenes:8", encoder=encoder,
                          recognizer=head, name="tags")  # fmt: skip
    assert head.training is training
    # a file that is not one of the model's own stays (issue 27: never delete a user's files)
    assert staged == out and (out / "stale.json").read_text() == "{}" and (out / "run").is_dir()
    model = Captioner.from_pretrained(out, device="cpu", backend="torch")
    assert model.name == "tags" and model.recognizer.config.labels == ["a", "b"]
    assert model.training_data == ["scenes:8"]
    assert (out / "run" / "best" / "model.safetensors").is_file()
