"""The conversation so far, as MoMKE sees it live: rolling, bounded and causal.

`ConversationContext.step(features)` adds one utterance and returns MoMKE's prediction for it,
with the utterances before it as context. It wraps `momke.models.streaming.StreamingMoMKE`
(incremental, with a key/value cache for causal checkpoints); the context never holds more than
`max_context` utterances. `forget(modality)` is the privacy switch's half here: every stored
feature of that modality is dropped and the context rebuilt without it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from ..models.config import MODALITIES
from ..models.momke import MoMKE
from ..models.streaming import EmptyUtteranceError, StreamingMoMKE

__all__ = ["ContextPrediction", "ConversationContext", "EmptyUtteranceError"]


@dataclass
class ContextPrediction:
    label: str
    probabilities: dict[str, float]
    modalities: list[str]
    expert_loads: dict[str, dict[str, float]]
    context_length: int


class ConversationContext:
    def __init__(self, model: MoMKE, max_context: int = 110) -> None:
        if max_context < 1:
            raise ValueError(f"max_context must be at least 1 utterance, got {max_context}")
        self.model = model
        self.config = model.config
        self.max_context = max_context
        self._stream = StreamingMoMKE(model, max_context=max_context)
        # Our own copy of the features in context (bounded), to rebuild after a privacy switch.
        self._history: collections.deque[dict[str, np.ndarray]] = collections.deque(maxlen=max_context)

    def __len__(self) -> int:
        return self._stream.context_length

    def step(self, features: dict[str, np.ndarray | None]) -> ContextPrediction:
        """Predict the newest utterance. Raises EmptyUtteranceError (no modality) or ValueError."""
        present = {m: np.asarray(v, dtype=np.float32) for m, v in features.items() if v is not None}
        output = self._stream.step(present)
        self._history.append(present)
        return self._prediction(output)

    def forget(self, modality: str) -> None:
        """Drop every stored feature of `modality` and rebuild the context without it."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}")
        kept = [{m: v for m, v in u.items() if m != modality} for u in self._history]
        self.reset()
        for utterance in kept:
            if utterance:
                self._stream.step(utterance)
                self._history.append(utterance)

    def reset(self) -> None:
        self._stream.reset()
        self._history.clear()

    def holds(self, modality: str) -> bool:
        """True if any utterance in context still has features of `modality`."""
        return any(modality in u for u in self._history)

    def _prediction(self, output) -> ContextPrediction:
        labels = self.config.labels or ("score",)
        probabilities = {label: round(float(p), 5) for label, p in zip(labels, output.probabilities)}
        label = max(probabilities, key=probabilities.get) if self.config.task == "classification" else "score"
        loads = {
            m: {e: round(float(w), 5) for e, w in zip(self.config.experts, output.router_weights[MODALITIES.index(m)])}
            for m in output.modalities
        }
        return ContextPrediction(label, probabilities, list(output.modalities), loads, output.context_length)
