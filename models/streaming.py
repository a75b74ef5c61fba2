"""MoMKE one utterance at a time, for live use.

`StreamingMoMKE` owns the context of one live conversation: feed it each new utterance's
features with `step()`, get that utterance's prediction back, `reset()` between conversations.

Causal models (config.context_mode == "causal") run incrementally. An utterance only attends
to itself and earlier ones, so the keys and values earlier utterances produced in every
(input modality, expert, block) never change: they are cached, and a new utterance costs one
query row per block over at most `max_context` cached keys, O(context), not a full forward
pass, O(context^2). The outputs equal `MoMKE.forward` on the conversation held in context
(up to float rounding).

The context window. Utterance positions are the paper's absolute sinusoidal codes, counted
from the first utterance in context; the model was trained on conversations of a bounded
length (IEMOCAP: at most 110 utterances), so positions far beyond that are out of
distribution. When a new utterance would make the context longer than `max_context`, the
oldest utterances are dropped down to `keep_after_roll` (the new one included), positions
restart at 0 and the cache is rebuilt in one pass over the kept utterances. Shifting every
position by one at each step would need that full rebuild at every step; dropping a block of
utterances at once amortises it over `max_context - keep_after_roll + 1` steps, at the price
of a context that varies between `keep_after_roll` and `max_context` utterances.
`keep_after_roll = max_context` gives an exact sliding window (a rebuild at every step).

Bidirectional models (the paper's mode) have no valid cache: every utterance sees the whole
conversation, so a new utterance changes every earlier hidden state. They fall back to a full
forward pass over the context at each step (exact sliding window of `max_context`) and report
the newest utterance's prediction, i.e. what the model says for a conversation that ends now.

An utterance with no modality present (every sensor failed, or all were switched off) cannot
be predicted: `step()` raises `EmptyUtteranceError` (a ValueError) and leaves the context
unchanged, so the live session can report a dropped utterance and carry on.

Privacy: only the feature vectors of present modalities are kept (to rebuild the context);
`forget(modality)` drops every stored feature of one modality and rebuilds the context without
it, and `reset()` forgets everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .config import MODALITIES
from .momke import MoMKE, sinusoidal_positions


class EmptyUtteranceError(ValueError):
    """The utterance has no modality present: nothing to predict from (a dropped utterance)."""


@dataclass
class StepOutput:
    """The prediction for the newest utterance.

    logits: [C] class scores ([1] sentiment score for regression).
    probabilities: [C] softmax over the labels; for regression, the predicted score itself [1].
    router_weights: [3 modalities, E experts], the Soft Router's expert loads (rows of missing
        modalities are 0).
    modalities: the modalities this prediction used, in MODALITIES order.
    context_length: utterances in context, this one included.
    """

    logits: np.ndarray
    probabilities: np.ndarray
    router_weights: np.ndarray
    modalities: list[str]
    context_length: int


class StreamingMoMKE:
    """Step-by-step inference with a trained MoMKE (put into eval mode here)."""

    def __init__(self, model: MoMKE, max_context: int = 110, keep_after_roll: int | None = None) -> None:
        if max_context < 1:
            raise ValueError(f"max_context must be at least 1, got {max_context}")
        if keep_after_roll is None:
            keep_after_roll = max(1, (3 * max_context) // 4)
        if not 1 <= keep_after_roll <= max_context:
            raise ValueError(f"keep_after_roll must be in [1, max_context={max_context}], got {keep_after_roll}")
        self.model = model.eval()
        self.config = model.config
        self.max_context = max_context
        self.keep_after_roll = keep_after_roll
        self.causal = self.config.context_mode == "causal"
        reference = model.head.mlp[0].weight
        self._device, self._dtype = reference.device, reference.dtype
        self._positions = sinusoidal_positions(max_context, self.config.hidden_dim, self._device, self._dtype)
        self.reset()

    @property
    def context_length(self) -> int:
        return len(self._history)

    def reset(self) -> None:
        """Forget the conversation: context, cache and every stored feature."""
        # One entry per utterance in context: {present modality: feature vector [d_m]}.
        self._history: list[dict[str, Tensor]] = []
        if self.causal:
            config = self.config
            heads, head_dim = config.num_heads, config.hidden_dim // config.num_heads
            shape = (len(MODALITIES), heads, self.max_context, head_dim)

            def zeros() -> Tensor:  # zeros, not empty: masked slots must never hold NaN
                return torch.zeros(shape, device=self._device, dtype=self._dtype)

            # [expert][block] -> keys / values of every utterance in context, per input modality.
            self._keys = [[zeros() for _ in range(config.num_blocks)] for _ in config.experts]
            self._values = [[zeros() for _ in range(config.num_blocks)] for _ in config.experts]
            # Which cached utterances are keys of each modality's sequence (the modality present).
            self._key_present = torch.zeros(len(MODALITIES), self.max_context, dtype=torch.bool, device=self._device)

    def forget(self, modality: str) -> None:
        """Drop every stored feature of `modality` (a privacy switch turned off) and rebuild the
        context without it; utterances left with no modality leave the context."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        kept = [{m: x for m, x in u.items() if m != modality} for u in self._history]
        self.reset()
        self._history = [u for u in kept if u]
        if self.causal and self._history:
            with torch.inference_mode():
                self._encode(0, self._history)

    def step(self, features: Mapping[str, object]) -> StepOutput:
        """Add one utterance and predict it.

        features: {"audio": 1-D vector or None, "text": ..., "visual": ...}; a modality left out
        or None is missing. Raises ValueError for bad input and EmptyUtteranceError when no
        modality is present; in both cases the context is left unchanged.
        """
        utterance = self._check(features)
        with torch.inference_mode():
            rolled = len(self._history) >= self.max_context
            if rolled:
                keep = self.keep_after_roll if self.causal else self.max_context
                del self._history[: len(self._history) - keep + 1]
            self._history.append(utterance)
            if not self.causal:
                logits, weights = self._full_forward()
            elif rolled:
                logits, weights = self._encode(0, self._history)
            else:
                logits, weights = self._encode(len(self._history) - 1, [utterance])
            logits, weights = logits[-1], weights[-1]
            if self.config.task == "classification":
                probabilities = logits.softmax(-1)
            else:
                probabilities = logits
        return StepOutput(
            logits=logits.float().cpu().numpy(),
            probabilities=probabilities.float().cpu().numpy(),
            router_weights=weights.float().cpu().numpy(),
            modalities=[m for m in MODALITIES if m in utterance],
            context_length=len(self._history),
        )

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
            utterance[name] = vector.to(device=self._device, dtype=self._dtype)
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

    def _full_forward(self) -> tuple[Tensor, Tensor]:
        features, present = self._stack(self._history)
        output = self.model({m: x.unsqueeze(0) for m, x in features.items()}, present.unsqueeze(0))
        return output.logits[0], output.router_weights[0]

    def _encode(self, start: int, utterances: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Run utterances at context positions start.. through the model, filling the cache.

        The same computation as MoMKE.forward in causal mode, with earlier utterances' keys and
        values read from the cache. Every modality runs (zeros where missing) so the tensors keep
        one shape; a missing modality's keys are never attended to and its router weights, so
        its R^m, are zero, as in forward(). Only cache slots [0, end) are read: after a roll,
        stale slots beyond the kept context are overwritten before they are ever read again.
        Returns logits [n, C] and router weights [n, 3, E].
        """
        model, count = self.model, len(utterances)
        end = start + count
        features, present = self._stack(utterances)
        self._key_present[:, start:end] = present.T
        # allowed[m, i, j]: query start+i of modality m may look at key j (present, not later,
        # or itself: no empty softmax row, as in MoMKE.attention_mask).
        keys_index = torch.arange(end, device=self._device)
        queries_index = torch.arange(start, end, device=self._device).unsqueeze(1)
        allowed = (self._key_present[:, :end].unsqueeze(1) & (keys_index <= queries_index)) | (keys_index == queries_index)
        positions = self._positions[start:end]
        embedded = torch.stack([model.projections[m](features[m]) + positions for m in MODALITIES])  # [3, n, d]

        outputs = []
        for e, name in enumerate(self.config.experts):
            expert, hidden = model.experts[name], embedded
            for b, block in enumerate(expert.blocks):
                q, k, v = block.attention.heads(block.norm1(hidden))
                self._keys[e][b][:, :, start:end] = k
                self._values[e][b][:, :, start:end] = v
                keys, values = self._keys[e][b][:, :, :end], self._values[e][b][:, :, :end]
                hidden = hidden + block.attention.attend(q, keys, values, allowed)
                hidden = hidden + block.mlp(block.norm2(hidden))
            outputs.append(expert.norm(hidden))
        expert_outputs = torch.stack(outputs, dim=-2)  # [3, n, E, d]

        mask = present.T.unsqueeze(-1)  # [3, n, 1]
        weights = torch.stack([model.route(m, features[m].unsqueeze(0))[0] for m in MODALITIES]) * mask  # [3, n, E]
        mixed = (weights.unsqueeze(-1) * expert_outputs).sum(dim=-2)  # R^m, 0 where m is missing
        logits = model.head(torch.cat(list(mixed), dim=-1))
        return logits, weights.transpose(0, 1)
