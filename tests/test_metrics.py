"""Metrics against values worked out by hand."""

import math

import numpy as np
import pytest
from momke.models.metrics import (
    classification_metrics,
    confusion_matrix,
    is_better,
    macro_f1,
    per_class_recall,
    regression_metrics,
    score,
)


def test_classification_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 0, 0, 1, 1, 0, 2, 1])
    metrics = classification_metrics(labels, predictions)
    # Right at positions 0, 1, 2, 4, 6: 5 of 8.
    assert metrics["wa"] == pytest.approx(5 / 8)
    # Recalls: class 0 3/4, class 1 1/2, class 2 1/2 -> mean 7/12.
    assert metrics["ua"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)
    # F1: class 0: tp 3, predicted 4, actual 4 -> 6/8; class 1: tp 1, predicted 3, actual 2 -> 2/5;
    # class 2: tp 1, predicted 1, actual 2 -> 2/3. Weighted by support 4, 2, 2.
    assert metrics["f1"] == pytest.approx((0.75 * 4 + 0.4 * 2 + (2 / 3) * 2) / 8)


def test_confusion_recall_and_macro_f1_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 0, 0, 1, 1, 0, 2, 1])
    assert confusion_matrix(labels, predictions, 4).tolist() == [[3, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert per_class_recall(labels, predictions) == pytest.approx({0: 3 / 4, 1: 1 / 2, 2: 1 / 2})
    assert macro_f1(labels, predictions) == pytest.approx((0.75 + 0.4 + 2 / 3) / 3)
    # "No prediction" (-1) is counted in no column; a predicted class absent from the labels
    # counts in macro F1 with F1 0 (scikit-learn's convention).
    assert confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 2).tolist() == [[0, 0], [0, 1]]
    assert macro_f1(np.array([0, 0]), np.array([0, 1])) == pytest.approx((2 / 3 + 0) / 2)


def test_ua_differs_from_wa_on_imbalance():
    labels = np.array([0] * 9 + [1])
    metrics = classification_metrics(labels, np.zeros(10, dtype=int))
    assert metrics["wa"] == pytest.approx(0.9)
    assert metrics["ua"] == pytest.approx(0.5)


def test_regression_nonzero_rule_by_hand():
    labels = np.array([2.0, -1.0, 0.0, 0.0, 1.4, -2.6])
    scores = np.array([1.0, 0.5, -0.2, 0.3, 3.7, -1.0])
    metrics = regression_metrics(labels, scores)
    # Non-zero labels: 2, -1, 1.4, -2.6 against 1.0, 0.5, 3.7, -1.0 -> signs right, wrong, right, right.
    assert metrics["acc2_nonzero"] == pytest.approx(3 / 4)
    # Positives (true): 2, 1.4 -> predicted positive 1.0, 0.5, 3.7: tp 2, predicted 3, actual 2 -> F1 0.8.
    # Negatives: -1, -2.6 -> predicted negative -1.0 only: tp 1, predicted 1, actual 2 -> F1 2/3.
    assert metrics["f1_nonzero"] == pytest.approx((0.8 * 2 + (2 / 3) * 2) / 4)
    # Zeros counted non-negative: true nonneg 2, 0, 0, 1.4 ; predicted nonneg 1.0, 0.5, 0.3, 3.7.
    # Rows: (T,T) (F,T) (T,F) (T,T) (T,T) (F,F) -> 4/6 right.
    assert metrics["acc2_nonneg"] == pytest.approx(4 / 6)
    assert metrics["mae"] == pytest.approx(np.mean([1.0, 1.5, 0.2, 0.3, 2.3, 1.6]))
    assert metrics["corr"] == pytest.approx(np.corrcoef(labels, scores)[0, 1])
    # 7 classes: labels round to 2, -1, 0, 0, 1, -3; scores clip/round to 1, 0 (0.5 -> 0), 0, 0, 3, -1.
    assert metrics["acc7"] == pytest.approx(2 / 6)


def test_regression_edge_cases_and_errors():
    metrics = regression_metrics(np.zeros(3), np.ones(3))
    assert math.isnan(metrics["acc2_nonzero"]) and math.isnan(metrics["corr"])
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        classification_metrics(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="no labelled utterances"):
        regression_metrics(np.zeros(0), np.zeros(0))


def test_score_and_selection_direction():
    logits = np.array([[0.1, 0.9], [2.0, -1.0]])
    assert score("classification", np.array([1, 1]), logits)["wa"] == 0.5
    assert score("regression", np.array([1.0]), np.array([[0.5]]))["mae"] == pytest.approx(0.5)
    assert is_better("mae", 0.4, 0.5) and not is_better("mae", 0.6, 0.5)
    assert is_better("wa", 0.6, 0.5) and is_better("wa", 0.1, None)
    assert not is_better("wa", float("nan"), 0.5)
