"""What a front end shows, folded from the session's events: the current emotion, the history of
the conversation, each modality's status and the Soft Router's expert loads.

The terminal view, the Gradio page and the exit summary all read one `LiveState`, so they agree.
It only accumulates events (it never talks to the session), keeps no media, and is thread-safe:
a session callback may update it from the worker thread while a view reads it.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from ...models.config import MODALITIES
from ..events import DroppedUtteranceEvent, EmotionEvent, Event, LanguageEvent, StatusEvent


@dataclass
class ModalityStatus:
    state: str = "loading"  # "active" | "loading" | "missing" | "failed" | "disabled" (before any status event: starting)
    reason: str = ""


@dataclass
class Snapshot:
    """A consistent copy of the state, for rendering without holding the lock."""

    current: EmotionEvent | None
    history: list[EmotionEvent]
    dropped: list[DroppedUtteranceEvent]
    status: dict[str, ModalityStatus]
    labels: list[str]
    label_counts: dict[str, int] = field(default_factory=dict)
    mean_expert_loads: dict[str, dict[str, float]] = field(default_factory=dict)
    mean_latency_ms: float | None = None
    language: LanguageEvent | None = None  # what `--language auto` found


def unsure(event: EmotionEvent | None) -> bool:
    """The transcript was shown but its words were set aside (confidence below the threshold)."""
    return bool(getattr(event, "text_set_aside", None)) and bool(getattr(event, "transcript", None))


def transcript_label(event: EmotionEvent) -> str:
    """The transcript as the views show it: marked "unsure" (with its confidence) when set aside."""
    if not event.transcript:
        return ""
    if unsure(event):
        confidence = event.transcript_confidence
        return f"(unsure{f' {confidence:.2f}' if confidence is not None else ''}) {event.transcript}"
    return event.transcript


def modality_readings(event: EmotionEvent | None) -> dict[str, tuple[str, float]]:
    """Each present modality's own reading beside the fused one: modality -> (top label, its
    probability), from the event's `modality_probabilities` (empty for events without them)."""
    per_modality = getattr(event, "modality_probabilities", None) or {}
    readings = {}
    for modality in MODALITIES:
        probabilities = per_modality.get(modality)
        if probabilities:
            label = max(probabilities, key=probabilities.get)
            readings[modality] = (label, float(probabilities[label]))
    return readings


class LiveState:
    def __init__(self, status: dict[str, str] | None = None, max_history: int = 500) -> None:
        self._lock = threading.Lock()
        self._max_history = max_history
        self._history: list[EmotionEvent] = []
        self._dropped: list[DroppedUtteranceEvent] = []
        self._status = {m: ModalityStatus() for m in MODALITIES}
        self._labels: list[str] = []
        self._counts: Counter[str] = Counter()
        self._emotions = 0
        self._latency_sum = 0.0
        self._latency_n = 0
        self._processing_sum = 0.0
        self._processing_n = 0
        # Running sums of the router weights: modality -> expert -> (sum, count).
        self._load_sums: dict[str, dict[str, list[float]]] = {}
        self._language: LanguageEvent | None = None
        if status:
            for modality, state in status.items():
                if modality in self._status:
                    self._status[modality] = ModalityStatus(state)

    def update(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, EmotionEvent):
                self._add_emotion(event)
            elif isinstance(event, StatusEvent):
                if event.modality in self._status:
                    self._status[event.modality] = ModalityStatus(event.state, event.reason)
            elif isinstance(event, DroppedUtteranceEvent):
                self._dropped.append(event)
                del self._dropped[: -self._max_history]
            elif isinstance(event, LanguageEvent):
                self._language = event

    def _add_emotion(self, event: EmotionEvent) -> None:
        self._history.append(event)
        del self._history[: -self._max_history]
        for label in event.probabilities:
            if label not in self._labels:
                self._labels.append(label)
        self._counts[event.label] += 1
        self._emotions += 1
        total = event.latency_ms.get("total") if event.latency_ms else None
        if total is not None:
            self._latency_sum += float(total)
            self._latency_n += 1
        processing = event.latency_ms.get("processing") if event.latency_ms else None
        if processing is not None:  # the pipeline's own work, without waiting in queues
            self._processing_sum += float(processing)
            self._processing_n += 1
        for modality, loads in (event.expert_loads or {}).items():
            sums = self._load_sums.setdefault(modality, {})
            for expert, weight in loads.items():
                acc = sums.setdefault(expert, [0.0, 0])
                acc[0] += float(weight)
                acc[1] += 1

    @property
    def emotion_count(self) -> int:
        with self._lock:
            return self._emotions

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                current=self._history[-1] if self._history else None,
                history=list(self._history),
                dropped=list(self._dropped),
                status={m: ModalityStatus(s.state, s.reason) for m, s in self._status.items()},
                labels=list(self._labels),
                label_counts=dict(self._counts),
                mean_expert_loads={
                    m: {e: s / n for e, (s, n) in experts.items() if n}
                    for m, experts in self._load_sums.items()
                },
                mean_latency_ms=self._latency_sum / self._latency_n if self._latency_n else None,
                language=self._language,
            )

    def summary(self, wall_s: float | None = None) -> dict:
        """Plain numbers for the exit summary (and the CLI's --json summary on stderr)."""
        snap = self.snapshot()
        used = Counter(m for e in snap.history for m in e.modalities)
        out = {
            "utterances": self.emotion_count,
            "dropped": len(snap.dropped),
            "labels": snap.label_counts,
            "modalities_used": {m: used.get(m, 0) for m in MODALITIES},
            "mean_latency_ms": None if snap.mean_latency_ms is None else round(snap.mean_latency_ms, 1),
            "mean_processing_ms": (round(self._processing_sum / self._processing_n, 1)
                                   if self._processing_n else None),
            "mean_expert_loads": {
                m: {e: round(w, 3) for e, w in loads.items()} for m, loads in snap.mean_expert_loads.items()
            },
        }
        if wall_s is not None:
            out["wall_s"] = round(wall_s, 2)
        return out


def format_summary(summary: dict) -> str:
    """The summary as a few human-readable lines."""
    labels = ", ".join(f"{label} {n}" for label, n in sorted(summary["labels"].items(), key=lambda kv: -kv[1]))
    used = ", ".join(f"{m} {n}" for m, n in summary["modalities_used"].items())
    lines = [f"momke-live: {summary['utterances']} utterance(s) scored, {summary['dropped']} dropped"
             + (f" in {summary['wall_s']:.1f} s" if "wall_s" in summary else "")]
    if labels:
        lines.append(f"  emotions: {labels}")
    lines.append(f"  modalities used: {used}")
    if summary["mean_latency_ms"] is not None:
        processing = summary.get("mean_processing_ms")
        lines.append(f"  mean latency (utterance end -> event): {summary['mean_latency_ms']:.0f} ms"
                     + (f", of which processing {processing:.0f} ms" if processing is not None else "")
                     + (" (a fast replay queues utterances: latency includes the wait)" if summary.get("fast_replay") else ""))
    for modality, loads in summary["mean_expert_loads"].items():
        shares = ", ".join(f"{e} {w:.2f}" for e, w in loads.items())
        lines.append(f"  mean expert loads for {modality}: {shares}")
    return "\n".join(lines)
