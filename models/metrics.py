"""The paper's metrics, computed with numpy only (so they are easy to check by hand). Used by
training and evaluation (models/training/) and by `momke-evaluate-media` (realtime/ui/), so they
live beside the model, below both.

Classification (IEMOCAP): WA = accuracy; UA = mean per-class recall over the classes that occur
in the true labels; weighted F1 = per-class F1 weighted by each class's true support. Also
`confusion_matrix`, `per_class_recall` and `macro_f1` (the unweighted mean of per-class F1 over
the classes that occur in the true labels or the predictions, as scikit-learn's "macro").

Regression (CMU-MOSI/MOSEI, sentiment in [-3, 3]):
- ``acc2_nonzero`` / ``f1_nonzero``: binary positive/negative accuracy and weighted F1 on the
  utterances whose true score is not 0 (the paper's rule: its tables use these);
- ``acc2_nonneg`` / ``f1_nonneg``: the same on every utterance, a score >= 0 counting as
  non-negative (the rule some other papers use);
- ``mae`` and ``corr`` (Pearson) on every utterance; ``acc7``: 7-class accuracy after rounding
  scores clipped to [-3, 3].
All values are fractions in [0, 1] (the tables print percentages), except mae and corr.
"""

from __future__ import annotations

import numpy as np

CLASSIFICATION_METRICS = ("wa", "ua", "f1")
REGRESSION_METRICS = ("acc2_nonzero", "f1_nonzero", "acc2_nonneg", "f1_nonneg", "mae", "corr", "acc7")
# Metrics where smaller is better (everything else: larger is better).
LOWER_IS_BETTER = frozenset({"mae", "loss"})
NONZERO_RULE_NOTE = (
    "the paper's non-zero rule: binary accuracy and F1 (acc2_nonzero, f1_nonzero) exclude utterances "
    "whose true sentiment is 0; acc2_nonneg / f1_nonneg count 0 as non-negative; MAE, correlation and "
    "7-class accuracy use every utterance"
)


def _check_pair(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    if labels.size == 0:
        raise ValueError("no labelled utterances to score")
    return labels, predictions


def weighted_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Per-class F1 averaged with weights = true support of each class."""
    labels, predictions = _check_pair(labels, predictions)
    total = 0.0
    for cls in np.unique(labels):
        true_positive = np.sum((predictions == cls) & (labels == cls))
        predicted = np.sum(predictions == cls)
        actual = np.sum(labels == cls)
        f1 = 0.0 if true_positive == 0 else 2 * true_positive / (predicted + actual)
        total += f1 * actual
    return float(total / labels.size)


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """labels, predictions: class indices. Returns {"wa", "ua", "f1"}."""
    labels, predictions = _check_pair(labels, predictions)
    recalls = [np.mean(predictions[labels == cls] == cls) for cls in np.unique(labels)]
    return {
        "wa": float(np.mean(labels == predictions)),
        "ua": float(np.mean(recalls)),
        "f1": weighted_f1(labels, predictions),
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[num_classes, num_classes] counts: rows = true class, columns = predicted class. A
    prediction outside 0..num_classes-1 (e.g. -1 for "no prediction") is counted in no column."""
    labels, predictions = _check_pair(labels, predictions)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    inside = (predictions >= 0) & (predictions < num_classes)
    np.add.at(matrix, (labels[inside].astype(np.int64), predictions[inside].astype(np.int64)), 1)
    return matrix


def per_class_recall(labels: np.ndarray, predictions: np.ndarray) -> dict[int, float]:
    """{class: recall} for each class that occurs in the true labels."""
    labels, predictions = _check_pair(labels, predictions)
    return {int(cls): float(np.mean(predictions[labels == cls] == cls)) for cls in np.unique(labels)}


def macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes in the true labels or the predictions."""
    labels, predictions = _check_pair(labels, predictions)
    scores = []
    for cls in np.union1d(np.unique(labels), np.unique(predictions)):
        true_positive = np.sum((predictions == cls) & (labels == cls))
        denominator = np.sum(predictions == cls) + np.sum(labels == cls)
        scores.append(0.0 if true_positive == 0 else 2 * true_positive / denominator)
    return float(np.mean(scores))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (undefined)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.sum(dx * dy) / denominator) if denominator > 0 else float("nan")


def regression_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """labels, scores: sentiment in [-3, 3]. See the module docstring for each metric's rule."""
    labels, scores = _check_pair(labels, scores)
    labels, scores = labels.astype(np.float64), scores.astype(np.float64)
    nonzero = labels != 0
    if nonzero.any():
        true_positive, predicted_positive = labels[nonzero] > 0, scores[nonzero] > 0
        acc2_nonzero = float(np.mean(true_positive == predicted_positive))
        f1_nonzero = weighted_f1(true_positive, predicted_positive)
    else:
        acc2_nonzero = f1_nonzero = float("nan")
    true_nonneg, predicted_nonneg = labels >= 0, scores >= 0
    return {
        "acc2_nonzero": acc2_nonzero,
        "f1_nonzero": f1_nonzero,
        "acc2_nonneg": float(np.mean(true_nonneg == predicted_nonneg)),
        "f1_nonneg": weighted_f1(true_nonneg, predicted_nonneg),
        "mae": float(np.mean(np.abs(labels - scores))),
        "corr": pearson(labels, scores),
        "acc7": float(np.mean(np.round(np.clip(labels, -3, 3)) == np.round(np.clip(scores, -3, 3)))),
    }


def score(task: str, labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Metrics of one task from raw model outputs: logits [N, C] (classification) or scores [N]."""
    if task == "classification":
        return classification_metrics(labels, np.asarray(outputs).argmax(axis=-1))
    return regression_metrics(labels, np.asarray(outputs).reshape(-1))


def is_better(metric: str, candidate: float, best: float | None) -> bool:
    if best is None or np.isnan(best):
        return not np.isnan(candidate)
    if np.isnan(candidate):
        return False
    return candidate < best if metric in LOWER_IS_BETTER else candidate > best


# How much better than a constant predictor a model must score to count as having learnt, at
# least: one point for fractions and correlation, 1 % of the constant's MAE. On n validation
# utterances the margin is 1/sqrt(n) when that is larger: about two standard errors of an
# accuracy near 50 % (or one of a correlation near 0), so the best of many noisy epochs on a
# small validation split does not pass for learning.
LEARNT_MARGIN = 0.01


def constant_outputs(task: str, train_labels: np.ndarray, count: int, num_classes: int = 0) -> np.ndarray:
    """The outputs of a model that learnt nothing but the label distribution of its training data:
    the majority class (one-hot logits [count, num_classes]) or the mean score ([count])."""
    train_labels = np.asarray(train_labels)
    if task == "classification":
        majority = np.bincount(train_labels.astype(np.int64), minlength=num_classes).argmax()
        return np.tile(np.eye(num_classes)[majority], (count, 1))
    return np.full(count, float(np.mean(train_labels)))


def beats_constant(metric: str, value: float, constant: float, count: int) -> bool:
    """True when `value` is better than the constant predictor's `constant`, both scored on
    `count` utterances, by the margin above. A constant's undefined correlation counts as 0."""
    if np.isnan(value):
        return False
    if np.isnan(constant):
        constant = 0.0
    margin = max(LEARNT_MARGIN, 1.0 / np.sqrt(max(count, 1)))
    if metric in LOWER_IS_BETTER:
        return bool(value < constant * (1.0 - margin))
    return bool(value > constant + margin)
