"""MoMKE itself: the model, its two training stages, evaluation, metrics, data and checkpoints."""

from .checkpoint import DEFAULT_CHECKPOINT, check_features, load_checkpoint, save_checkpoint
from .config import MODALITIES, MoMKEConfig
from .momke import MoMKE, MoMKEOutput
from .streaming import EmptyUtteranceError, StepOutput, StreamingMoMKE

__all__ = [
    "DEFAULT_CHECKPOINT",
    "MODALITIES",
    "EmptyUtteranceError",
    "MoMKE",
    "MoMKEConfig",
    "MoMKEOutput",
    "StepOutput",
    "StreamingMoMKE",
    "check_features",
    "load_checkpoint",
    "save_checkpoint",
]
