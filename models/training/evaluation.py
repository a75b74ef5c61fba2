"""Evaluation under every modality condition, laid out as the paper's Table 2.

Columns: {a}, {t}, {v}, {a,v}, {a,t}, {t,v}, the average of those six incomplete conditions, and
{a,t,v}. Rows: WA / UA / weighted F1 (classification) or the sentiment metrics (regression,
binary ones under the paper's non-zero rule, see ``metrics.NONZERO_RULE_NOTE``).

Schemes:
- ``split``: train on the corpus's train split (validation: its "valid" split or a part carved
  out of train), test on its "test" split; repeated over several seeds and averaged (the
  paper's MOSI/MOSEI practice).
- ``sessions``: k-fold leave-one-session-out (IEMOCAP): each session is the test set once, the
  model trains on the other sessions with validation carved out of them, and the folds'
  metrics are averaged (and may be repeated over seeds).
The ``fixed`` protocol trains one model per condition and scores it on that condition; the
``random`` protocol trains one model and scores it on every condition. Under a condition, the
utterances scored are the labelled ones that keep at least one modality (``training.predict``):
with complete data, as in the paper, that is every labelled utterance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...extractors.runtime import write_text_atomic
from ..config import MODALITIES, MoMKEConfig
from ..metrics import CLASSIFICATION_METRICS, NONZERO_RULE_NOTE, REGRESSION_METRICS, score
from ..momke import MoMKE
from .data import Conversation, FeatureCorpus
from .trainer import (
    CONDITIONS,
    TrainingSettings,
    carve_validation,
    condition_name,
    condition_presence,
    model_config_for,
    predict,
    split_for_training,
    train_momke,
)

SCHEMES = ("split", "sessions")
AVERAGE = "avg"
COMPLETE = condition_name(MODALITIES)
INCOMPLETE = [condition_name(c) for c in CONDITIONS if len(c) < len(MODALITIES)]
# The paper's column order.
COLUMNS = [*INCOMPLETE, AVERAGE, COMPLETE]


def available_conditions(conversations: Sequence[Conversation]) -> list[tuple[str, ...]]:
    """The conditions whose every modality occurs somewhere in these conversations."""
    has = {m for i, m in enumerate(MODALITIES) if any(c.present[:, i].any() for c in conversations)}
    return [c for c in CONDITIONS if set(c) <= has]


def with_average(per_condition: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Adds the mean of the incomplete conditions that were scored (the paper's "Average")."""
    scored = [per_condition[name] for name in INCOMPLETE if name in per_condition]
    result = dict(per_condition)
    if scored:
        result[AVERAGE] = {key: float(np.mean([m[key] for m in scored])) for key in scored[0]}
    return result


def evaluate_conditions(
    model: MoMKE, conversations: Sequence[Conversation], conditions: Sequence[Sequence[str]] | None = None
) -> dict[str, dict[str, float]]:
    """Metrics of one model under each condition (default: every condition the data allows)."""
    conditions = available_conditions(conversations) if conditions is None else conditions
    results = {}
    for condition in conditions:
        presence = [condition_presence(c, condition) for c in conversations]
        labels, outputs = predict(model, conversations, presence)
        results[condition_name(condition)] = score(model.config.task, labels, outputs)
    return with_average(results)


@dataclass
class EvaluationReport:
    """Per-run metrics (fold x seed) and their mean / standard deviation per condition."""

    task: str
    protocol: str
    scheme: str
    labels: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{condition: {metric: {"mean", "std"}}} over all runs."""
        result: dict[str, dict[str, dict[str, float]]] = {}
        for column in COLUMNS:
            values = [run["metrics"][column] for run in self.runs if column in run["metrics"]]
            if values:
                result[column] = {
                    key: {"mean": float(np.mean([v[key] for v in values])), "std": float(np.std([v[key] for v in values]))}
                    for key in self.metric_names
                }
        return result

    def to_dict(self) -> dict[str, Any]:
        data = {
            "task": self.task,
            "protocol": self.protocol,
            "scheme": self.scheme,
            "labels": self.labels,
            "columns": COLUMNS,
            "summary": self.summary(),
            "runs": self.runs,
            "settings": self.settings,
            "model": self.model,
            "aggregation": "mean and standard deviation of each run's metrics (runs = folds x seeds)",
        }
        if self.task == "regression":
            data["note"] = NONZERO_RULE_NOTE
        return data

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        # NaN (an undefined correlation) is written as null, keeping the file strict JSON.
        write_text_atomic(path, json.dumps(nan_to_none(self.to_dict()), indent=2) + "\n")
        return path

    def format_table(self) -> str:
        """The paper's Table 2 layout: one row per metric, one column per condition."""
        summary = self.summary()
        header = ["metric", *(f"{{{','.join(c)}}}" if c != AVERAGE else "Average" for c in COLUMNS)]
        rows = [header]
        for key in self.metric_names:
            row = [key]
            for column in COLUMNS:
                if column not in summary:
                    row.append("n/a")
                    continue
                mean, std = summary[column][key]["mean"], summary[column][key]["std"]
                scale = 1.0 if key in ("mae", "corr") else 100.0
                text = "nan" if np.isnan(mean) else f"{scale * mean:.2f}"
                if len(self.runs) > 1 and not np.isnan(std):
                    text += f"±{scale * std:.2f}"
                row.append(text)
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        folds = sorted({str(run["fold"]) for run in self.runs})
        seeds = sorted({run["seed"] for run in self.runs if run["seed"] is not None})
        lines.append(
            f"protocol {self.protocol}, scheme {self.scheme}, folds {', '.join(folds)}, "
            f"seeds {seeds or 'n/a'}; percentages except mae/corr; n/a: not scored (a modality absent from the data, or not requested)"
        )
        scored = [c for c in INCOMPLETE if c in summary]
        if AVERAGE in summary and len(scored) < len(INCOMPLETE):
            lines.append(f"Average covers only the incomplete conditions scored: {', '.join(scored)}")
        if self.task == "regression":
            lines.append(f"note: {NONZERO_RULE_NOTE}")
        not_learnt = [f"{run['fold']} seed {run['seed']} {name}" for run in self.runs for name in run.get("not_learnt", [])]
        if not_learnt:
            lines.append(f"warning: {len(not_learnt)} model(s) no better on validation than a constant predictor "
                         f"(their scores say nothing of the method): {', '.join(not_learnt)}")
        return "\n".join(lines)


