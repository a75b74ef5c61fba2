"""MoMKE itself: the model, its config, checkpoints, calibration and streaming. Above it stand
training/ (how it learns and is measured) and commands/ (the `momke` CLI, recipes).

Names are imported on first use: importing a submodule (or `momke --help`) does not pay for
torch until something that needs it is asked for.
"""

import importlib

_HOMES = {
    "DEFAULT_CHECKPOINT": "checkpoint", "check_features": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint", "MODALITIES": "config", "MoMKEConfig": "config", "MoMKE": "momke",
    "MoMKEOutput": "momke", "EmptyUtteranceError": "streaming", "StepOutput": "streaming", "StreamingMoMKE": "streaming",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # names provided by __getattr__
    "DEFAULT_CHECKPOINT", "MODALITIES", "EmptyUtteranceError", "MoMKE", "MoMKEConfig", "MoMKEOutput", "StepOutput",
    "StreamingMoMKE", "check_features", "load_checkpoint", "save_checkpoint",
]
