"""The one small interface every extractor follows, and the profile that bundles three of them.

An extractor turns one utterance into one fixed-size float32 vector for its modality, or None
when the modality is missing for that utterance (silence, no face found, empty transcript).
A profile names its three extractors and their dimensions, so a checkpoint can record which
features it was trained on and refuse others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .modalities import MODALITIES


@dataclass
class Utterance:
    """Everything captured between an utterance's start and end (seconds on the shared clock).

    audio: mono float32 samples in [-1, 1] ([n] or [n, channels]); None when not captured.
    frames: RGB uint8 images [H, W, 3] that fall inside the utterance, with their timestamps.
    transcript: the words said, from ASR or typed; None or "" when unknown.
    """

    start: float = 0.0
    end: float = 0.0
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    transcript: str | None = None
    id: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


class ModalityExtractor(ABC):
    """Utterance -> float32 vector of length `dim`, or None when the modality is missing."""

    modality: str
    dim: int

    @abstractmethod
    def extract(self, utterance: Utterance) -> np.ndarray | None: ...

    def extract_batch(self, utterances: Sequence[Utterance]) -> list[np.ndarray | None]:
        """Override where the model batches; the default runs one at a time."""
        return [self.extract(u) for u in utterances]

    def to(self, device) -> ModalityExtractor:
        """Move any network to `device` ("cpu", "cuda"); extractors without one ignore it."""
        return self

    def check(self, verify: bool = True) -> None:
        """Raise, naming what to install, if this extractor's weights are missing (verify: or
        differ from the published ones), without loading any network; a session calls it before
        it starts. The default has nothing to check."""


@dataclass
class FeatureProfile:
    """Three extractors, one per modality, under one name a checkpoint can record."""

    name: str
    audio: ModalityExtractor
    text: ModalityExtractor
    visual: ModalityExtractor

    @property
    def dims(self) -> tuple[int, int, int]:
        return tuple(self.extractor(m).dim for m in MODALITIES)  # type: ignore[return-value]

    def extractor(self, modality: str) -> ModalityExtractor:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        return getattr(self, modality)

    def extract(self, utterance: Utterance, modalities: Sequence[str] = MODALITIES) -> dict[str, np.ndarray | None]:
        """Features of the enabled modalities; a modality left out is never touched."""
        return {m: self.extractor(m).extract(utterance) for m in modalities}