def nan_to_none(value: Any) -> Any:
    """NaN -> None throughout nested dicts/lists (strict JSON has no NaN)."""
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    return value


def folds_of(
    corpus: FeatureCorpus, scheme: str, valid_fraction: float, seed: int
) -> list[tuple[str, list[Conversation], list[Conversation], list[Conversation]]]:
    """[(fold name, train, valid, test)] for a scheme; validation never comes from test data."""
    if scheme == "split":
        train, valid, test = split_for_training(corpus, valid_fraction, seed)
        if not test:
            raise ValueError("the corpus has no dialogues with split 'test'; use --scheme sessions or add a test split")
        return [("split", train, valid, test)]
    if scheme != "sessions":
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    sessions = corpus.sessions()
    if len(sessions) < 2:
        raise ValueError("leave-one-session-out needs dialogues from at least two sessions (the 'session' field)")
    if any(c.session is None for c in corpus.conversations):
        raise ValueError("every dialogue needs a 'session' for leave-one-session-out")
    folds = []
    for session in sessions:
        test = [c for c in corpus.conversations if c.session == session]
        pool = [c for c in corpus.conversations if c.session != session]
        train, valid = carve_validation(pool, valid_fraction, seed)
        folds.append((f"session {session}", train, valid, test))
    return folds


def run_evaluation(
    corpus: FeatureCorpus,
    settings: TrainingSettings,
    model_overrides: dict[str, Any] | None = None,
    scheme: str = "split",
    seeds: Sequence[int] = (0,),
    conditions: Sequence[Sequence[str]] | None = None,
) -> EvaluationReport:
    """Train and test under a protocol and scheme; returns every run and the aggregate."""
    config = model_config_for(corpus.metadata, **(model_overrides or {}))
    report = EvaluationReport(
        task=corpus.metadata.task,
        protocol=settings.protocol,
        scheme=scheme,
        labels=list(corpus.metadata.labels),
        settings=settings.to_dict(),
        model=config.to_dict(),
    )
    for seed in seeds:
        for fold, train, valid, test in folds_of(corpus, scheme, settings.valid_fraction, seed):
            wanted = available_conditions(test) if conditions is None else list(conditions)
            wanted = [c for c in wanted if c in available_conditions(train)]
            if not wanted:
                raise ValueError(f"fold {fold}: no modality condition occurs in both training and test data")
            metrics: dict[str, dict[str, float]] = {}
            best: dict[str, Any] = {}
            not_learnt: list[str] = []  # models no better on validation than a constant predictor
            if settings.protocol == "random":
                result = train_momke(train, valid, config, replace(settings, seed=seed))
                metrics = evaluate_conditions(result.model, test, wanted)
                best = result.best
                not_learnt += [] if result.learnt else ["random"]
            else:
                for condition in wanted:
                    run_settings = replace(settings, seed=seed, condition=tuple(condition))
                    result = train_momke(train, valid, config, run_settings)
                    name = condition_name(condition)
                    metrics.update(evaluate_conditions(result.model, test, [condition]))
                    best[name] = result.best
                    not_learnt += [] if result.learnt else [name]
                metrics = with_average({k: v for k, v in metrics.items() if k != AVERAGE})
            report.runs.append(
                {
                    "fold": fold,
                    "seed": seed,
                    "num_train": len(train),
                    "num_valid": len(valid),
                    "num_test": len(test),
                    "metrics": metrics,
                    "selected": nan_to_none(best),
                    "not_learnt": not_learnt,
                }
            )
    return report


def evaluate_model(
    model: MoMKE, conversations: Sequence[Conversation], protocol: str = "checkpoint", description: str = "test"
) -> EvaluationReport:
    """Report for an already trained model (e.g. a checkpoint) on some conversations."""
    config: MoMKEConfig = model.config
    report = EvaluationReport(
        task=config.task, protocol=protocol, scheme=description, labels=list(config.labels), model=config.to_dict()
    )
    report.runs.append(
        {"fold": description, "seed": None, "num_test": len(conversations), "metrics": evaluate_conditions(model, conversations)}
    )
    return report
