"""Temperature scaling: temperatures read from the config and applied to logits; fitted on an
over-confident path, it finds the true temperature and lowers the expected calibration error
without changing any prediction."""

import numpy as np
import pytest
import torch
from momke.models import MoMKEConfig
from momke.models.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    fused_temperature,
    modality_temperature,
    nll,
    softmax,
)


def config(calibration) -> MoMKEConfig:
    return MoMKEConfig(feature_dims=(2, 2, 2), hidden_dim=4, router_hidden_dim=4, calibration=calibration)


def test_apply_temperature_is_softmax_of_scaled_logits():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    torch.testing.assert_close(apply_temperature(logits, 1.0), logits.softmax(-1))
    hot, cold = apply_temperature(logits, 3.0), apply_temperature(logits, 0.5)
    torch.testing.assert_close(hot, (logits / 3).softmax(-1))
    torch.testing.assert_close(hot.sum(-1), torch.ones(2))
    # A higher temperature flattens, a lower one sharpens; the argmax never changes.
    assert torch.all(hot.max(-1).values < logits.softmax(-1).max(-1).values)
    assert torch.all(cold.max(-1).values > logits.softmax(-1).max(-1).values)
    assert torch.equal(hot.argmax(-1), cold.argmax(-1))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            apply_temperature(logits, bad)


def test_temperatures_by_modality_and_by_condition_default_to_one():
    calibrated = config({"modalities": {"audio": 2.0}, "fused": {"at": 1.5, "atv": 0.7, "v": 3}})
    assert modality_temperature(calibrated, "audio") == 2.0
    assert modality_temperature(calibrated, "text") == 1.0
    assert fused_temperature(calibrated, ["text", "audio"]) == 1.5  # the condition {a, t}, in any order
    assert fused_temperature(calibrated, ("visual", "audio", "text")) == 0.7
    assert fused_temperature(calibrated, {"visual"}) == 3.0
    assert fused_temperature(calibrated, ["text"]) == 1.0
    uncalibrated = config({})
    assert modality_temperature(uncalibrated, "visual") == 1.0 and fused_temperature(uncalibrated, ["audio"]) == 1.0
    with pytest.raises(ValueError, match="unknown modality"):
        modality_temperature(calibrated, "smell")
    with pytest.raises(ValueError, match="non-empty subset"):
        fused_temperature(calibrated, [])
    with pytest.raises(ValueError, match="non-empty subset"):
        fused_temperature(calibrated, ["audio", "smell"])


def overconfident_path(n=4000, classes=4, true_temperature=3.0, seed=0):
    """Logits whose labels are drawn from softmax(logits / T): the path says more than it knows."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4.0, size=(n, classes))
    probabilities = softmax(logits, true_temperature)
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return logits, labels


def test_the_fitted_temperature_recovers_the_truth_and_lowers_ece():
    logits, labels = overconfident_path()
    valid, test = slice(0, 2000), slice(2000, None)
    temperature = fit_temperature(logits[valid], labels[valid])
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(softmax(logits[test]), labels[test])
    after = expected_calibration_error(softmax(logits[test], temperature), labels[test])
    assert before > 0.15 and after < 0.04, (before, after)
    assert nll(logits[test], labels[test], temperature) < nll(logits[test], labels[test])
    assert (softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()


def test_an_underconfident_path_gets_a_temperature_below_one():
    logits, labels = overconfident_path(true_temperature=0.5, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.15)


def test_ece_of_a_perfectly_calibrated_and_of_a_lying_path():
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.3, 1.0, 20000)
    correct = rng.random(20000) < confidence
    probabilities = np.stack([confidence, 1 - confidence], axis=1)  # class 0 always predicted
    labels = np.where(correct, 0, 1)  # ... and right as often as it says
    assert expected_calibration_error(probabilities, labels) < 0.02
    lying = np.tile([0.99, 0.01], (1000, 1))
    assert expected_calibration_error(lying, np.array([0, 1] * 500)) == pytest.approx(0.49, abs=1e-6)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    assert np.isnan(expected_calibration_error(np.zeros((0, 2)), labels[:0]))
