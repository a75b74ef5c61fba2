"""Several MoMKE models trained alike from different seeds, read as one.

Why: on the default recipe the held-out figures of one training run move by +-3 points from seed
to seed (benchmarks/results/ensemble.txt) while validation hardly tells the runs apart, so which
seed ships would decide what users get. Averaging the members' logits removes most of that
spread and is more accurate than any member on average (+1.5 points on every condition).

The ensemble answers like a single MoMKE: forward() (with or without a key/value cache) and
forward_unimodal() return the members' mean logits, expert loads and per-modality logits, and
its calibration temperatures are fitted on those means. A member costs little live (the
extractors dominate each utterance's time), so the live step stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .config import MoMKEConfig
from .momke import KVCache, MoMKE, MoMKEOutput


class EnsembleCache:
    """One KVCache per member; the streaming model holds it as it would a KVCache."""

    def __init__(self, members: Sequence[KVCache]) -> None:
        self.members = list(members)

    @property
    def length(self) -> int:
        return self.members[0].length

    def copy(self) -> EnsembleCache:
        return EnsembleCache([cache.copy() for cache in self.members])


class MoMKEEnsemble(nn.Module):
    """config.ensemble_size MoMKE members sharing one config; outputs are their means."""

    def __init__(self, config: MoMKEConfig, members: Sequence[MoMKE] | None = None) -> None:
        super().__init__()
        self.config = config
        if members is None:
            members = [MoMKE(config) for _ in range(config.ensemble_size)]
        if len(members) != config.ensemble_size or len(members) < 2:
            raise ValueError(f"an ensemble needs config.ensemble_size >= 2 members, got {len(members)} for {config.ensemble_size}")
        for member in members:
            member.config = config  # one config (calibration, metadata) for the whole ensemble
        self.members = nn.ModuleList(members)

    def new_cache(self) -> EnsembleCache:
        return EnsembleCache([member.new_cache() for member in self.members])

    def forward(
        self,
        features: Mapping[str, Tensor],
        modality_mask: Tensor,
        utterance_mask: Tensor | None = None,
        cache: EnsembleCache | None = None,
    ) -> MoMKEOutput:
        outputs = [
            member(features, modality_mask, utterance_mask, None if cache is None else cache.members[index])
            for index, member in enumerate(self.members)
        ]
        return MoMKEOutput(
            logits=torch.stack([o.logits for o in outputs]).mean(dim=0),
            router_weights=torch.stack([o.router_weights for o in outputs]).mean(dim=0),
            modality_mask=outputs[0].modality_mask,
            modality_logits=torch.stack([o.modality_logits for o in outputs]).mean(dim=0),
        )

    def forward_unimodal(
        self, modality: str, features: Tensor, present: Tensor, utterance_mask: Tensor | None = None
    ) -> Tensor:
        return torch.stack(
            [member.forward_unimodal(modality, features, present, utterance_mask) for member in self.members]
        ).mean(dim=0)


def build_model(config: MoMKEConfig) -> MoMKE | MoMKEEnsemble:
    """The network a config describes: one MoMKE, or an ensemble of config.ensemble_size."""
    return MoMKE(config) if config.ensemble_size == 1 else MoMKEEnsemble(config)
