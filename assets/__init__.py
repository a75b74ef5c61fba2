"""Data shipped with the package: weights, checkpoints, the demo (found with momke.extractors.runtime.bundled)."""
