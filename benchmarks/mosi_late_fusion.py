"""Late fusion for one model under every condition (MOSI, regression): per presence pattern, a
least-squares combination of the present modalities' own predictions, fitted on training videos.

Why (measured, benchmarks/README.md section 2): MoMKE's fused head reads concat(R^a, R^t, R^v)
and each R^m depends on modality m alone, so under the random protocol the head behaves roughly
additively: it must predict from visual alone in {v}, and keeps that full-scale visual term when
text is present too. bc-LSTM's visual features were trained with labels on the training split, so
that term looks right in training and validation and is noise on test: {t,v} fell 7 points below
{t}. A separate linear fit per pattern ({t}, {t,v}, ...) learns how much each path adds when the
others are there: on training data text is the better path, so {t,v} weighs visual at about 0.1.

The inputs are MoMKEOutput.modality_logits (expert m on modality m through its own head): they do
not depend on which other modalities are present, since each expert attends within its own
modality, so one pass under full presence gives every condition's inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from momke.models.config import MODALITIES
from momke.models.metrics import score
from momke.models.momke import MoMKE
from momke.models.training.data import Conversation, collate_conversations
from momke.models.training.evaluation import with_average
from momke.models.training.trainer import CONDITIONS, condition_name

RIDGE = 1e-3  # keeps the fit defined when a path's predictions are constant


@torch.no_grad()
def own_predictions(model: MoMKE, conversations: Sequence[Conversation], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], own scores [N, 3] in MODALITIES order) of every labelled utterance."""
    if model.config.task != "regression":
        raise ValueError("late fusion here is for regression (one score per path)")
    model.eval()
    device = next(model.parameters()).device
    labels, own = [], []
    for start in range(0, len(conversations), batch_size):
        batch = collate_conversations(conversations[start : start + batch_size], model.config.feature_dims, "regression").to(device)
        output = model(batch.features, batch.modality_mask, batch.utterance_mask)
        labels.append(batch.labels[batch.label_mask].cpu().numpy())
        own.append(output.modality_logits[..., 0][batch.label_mask].float().cpu().numpy())
    return np.concatenate(labels), np.concatenate(own)


def _design(own: np.ndarray, condition: Sequence[str]) -> np.ndarray:
    columns = [MODALITIES.index(m) for m in condition]
    return np.concatenate([own[:, columns], np.ones((len(own), 1), dtype=own.dtype)], axis=1)


def fit_late_fusion(labels: np.ndarray, own: np.ndarray) -> dict[str, np.ndarray]:
    """{condition name: weights [present paths..., bias]} by ridge-regularised least squares."""
    weights = {}
    for condition in CONDITIONS:
        x = _design(own, condition).astype(np.float64)
        gram = x.T @ x + RIDGE * len(x) * np.diag([1.0] * len(condition) + [0.0])
        weights[condition_name(condition)] = np.linalg.solve(gram, x.T @ labels.astype(np.float64))
    return weights


def evaluate_late_fusion(
    weights: dict[str, np.ndarray], labels: np.ndarray, own: np.ndarray
) -> dict[str, dict[str, float]]:
    """The metrics of every condition (and their incomplete-condition average), as evaluate_conditions."""
    results = {}
    for condition in CONDITIONS:
        name = condition_name(condition)
        results[name] = score("regression", labels, _design(own, condition) @ weights[name])
    return with_average(results)
