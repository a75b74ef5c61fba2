"""models/calibration.py: temperatures read from the config and applied to logits."""

import pytest
import torch
from momke.models import MoMKEConfig
from momke.models.calibration import apply_temperature, fused_temperature, modality_temperature


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
