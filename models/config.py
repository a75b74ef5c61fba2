"""MoMKE's configuration: everything that shapes the network or must match its inputs.

A checkpoint stores this next to its weights, so a checkpoint describes itself: which feature
profile and dimensions it reads, which labels it predicts and which context mode it was trained
in. Nothing here is a hidden constant: the paper's settings are the defaults.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Modality order used by every tensor in the project (masks are [..., 3] in this order), kept at
# the bottom of the import graph so the extractors share it without importing the model.
from ..extractors.modalities import MODALITIES, SHORT_NAMES

CONTEXT_MODES = ("bidirectional", "causal")
# Modality conditions by short name, as models.training.trainer.condition_name writes them: "a" .. "atv".
CONDITION_NAMES = ("a", "t", "v", "at", "av", "tv", "atv")
TASKS = ("classification", "regression")


@dataclass
class MoMKEConfig:
    """Hyper-parameters of one MoMKE model.

    feature_dims: input dimension per modality, in MODALITIES order (the paper's IEMOCAP
        features: wav2vec 512, DeBERTa 1024, MA-Net 1024).
    labels: class names for classification; empty for regression (one sentiment score).
    context_mode: "bidirectional" (the paper: every utterance sees the whole conversation) or
        "causal" (live use: an utterance sees itself and earlier ones only).
    experts: which modality experts exist (ablation: a subset of experts).
    use_router: False replaces the Soft Router by equal weights (ablation).
    mixing: False sends each modality through its own expert only (ablation "no mixing").
    max_context: the longest context, in utterances, the model was trained to handle; live
        inference never holds more.
    ensemble_size: how many members a checkpoint holds (see models/ensemble.py).
    calibration: temperatures fitted on validation data (classification), applied as
        softmax(logits / T): {"modalities": {"audio": T, "text": T, "visual": T}, "fused":
        {"a": T, ..., "atv": T}} (fused: one per modality condition). A missing entry means T = 1.
    """

    feature_dims: tuple[int, int, int] = (512, 1024, 1024)
    labels: tuple[str, ...] = ("happy", "sad", "neutral", "angry")
    task: str = "classification"
    hidden_dim: int = 256
    num_blocks: int = 4
    num_heads: int = 2
    # Feed-forward width in multiples of d (the paper does not say; the authors' code uses 1):
    # 2 scored best on CMU-MOSI and on IEMOCAP text given enough epochs, 4 worst on both
    # (benchmarks/README.md section 5).
    mlp_ratio: float = 2.0
    dropout: float = 0.5
    router_hidden_dim: int = 256
    context_mode: str = "bidirectional"
    experts: tuple[str, ...] = MODALITIES
    use_router: bool = True
    mixing: bool = True
    feature_profile: str = "custom"
    max_context: int = 110
    # Members trained alike from different seeds, read as one by averaging their logits
    # (models/ensemble.py); 1 = a single model.
    ensemble_size: int = 1
    calibration: dict[str, Any] = field(default_factory=dict)
    # Free-form provenance written by training (protocol, data, metrics); not used by the network.
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.feature_dims = tuple(int(d) for d in self.feature_dims)  # type: ignore[assignment]
        self.labels = tuple(self.labels)
        self.experts = tuple(self.experts)
        if len(self.feature_dims) != len(MODALITIES) or min(self.feature_dims) <= 0:
            raise ValueError(f"feature_dims must be 3 positive ints (audio, text, visual), got {self.feature_dims}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "classification" and len(self.labels) < 2:
            raise ValueError("classification needs at least two labels")
        if self.context_mode not in CONTEXT_MODES:
            raise ValueError(f"context_mode must be one of {CONTEXT_MODES}, got {self.context_mode!r}")
        if not self.experts or any(e not in MODALITIES for e in self.experts):
            raise ValueError(f"experts must be a non-empty subset of {MODALITIES}, got {self.experts}")
        for name in ("hidden_dim", "num_blocks", "num_heads", "router_hidden_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be distinct, got {self.labels}")
        if len(set(self.experts)) != len(self.experts):
            raise ValueError(f"experts must be distinct, got {self.experts}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if isinstance(self.max_context, bool) or not isinstance(self.max_context, int) or self.max_context < 1:
            raise ValueError(f"max_context must be a positive integer (utterances), got {self.max_context!r}")
        if isinstance(self.ensemble_size, bool) or not isinstance(self.ensemble_size, int) or self.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be a positive integer, got {self.ensemble_size!r}")
        _check_calibration(self.calibration)

    @property
    def num_outputs(self) -> int:
        return len(self.labels) if self.task == "classification" else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("feature_dims", "labels", "experts"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoMKEConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MoMKE config keys: {sorted(unknown)}")
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            problem = type_problem(value, hints[name])
            if problem:
                raise ValueError(f"config key {name!r} {problem}")
        return cls(**data)


def _check_calibration(calibration: Any) -> None:
    """The calibration schema: {"modalities": {modality: T}, "fused": {condition: T}}, T > 0."""
    if not isinstance(calibration, dict):
        raise ValueError(f"calibration must be a dict, got {type(calibration).__name__}")
    allowed = {"modalities": MODALITIES, "fused": CONDITION_NAMES}
    unknown = set(calibration) - set(allowed)
    if unknown:
        raise ValueError(f"calibration: unknown keys {sorted(unknown)}; expected among {sorted(allowed)}")
    for part, names in allowed.items():
        temperatures = calibration.get(part, {})
        if not isinstance(temperatures, dict):
            raise ValueError(f"calibration[{part!r}] must be a dict of temperatures, got {type(temperatures).__name__}")
        unknown = set(temperatures) - set(names)
        if unknown:
            raise ValueError(f"calibration[{part!r}]: unknown keys {sorted(unknown)}; expected among {list(names)}")
        for name, value in temperatures.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"calibration[{part!r}][{name!r}] must be a finite temperature > 0, got {value!r}")


def type_problem(value: Any, expected: Any) -> str | None:
    """Why `value` (read from JSON) does not fit the annotation `expected`; None when it fits.

    Strict, because a config comes from a file anyone can edit: a bool is only true/false
    (never "false"), an int is never 96.0 or true, a float is finite, a tuple arrives as a
    JSON list of the right length and item types.
    """
    origin, arguments = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        problems = [type_problem(value, option) for option in arguments]
        return None if None in problems else f"must be {' or '.join(_type_name(a) for a in arguments)}, got {value!r}"
    if expected is type(None):
        return None if value is None else f"must be null, got {value!r}"
    if expected is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if expected is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"must be an integer, got {value!r}"
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        return None if math.isfinite(value) else f"must be a finite number, got {value!r}"
    if expected is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if origin in (tuple, list) or expected in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return f"must be a list, got {value!r}"
        if origin is tuple and arguments and arguments[-1] is not Ellipsis and len(value) != len(arguments):
            return f"must be a list of {len(arguments)} items, got {len(value)}"
        item_types = arguments if origin is tuple and arguments and arguments[-1] is not Ellipsis else \
            [arguments[0] if arguments else Any] * len(value)
        for index, (item, item_type) in enumerate(zip(value, item_types)):
            problem = type_problem(item, item_type)
            if problem:
                return f"item {index} {problem}"
        return None
    if origin is dict or expected is dict:
        if not isinstance(value, dict):
            return f"must be an object, got {value!r}"
        key_type, value_type = arguments or (Any, Any)
        for key, item in value.items():
            problem = type_problem(key, key_type) or type_problem(item, value_type)
            if problem:
                return f"entry {key!r} {problem}"
        return None
    return None if isinstance(value, expected) else f"must be {_type_name(expected)}, got {value!r}"


def _type_name(annotation: Any) -> str:
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))
