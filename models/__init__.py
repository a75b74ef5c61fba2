"""MoMKE itself: the model, its two training stages, evaluation, metrics, data and checkpoints."""

from .config import MODALITIES, MoMKEConfig
from .momke import MoMKE, MoMKEOutput

__all__ = ["MODALITIES", "MoMKE", "MoMKEConfig", "MoMKEOutput"]
