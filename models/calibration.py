"""Calibration: probabilities that mean what they say, per modality path and for the fusion.

Temperature scaling (Guo et al., ICML 2017): one scalar T per output, softmax(logits / T), fitted
on validation data by minimising the negative log-likelihood. One parameter cannot change which
label wins (accuracy is untouched), it cannot overfit a validation split of a few hundred items,
and it fixes the failure measured here: paths that are right 60 % of the time while saying 95 %.
Richer maps (vector or matrix scaling) were not chosen: they change the argmax and need more
validation data per condition than the held-out splits give.

Temperatures live in the checkpoint's config (`calibration`): one per modality path
(`modalities`) and one per condition of the fused output (`fused`, keyed "a", "t", "at", ...);
a missing entry means T = 1. Inference reads them through `modality_temperature` and
`fused_temperature`, so every path is calibrated the same way wherever it is shown; training
fits them with `fit_temperature` (numpy, on validation logits).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from torch import Tensor

from ..extractors.modalities import condition_name
from .config import MODALITIES, MoMKEConfig


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
    return float(config.calibration.get("fused", {}).get(condition_name(present), 1.0))


# ----------------------------------------------------------------------------------------------
# Fitting and measuring (numpy: validation logits come out of training.predict)

ECE_BINS = 15


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    log_p = _log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The T in [low, high] minimising validation NLL (a 1-D search on log T: the NLL is
    smooth and unimodal in log T, so a grid then a golden-section refinement finds it)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    grid = np.linspace(np.log(low), np.log(high), 61)
    losses = [nll(logits, labels, np.exp(g)) for g in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(logits, labels, np.exp(c)) < nll(logits, labels, np.exp(d)):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by their share of the items."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for k in range(bins):
        inside = which == k
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap)
