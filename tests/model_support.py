"""A tiny real MoMKE for the model, checkpoint and streaming tests: seeded, so every call with the
same seed and settings gives the same weights."""

from __future__ import annotations

import torch
from momke.models.config import MoMKEConfig
from momke.models.momke import MoMKE

DIMS = (6, 5, 4)  # feature width per modality (audio, text, visual)


def tiny_config(**overrides) -> MoMKEConfig:
    settings = {"feature_dims": DIMS, "hidden_dim": 8, "num_blocks": 2, "num_heads": 2, "router_hidden_dim": 8}
    return MoMKEConfig(**{**settings, **overrides})


def tiny_model(seed: int = 0, **overrides) -> MoMKE:
    """An untrained MoMKE in eval mode; `overrides` are MoMKEConfig fields."""
    torch.manual_seed(seed)
    return MoMKE(tiny_config(**overrides)).eval()


def tiny_ensemble(size: int = 2, **overrides):
    """An untrained ensemble of `size` tiny MoMKE members (different seeds), in eval mode."""
    from momke.models.ensemble import MoMKEEnsemble

    members = [tiny_model(seed=seed, **overrides) for seed in range(size)]
    return MoMKEEnsemble(tiny_config(ensemble_size=size, **overrides), members).eval()
