"""The conversation so far, as the live session sees it: rolling, bounded and causal.

A thin adapter over `momke.models.streaming.StreamingMoMKE`, which holds the one state of the
conversation (the utterances in context and their key/value cache): `ConversationContext`
keeps no copy of its own, so the session's context and the model's are the same utterances.
`step(features)` adds one utterance and returns MoMKE's prediction for it as plain dicts (the
fused probabilities and each present modality's own, calibrated); the context never holds more
than `max_context` utterances, nor more than the checkpoint was trained for. `forget(modality)`
is the privacy switch's half here: every stored feature of that modality is dropped and the
context rebuilt from the utterances held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.config import MODALITIES
from ..models.ensemble import MoMKEEnsemble
from ..models.momke import MoMKE
from ..models.streaming import EmptyUtteranceError, NonFiniteOutputError, StepOutput, StreamingMoMKE

__all__ = ["ContextPrediction", "ConversationContext", "EmptyUtteranceError", "NonFiniteOutputError"]


@dataclass
class ContextPrediction:
    """label: the fused prediction's top label ("score" for regression).
    probabilities: label -> fused, calibrated probability ({"score": s} for regression).
    modality_probabilities: modality -> {label: probability} of each used modality's own
        prediction, calibrated ({"score": s} for regression).
    expert_loads: modality -> {expert: Soft Router weight} for the modalities used."""

    label: str
    probabilities: dict[str, float]
    modalities: list[str]
    expert_loads: dict[str, dict[str, float]]
    context_length: int
    modality_probabilities: dict[str, dict[str, float]]


class ConversationContext:
    def __init__(self, model: MoMKE | MoMKEEnsemble, max_context: int | None = None) -> None:
        """max_context: utterances kept; None means the checkpoint's config.max_context, and a
        larger request is cut to it."""
        self.model = model
        self.config = model.config
        self.stream = StreamingMoMKE(model, max_context=max_context)
        self.max_context = self.stream.max_context

    def __len__(self) -> int:
        return self.stream.context_length

    @property
    def utterances(self) -> list[dict[str, np.ndarray]]:
        """The utterances in context (a copy of the streaming model's state)."""
        return self.stream.utterances

    def step(self, features: dict[str, np.ndarray | None]) -> ContextPrediction:
        """Predict the newest utterance. Raises EmptyUtteranceError (no modality), ValueError
        (bad features) or NonFiniteOutputError (a broken model); the context is then unchanged."""
        return self._prediction(self.stream.step(features))

    def forget(self, modality: str) -> None:
        """Drop every stored feature of `modality` and rebuild the context without it."""
        self.stream.forget(modality)

    def reset(self) -> None:
        self.stream.reset()

    def holds(self, modality: str) -> bool:
        """True if any utterance in context still has features of `modality`."""
        return self.stream.holds(modality)

    def _prediction(self, output: StepOutput) -> ContextPrediction:
        labels = self.config.labels or ("score",)

        def by_label(values: np.ndarray) -> dict[str, float]:
            return {label: round(float(p), 5) for label, p in zip(labels, values)}

        probabilities = by_label(output.probabilities)
        label = max(probabilities, key=probabilities.get) if self.config.task == "classification" else "score"
        loads = {
            m: {e: round(float(w), 5) for e, w in zip(self.config.experts, output.router_weights[MODALITIES.index(m)])}
            for m in output.modalities
        }
        own = {m: by_label(values) for m, values in output.modality_probabilities.items()}
        return ContextPrediction(label, probabilities, list(output.modalities), loads, output.context_length, own)
