"""Calibrated probabilities: temperature scaling, as stored in a checkpoint's config.

`config.calibration` holds one temperature T per modality path ({"modalities": {"audio": T,
...}}) and one per modality condition for the fused prediction ({"fused": {"a": T, ...,
"atv": T}}); probabilities are softmax(logits / T). A missing entry means T = 1 (uncalibrated).
Inference reads the temperatures through the two functions below, so every path is calibrated
the same way wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from .config import MODALITIES, SHORT_NAMES, MoMKEConfig


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Probabilities softmax(logits / T) over the last dimension."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return (logits / temperature).softmax(dim=-1)


def modality_temperature(config: MoMKEConfig, modality: str) -> float:
    """T of one modality's own prediction (its unimodal head)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return float(config.calibration.get("modalities", {}).get(modality, 1.0))


def fused_temperature(config: MoMKEConfig, present_modalities: Iterable[str]) -> float:
    """T of the fused prediction for an utterance whose present modalities are given."""
    present = set(present_modalities)
    if not present or not present <= set(MODALITIES):
        raise ValueError(f"present_modalities must be a non-empty subset of {MODALITIES}, got {sorted(present)}")
    condition = "".join(SHORT_NAMES[m] for m in MODALITIES if m in present)  # as training.condition_name
    return float(config.calibration.get("fused", {}).get(condition, 1.0))
