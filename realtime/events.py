"""The plain events the live engine emits: one emotion per utterance, modality status changes,
and utterances that could not be scored (with the reason). Every event is JSON-serialisable,
so callbacks, iterators, JSON-lines logs, the CLI and the Gradio page all read the same thing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass
class Event:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)


@dataclass
class EmotionEvent(Event):
    """MoMKE's prediction for one utterance.

    start / end: seconds on the session clock. probabilities: label -> probability (the fused
    prediction, calibrated). modalities: the modalities actually used for this utterance (in
    "audio", "text", "visual").
    expert_loads: modality -> {expert: Soft Router weight} for the modalities used.
    latency_ms: stage -> milliseconds, e.g. {"extract_audio": .., "model": .., "total": ..};
    "total" runs from the utterance's end to the event.
    modality_probabilities: modality -> {label: probability}, each used modality's own
    calibrated prediction beside the fused one (who said what); {"score": s} for a sentiment
    (regression) checkpoint.
    transcript_confidence: 0-1, the speech-to-text's estimate of the share of right words (see
    extractors/transcript_confidence.py); None when the words were given (pushed text, a
    transcript file: trusted) or the backend gives none (PocketSphinx).
    text_set_aside: why the transcript's words were not used for emotion although there are
    some (e.g. "low transcript confidence 0.23 < 0.50"); the transcript is still shown.
    """

    type: ClassVar[str] = "emotion"
    utterance_id: int
    start: float
    end: float
    label: str
    probabilities: dict[str, float]
    modalities: list[str]
    transcript: str | None = None
    expert_loads: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    modality_probabilities: dict[str, dict[str, float]] = field(default_factory=dict)
    segmentation: str = "speech"  # what cut the utterance: "speech" (VAD), "text", "window" (camera only)
    transcript_confidence: float | None = None
    text_set_aside: str | None = None


@dataclass
class LanguageEvent(Event):
    """The speech-to-text found the language spoken (`--language auto`: once per session, on
    the first utterance long enough); it transcribes in this language from then on."""

    type: ClassVar[str] = "language"
    language: str
    probability: float
    time: float = 0.0


@dataclass
class StatusEvent(Event):
    """A modality changed state: "active", "loading" (its extractor is still loading; capture
    runs), "missing" (with the reason), "failed" (its extractor failed on several utterances in
    a row; the reason says why) or "disabled" (privacy)."""

    type: ClassVar[str] = "status"
    modality: str
    state: str
    reason: str = ""
    time: float = 0.0


@dataclass
class DroppedUtteranceEvent(Event):
    """An utterance that produced no emotion (e.g. every modality missing), and why."""

    type: ClassVar[str] = "dropped"
    utterance_id: int
    start: float
    end: float
    reason: str
    segmentation: str = "speech"


@dataclass
class ReadyEvent(Event):
    """The session is ready: capture has begun (the session clock starts at 0 here).

    time: the session clock (0); warmup_ms: from the session's creation (its model loaded) to
    capture; modalities:
    the modalities enabled, whose extractors load in parallel from here on (each one's status
    is "loading" until it is warm; an utterance waits for the extractors it needs). A modality
    switched on later loads when first enabled."""

    type: ClassVar[str] = "ready"
    time: float = 0.0
    warmup_ms: float = 0.0
    modalities: list[str] = field(default_factory=list)
