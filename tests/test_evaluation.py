"""Evaluation: the paper's Table 2 layout, folds that never train on the test session, regression notes."""

import json

import numpy as np
import pytest
from momke.models.momke import MoMKE
from momke.models.training.data import Conversation, CorpusMetadata, FeatureCorpus
from momke.models.training.evaluation import (
    COLUMNS,
    EvaluationReport,
    available_conditions,
    evaluate_model,
    folds_of,
    with_average,
)
from momke.models.training.toy_corpus import make_toy_corpus
from momke.models.training.trainer import model_config_for


def test_average_is_mean_of_the_six_incomplete_conditions():
    per_condition = {name: {"wa": value} for name, value in zip(["a", "t", "v", "av", "at", "tv", "atv"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9])}
    assert with_average(per_condition)["avg"]["wa"] == pytest.approx(0.35)
    assert COLUMNS == ["a", "t", "v", "av", "at", "tv", "avg", "atv"]


def test_leave_one_session_out_folds():
    corpus = make_toy_corpus(num_dialogues=12, num_sessions=3)
    folds = folds_of(corpus, "sessions", 0.2, seed=0)
    assert [name for name, *_ in folds] == ["session 1", "session 2", "session 3"]
    for name, train, valid, test in folds:
        session = int(name.split()[1])
        assert {c.session for c in test} == {session}
        assert session not in {c.session for c in train + valid}
        assert len(train) + len(valid) + len(test) == 12
        assert valid and not {c.dialogue_id for c in valid} & {c.dialogue_id for c in train}
    with pytest.raises(ValueError, match="at least two sessions"):
        folds_of(corpus.subset(corpus.conversations[:1]), "sessions", 0.2, 0)


def test_regression_report_states_the_nonzero_rule(tmp_path):
    rng = np.random.default_rng(0)
    metadata = CorpusMetadata("custom", (2, 3, 2), (), task="regression")
    conversations = []
    for i in range(3):
        present = np.ones((4, 3), bool)
        present[:, 2] = False  # no video anywhere: conditions with v are n/a
        conversations.append(Conversation(
            f"d{i}", [f"d{i}u{j}" for j in range(4)], [""] * 4,
            {"audio": rng.normal(size=(4, 2)), "text": rng.normal(size=(4, 3))}, present,
            np.array([0.0, 1.5, -2.0, 0.4], np.float32), "test",
        ))
    corpus = FeatureCorpus(metadata, conversations)
    assert available_conditions(conversations) == [("audio",), ("text",), ("audio", "text")]
    model = MoMKE(model_config_for(metadata, hidden_dim=8, num_blocks=1, router_hidden_dim=8)).eval()
    report = evaluate_model(model, corpus.conversations)
    table = report.format_table()
    assert "non-zero" in table and "acc2_nonzero" in table and "n/a" in table
    assert "Average covers only the incomplete conditions scored: a, t, at" in table
    data = json.loads(report.write_json(tmp_path / "r.json").read_text())
    assert "exclude utterances whose true sentiment is 0" in data["note"]
    assert set(data["summary"]) == {"a", "t", "at", "avg"}
    assert data["summary"]["avg"]["mae"]["mean"] == pytest.approx(
        np.mean([data["summary"][c]["mae"]["mean"] for c in ("a", "t", "at")])  # the incomplete ones scored
    )


def test_table_shows_mean_and_spread_over_runs():
    report = EvaluationReport(task="classification", protocol="random", scheme="split", labels=["x", "y"])
    for value in (0.5, 0.7):
        report.runs.append({"fold": "split", "seed": int(value * 10), "metrics": {"atv": {"wa": value, "ua": value, "f1": value}}})
    table = report.format_table()
    assert "60.00±10.00" in table
    assert report.summary()["atv"]["wa"]["mean"] == pytest.approx(0.6)
