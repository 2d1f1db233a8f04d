"""Temperature scaling and the expected calibration error (pipelines/calibration.py)."""

import pytest
import torch

from captioner.evaluation import expected_calibration_error
from captioner.pipelines.calibration import crossfit_ece, fit_temperature


def test_ece_of_hand_made_predictions():
    # two examples at confidence 0.9 (one right), two at 0.6 (both right), 15 bins
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    ece = expected_calibration_error(probs, [0, 1, 1, 1])
    assert ece == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6))
    assert expected_calibration_error(torch.tensor([[1.0, 0.0]]), [0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least one"):
        expected_calibration_error(torch.zeros(0, 2), [])


def test_temperature_scaling_repairs_an_overconfident_three_class_model():
    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(6000, 3, generator=gen) * 1.5
    labels = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=gen).squeeze(1)
    overconfident = true_logits * 4  # same ranking, far too sure
    assert fit_temperature(overconfident, labels.tolist()) == pytest.approx(4.0, rel=0.1)
    report = crossfit_ece(overconfident, labels.tolist(), seed=0)
    assert report["ece_before"] > 0.15
    assert report["ece_after"] < 0.03 < report["ece_before"]
    # an already calibrated model stays calibrated
    fine = crossfit_ece(true_logits, labels.tolist(), seed=0)
    assert fine["ece_after"] < 0.03
