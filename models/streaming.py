"""MoMKE one utterance at a time, for live use.

`StreamingMoMKE` owns the one state of a live conversation: the features of the utterances in
context (and, for causal models, their key/value cache). Feed it each new utterance's features
with `step()`, get that utterance's prediction back (fused, and each present modality's own),
`forget(modality)` for a privacy switch, `reset()` between conversations. The session reads this
same state (realtime/context.py is a thin adapter over it), so the two can never differ.

Causal models (config.context_mode == "causal") run incrementally through the model's own
forward(): `MoMKE.forward(..., cache=KVCache)` keeps the keys and values earlier utterances
produced in every (input modality, expert, block), which never change in causal mode, so a new
utterance costs one query row per block over at most `max_context` cached keys, O(context), not
a full forward pass, O(context^2). The outputs equal `MoMKE.forward` on the conversation held
in context (up to float rounding).

The context window. Utterance positions are the paper's absolute sinusoidal codes, counted
from the first utterance in context; the model was trained on conversations of a bounded
length (`config.max_context`, recorded in the checkpoint), so the context never holds more:
`max_context` is the smaller of the one asked for and the checkpoint's. When a new utterance
would make the context longer than `max_context`, the oldest utterances are dropped down to
`keep_after_roll` (the new one included), positions restart at 0 and the cache is rebuilt in
one pass over the kept utterances. Shifting every position by one at each step would need that
full rebuild at every step; dropping a block of utterances at once amortises it over
`max_context - keep_after_roll + 1` steps, at the price of a context that varies between
`keep_after_roll` and `max_context` utterances. `keep_after_roll = max_context` gives an exact
sliding window (a rebuild at every step).

Bidirectional models (the paper's mode) have no valid cache: every utterance sees the whole
conversation, so a new utterance changes every earlier hidden state. They run a full forward
pass over the context at each step (exact sliding window of `max_context`) and report the
newest utterance's prediction, i.e. what the model says for a conversation that ends now.

Probabilities are calibrated with the checkpoint's temperatures (models/calibration.py): the
fused ones with the temperature of the utterance's modality condition, each modality's own with
that modality's.

An utterance that cannot be predicted leaves the context unchanged: `step()` raises
`EmptyUtteranceError` (a ValueError) when no modality is present (every sensor failed, or all
were switched off), ValueError for bad features, and `NonFiniteOutputError` when the model's
output is NaN or infinite (e.g. a checkpoint with NaN weights), so the live session can report
a dropped utterance and carry on.

Privacy: only the feature vectors of present modalities are kept (to rebuild the context);
`forget(modality)` drops every stored feature of one modality and rebuilds the cache from the
utterances held (none that had rolled out comes back), and `reset()` forgets everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .calibration import apply_temperature, fused_temperature, modality_temperature
from .config import MODALITIES
from .ensemble import MoMKEEnsemble
from .momke import KVCache, MoMKE, MoMKEOutput


class EmptyUtteranceError(ValueError):
    """The utterance has no modality present: nothing to predict from (a dropped utterance)."""


class NonFiniteOutputError(RuntimeError):
    """The model's output for an utterance is NaN or infinite: the model itself is broken."""


@dataclass
class StepOutput:
    """The prediction for the newest utterance.

    logits: [C] class scores ([1] sentiment score for regression), uncalibrated.
    probabilities: [C] calibrated softmax over the labels (the temperature of this utterance's
        modality condition); for regression, the predicted score itself [1].
    router_weights: [3 modalities, E experts], the Soft Router's expert loads (rows of missing
        modalities are 0).
    modalities: the modalities this prediction used, in MODALITIES order.
    context_length: utterances in context, this one included.
    modality_logits: {modality: [C]} each used modality's own prediction (its expert through its
        stage-1 head), uncalibrated; keys: the used modalities the model has an expert for
        (all of them, unless the checkpoint is an expert-subset ablation).
    modality_probabilities: {modality: [C]} the same, calibrated with that modality's temperature
        (each sums to 1); for regression, that modality's own score [1].
    """

    logits: np.ndarray
    probabilities: np.ndarray
    router_weights: np.ndarray
    modalities: list[str]
    context_length: int
    modality_logits: dict[str, np.ndarray]
    modality_probabilities: dict[str, np.ndarray]


class StreamingMoMKE:
    """Step-by-step inference with a trained MoMKE (put into eval mode here).

    max_context: utterances kept; None (or more than the checkpoint's config.max_context) means
    the checkpoint's. keep_after_roll: utterances kept when the window rolls (causal models).
    """

    def __init__(
        self, model: MoMKE | MoMKEEnsemble, max_context: int | None = None, keep_after_roll: int | None = None
    ) -> None:
        if max_context is not None and max_context < 1:
            raise ValueError(f"max_context must be at least 1, got {max_context}")
        self.model = model.eval()
        self.config = model.config
        self.max_context = self.config.max_context if max_context is None else min(max_context, self.config.max_context)
        if keep_after_roll is None:
            keep_after_roll = max(1, (3 * self.max_context) // 4)
        if not 1 <= keep_after_roll <= self.max_context:
            raise ValueError(f"keep_after_roll must be in [1, max_context={self.max_context}], got {keep_after_roll}")
        self.keep_after_roll = keep_after_roll
        self.causal = self.config.context_mode == "causal"
        reference = next(model.parameters())
        self._device, self._dtype = reference.device, reference.dtype
        self.reset()

    @property
    def context_length(self) -> int:
        return len(self._utterances)

    @property
    def utterances(self) -> list[dict[str, np.ndarray]]:
        """A copy of the conversation in context: per utterance, {present modality: features}."""
        return [{m: x.float().cpu().numpy().copy() for m, x in u.items()} for u in self._utterances]

    def holds(self, modality: str) -> bool:
        """True if any utterance in context still has features of `modality`."""
        return any(modality in u for u in self._utterances)

    def reset(self) -> None:
        """Forget the conversation: context, cache and every stored feature."""
        # One entry per utterance in context: {present modality: feature vector [d_m]}.
        self._utterances: list[dict[str, Tensor]] = []
        self._cache = self.model.new_cache() if self.causal else None

    def forget(self, modality: str) -> None:
        """Drop every stored feature of `modality` (a privacy switch turned off) and rebuild the
        cache from the utterances held; utterances left with no modality leave the context."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        kept = [{m: x for m, x in u.items() if m != modality} for u in self._utterances]
        self.reset()
        self._utterances = [u for u in kept if u]
        if self.causal and self._utterances:
            with torch.inference_mode():
                self._forward(self._utterances, self._cache)

    def step(self, features: Mapping[str, object]) -> StepOutput:
        """Add one utterance and predict it.

        features: {"audio": 1-D vector or None, "text": ..., "visual": ...}; a modality left out
        or None is missing. Raises ValueError for bad input, EmptyUtteranceError when no
        modality is present and NonFiniteOutputError when the model's output is not finite; in
        every case the context is left unchanged.
        """
        utterance = self._check(features)
        context = self._utterances
        rolled = len(context) >= self.max_context
        if rolled:
            keep = self.keep_after_roll if self.causal else self.max_context
            context = context[len(context) - keep + 1 :]
        context = [*context, utterance]
        with torch.inference_mode():
            if not self.causal:
                cache, output = None, self._forward(context, None)
            elif rolled:  # positions restart at 0: a fresh cache over the kept utterances
                cache = self.model.new_cache()
                output = self._forward(context, cache)
            else:  # a copy, so that a rejected output leaves the cache as it was
                cache = self._cache.copy()
                output = self._forward([utterance], cache)
            result = self._newest(output, utterance, len(context))
        self._utterances, self._cache = context, cache
        return result

    # ----------------------------------------------------------------------------------------

    def _check(self, features: Mapping[str, object]) -> dict[str, Tensor]:
        unknown = set(features) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; expected keys among {MODALITIES}")
        utterance = {}
        for name, dim in zip(MODALITIES, self.config.feature_dims):
            value = features.get(name)
            if value is None:
                continue
            vector = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
            if vector.dim() != 1 or vector.shape[0] != dim:
                raise ValueError(
                    f"{name} features must be a 1-D vector of {dim} values, got shape {tuple(vector.shape)}: "
                    f"this model reads the {self.config.feature_profile!r} feature profile"
                )
            if not torch.isfinite(vector).all():
                raise ValueError(f"{name} features contain NaN or inf; pass None for a missing modality")
            # A copy: the caller may reuse its buffer, and the context must hold what was seen.
            utterance[name] = vector.to(device=self._device, dtype=self._dtype, copy=True)
        if not utterance:
            raise EmptyUtteranceError("no modality present in this utterance: nothing to predict from")
        return utterance

    def _stack(self, utterances: list[dict[str, Tensor]]) -> tuple[dict[str, Tensor], Tensor]:
        """Features {modality: [n, d_m]} (zeros where missing) and the presence mask [n, 3]."""
        features = {}
        for name, dim in zip(MODALITIES, self.config.feature_dims):
            zero = torch.zeros(dim, device=self._device, dtype=self._dtype)
            features[name] = torch.stack([u.get(name, zero) for u in utterances])
        present = torch.tensor([[m in u for m in MODALITIES] for u in utterances], device=self._device)
        return features, present

    def _forward(self, utterances: list[dict[str, Tensor]], cache: KVCache | None) -> MoMKEOutput:
        """MoMKE.forward over utterances (after those in cache, if any), as one conversation."""
        features, present = self._stack(utterances)
        return self.model({m: x.unsqueeze(0) for m, x in features.items()}, present.unsqueeze(0), cache=cache)

    def _newest(self, output: MoMKEOutput, utterance: dict[str, Tensor], context_length: int) -> StepOutput:
        """The newest utterance's prediction, calibrated; NonFiniteOutputError if it is not finite."""
        modalities = [m for m in MODALITIES if m in utterance]
        logits, weights = output.logits[0, -1], output.router_weights[0, -1]
        own = {
            m: output.modality_logits[0, -1, MODALITIES.index(m)] for m in modalities if m in self.config.experts
        }
        if not torch.isfinite(torch.cat([logits, weights.flatten(), *own.values()])).all():
            raise NonFiniteOutputError(
                "the model's output is NaN or infinite for this utterance (a broken checkpoint?); the context is unchanged"
            )
        if self.config.task == "classification":
            probabilities = apply_temperature(logits, fused_temperature(self.config, modalities))
            own_probabilities = {m: apply_temperature(x, modality_temperature(self.config, m)) for m, x in own.items()}
        else:  # a sentiment score: no probabilities, the score itself
            probabilities, own_probabilities = logits, own

        def numpy(x: Tensor) -> np.ndarray:
            return x.float().cpu().numpy()

        return StepOutput(
            logits=numpy(logits),
            probabilities=numpy(probabilities),
            router_weights=numpy(weights),
            modalities=modalities,
            context_length=context_length,
            modality_logits={m: numpy(x) for m, x in own.items()},
            modality_probabilities={m: numpy(x) for m, x in own_probabilities.items()},
        )
