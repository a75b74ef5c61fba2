"""The processing stages after capture, as plain objects: none owns a thread or a queue.

`Segmentation.segment(chunk)`: audio chunks -> UtteranceSegmenter -> the `PendingUtterance`s a
chunk closes, with the frames inside each and the text said during it (or, with no audio, one
utterance per pushed text item; with neither speech nor text, camera-only windows).

Per pending utterance, `UtteranceProcessor.process(utterance)` runs the other stages in order:
`Transcription.transcribe` (ASR when no text was pushed or replayed), `Extraction.extract` (one
modality's features; audio and visual run on the runner's pool while ASR runs), the modality mask
(privacy switches, what was captured, the extractors' verdicts) and `Prediction.predict` (one
MoMKE step over the conversation context -> an EmotionEvent with its latency breakdown, or a
DroppedUtteranceEvent saying why not).

realtime/runner.py drives these objects: on threads with queues between them (a live session, a
real-time replay), or one after another on one thread (a replay as fast as possible).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..extractors.base import FeatureProfile, Utterance
from ..extractors.media import SAMPLE_RATE
from ..extractors.served import pick_frames
from ..models.config import MODALITIES
from .buffers import TEXT_TOLERANCE_S, FrameBuffer, TextBuffer
from .context import ConversationContext, EmptyUtteranceError, NonFiniteOutputError
from .events import DroppedUtteranceEvent, EmotionEvent, LanguageEvent
from .health import FAILURE_LIMIT, HealthMonitor
from .sources import END_OF_STREAM
from .transcript_gate import check_confidence_threshold, gate_reason

log = logging.getLogger(__name__)


def _extractor_failed(m: str, reason: str) -> bool:
    """Whether Extraction.extract's reason is a failure of the extractor (not "nothing found", "no face")."""
    return reason.startswith((f"{m} extractor failed", f"{m} features were not finite"))


def warm_up_utterance() -> Utterance:
    """What an extractor is given to load its network: a second of faint noise, a grey frame, a word."""
    rng = np.random.default_rng(0)
    return Utterance(
        start=0.0, end=1.0, audio=(0.01 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32),
        sample_rate=SAMPLE_RATE, frames=[np.full((96, 96, 3), 128, np.uint8)], frame_times=[0.5],
        transcript="hello", id="warm-up",
    )


@dataclass
class PendingUtterance(Utterance):
    """An utterance found by segmentation, waiting for extraction: the extractors read it as it
    is (one type on the live path, never copied), plus what the pipeline needs to report it.

    id: its number in the session (events carry it); closed_at: perf_counter() when its end
    became known (the start of its latency)."""

    id: int = 0
    sample_rate: int | None = SAMPLE_RATE  # the segmenter's audio
    closed_at: float = 0.0
    endpoint_ms: float | None = None  # live only: how long after its end the VAD closed it
    segmentation: str = "speech"  # what cut it: "speech", "text" or "window" (camera only)

    def forget(self, modality: str) -> None:
        """Privacy: drop everything of `modality` this utterance holds."""
        if modality == "audio":
            self.audio = None
        elif modality == "visual":
            self.frames, self.frame_times = [], []
        elif modality == "text":
            self.transcript = None


    def keep_enabled(self, health: HealthMonitor) -> None:
        """Privacy: forget every modality switched off now (a switch flipped while it was cut or
        handed on)."""
        for m in MODALITIES:
            if not health.enabled(m):
                self.forget(m)


class Segmentation:
    """Cuts utterances: by speech while the microphone works; else one per text item; else, in
    camera-only mode (neither speech nor text to cut by), fixed windows of `window_s` seconds.
    Text no speech utterance takes (pushed between utterances) becomes an utterance of its own."""

    def __init__(
        self,
        segmenter,
        frames: FrameBuffer,
        texts: TextBuffer,
        health: HealthMonitor,
        clock_now: Callable[[], float],
        live: bool,
        has_audio_source: bool,
        text_window_s: float = 3.0,
        max_frames: int = 3,
        *,
        has_video_source: bool = False,
        has_text_source: bool = False,
        window_s: float = 2.0,
        frames_until: Callable[[float], bool] | None = None,
    ) -> None:
        """live: times come from the clock (a live session or a real-time replay), not from the
        media alone; frames_until(t): a fast replay waits until the frames up to t are in."""
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.frames_until = frames_until
        self.segmenter = segmenter
        self.frames = frames
        self.texts = texts
        self.health = health
        self.clock_now = clock_now
        self.live = live
        self.has_audio_source = has_audio_source
        self.has_video_source = has_video_source
        self.has_text_source = has_text_source  # a replayed transcript: text cuts utterances
        self.text_window_s = text_window_s
        self.max_frames = max_frames
        self.window_s = window_s
        # Frames may trail the audio by the replay's slack: a window is cut this much later.
        self.window_delay_s = 0.6
        self.text_grace_s = 1.0  # text no speech has claimed after this long is its own utterance
        self.text_quiet_s = 10.0  # pushed text keeps cutting utterances for this long
        self.lock = threading.RLock()  # held while the segmenter is used; privacy resets take it
        self._next_id = 0
        self._now = 0.0  # the latest time seen (media time during a replay)
        # The end of the audio the VAD has heard: behind the clock while it catches up on a
        # backlog (a replay playing from launch, a busy CPU), and text waits for it.
        self._heard = 0.0
        self._last_end = 0.0  # end of the last utterance cut
        self._window_from = 0.0  # camera-only windows tile from here
        self._last_text_at: float | None = None
        self._cut: list[PendingUtterance] = []

    def segment(self, item) -> list[PendingUtterance]:
        """The utterances closed by `item`: an AudioChunk, None (no audio came for a while: time
        passes, text and camera windows may close) or END_OF_STREAM (a replay ended: all that is
        left). Each is handed on at once; the segmentation keeps none of them (privacy)."""
        self.health.check_timeouts()
        if self.live:
            self._now = self.clock_now()
        if item is END_OF_STREAM:
            with self.lock:
                segments = self.segmenter.flush()
            for segment in segments:
                self._enqueue_segment(segment)
            self._text_utterances(final=True)
            self._camera_windows(final=True)
        else:
            if item is not None:
                self._heard = max(self._heard, item.start + len(item.samples) / SAMPLE_RATE)
                self._now = max(self._now, self._heard)
                segments = []
                with self.lock:  # the privacy switch resets the segmenter under this lock
                    if len(item.samples) and self.health.enabled("audio"):
                        segments = self.segmenter.push(item.samples, item.start)
                for segment in segments:
                    self._enqueue_segment(segment)
            self._text_utterances(final=False)
            self._camera_windows(final=False)
        cut, self._cut = self._cut, []
        return cut

    def forget(self, modality: str) -> None:
        """Privacy: the utterance being heard is forgotten (the segmenter holds its audio), and
        what the chunk in hand has cut."""
        if modality == "audio":
            with self.lock:
                self.segmenter.reset()
        for pending in list(self._cut):  # cut by the chunk in hand, not yet handed on
            pending.forget(modality)

    def _audio_drives_segmentation(self) -> bool:
        # A microphone that is off, broken or muted finds no utterances: text takes over. (One
        # whose extractor is still loading is heard: its utterances wait for the extractor.)
        return self.has_audio_source and self.health.state("audio") in ("active", "loading")

    def _text_drives_segmentation(self) -> bool:
        if not self.health.enabled("text"):
            return False
        recent = self._last_text_at is not None and self._now - self._last_text_at < self.text_quiet_s
        return self.has_text_source or recent

    def _enqueue_segment(self, segment) -> None:
        self._orphan_texts(before=segment.start - TEXT_TOLERANCE_S)  # earlier text goes first
        endpoint_ms = (self.clock_now() - segment.end) * 1000 if self.live else None
        self._enqueue(segment.start, segment.end, segment.audio, None, endpoint_ms, "speech")

    def _text_utterances(self, final: bool) -> None:
        """With no audio to segment, every text item (pushed or replayed) is an utterance; with
        audio, so is text that no speech utterance will take."""
        if not self._audio_drives_segmentation():
            for item in self.texts.take_ready(self._now, final):
                self._enqueue_text(item)
            return
        if final:
            self._orphan_texts(before=math.inf)
            return
        with self.lock:
            open_since = getattr(self.segmenter, "open_since", None)
        # Speech in progress takes text from its start on; with none, text waits a grace period
        # of heard audio (the VAD notices speech a little after it starts).
        self._orphan_texts(open_since - TEXT_TOLERANCE_S if open_since is not None else self._heard - self.text_grace_s)

    def _orphan_texts(self, before: float) -> None:
        for item in self.texts.take_before(before):
            self._enqueue_text(item)

    def _enqueue_text(self, item) -> None:
        start = item.start if item.end > item.start else max(self._last_end, item.end - self.text_window_s)
        self._last_text_at = self._now
        self._enqueue(min(start, item.end), item.end, None, item.text, None, "text")

    def _camera_windows(self, final: bool) -> None:
        """Camera-only mode: the face is judged over fixed windows that tile the timeline."""
        camera_only = (self.has_video_source and self.health.enabled("visual")
                       and not self._audio_drives_segmentation() and not self._text_drives_segmentation())
        if not camera_only:
            self._window_from = max(self._window_from, self._now)
            return
        while self._now - self._window_from >= self.window_s + self.window_delay_s or \
                (final and self._now - self._window_from >= self.window_s / 2):
            start = self._window_from
            end = min(start + self.window_s, self._now)
            self._window_from = end
            if self.frames.between(start, end):  # a camera with nothing to show is judged by no one
                self._enqueue(start, end, None, None, None, "window")

    def _enqueue(self, start: float, end: float, audio, transcript, endpoint_ms, segmentation: str) -> None:
        pending = PendingUtterance(id=self._next_id, start=round(start, 3), end=round(end, 3), closed_at=time.perf_counter(),
                                   endpoint_ms=endpoint_ms, segmentation=segmentation)
        self._next_id += 1
        self._last_end = max(self._last_end, end)
        if segmentation != "window":
            self._window_from = max(self._window_from, end)
        if self.health.enabled("audio"):
            pending.audio = audio
        if self.health.enabled("visual") and (self.frames_until is None or self.frames_until(end)):
            for t, frame in pick_frames(self.frames.between(start, end), self.max_frames):
                pending.frame_times.append(t)
                pending.frames.append(frame)
        if self.health.enabled("text"):
            pending.transcript = transcript or self.texts.take(start, end)
        self._cut.append(pending)


class Extraction:
    """One modality's features for one utterance (`extract`), by the profile's extractors.

    An extractor loads lazily; `warm_up(m)` loads it (the runner calls it on a thread of its own,
    in parallel with capture; the modality's status says "loading" until then) and an utterance
    waits only for the extractors it needs. FAILURE_LIMIT failures in a row mark a modality
    "failed" (`count`); the next extraction that works clears it."""

    def __init__(self, profile: FeatureProfile, health: HealthMonitor, stop: threading.Event) -> None:
        self.profile = profile
        self.health = health
        self.stop = stop
        self.warmed: set[str] = set()
        self.warm_up_ms: dict[str, float] = {}  # how long each extractor took to load
        self.failures_in_a_row = dict.fromkeys(MODALITIES, 0)  # extractions that raised or gave NaN
        self._loaded: dict[str, threading.Event] = {}  # modality -> set once its warm-up ended
        self._lock = threading.Lock()

    def claim_warm_up(self, m: str) -> bool:
        """True (and m's status says "loading") if m's extractor is neither loaded nor loading:
        the caller then runs warm_up(m)."""
        with self._lock:
            if m in self._loaded or self.stop.is_set():
                return False
            self._loaded[m] = threading.Event()
        self.health.set_loading(m, True)
        return True

    def warm_up(self, m: str) -> None:
        """Load m's network (a claimed warm-up), on a small made-up utterance."""
        began = time.perf_counter()
        try:
            self.profile.extractor(m).extract(warm_up_utterance())
        except Exception as error:
            log.debug("warming up the %s extractor failed: %s", m, error)
        finally:
            self.warm_up_ms[m] = round((time.perf_counter() - began) * 1000, 1)
            self.warmed.add(m)
            self.health.set_loading(m, False)
            self._loaded[m].set()

    def wait_warm(self, m: str) -> bool:
        """Block until m's extractor is loaded (True), or the session stops (False)."""
        loaded = self._loaded.get(m)
        if loaded is None:
            return True
        while not loaded.wait(0.05):
            if self.stop.is_set():
                return False
        return True

    def extract(self, m: str, utterance: Utterance) -> tuple[np.ndarray | None, str | None, float]:
        """(features or None, why missing, milliseconds); a failing extractor only makes m missing.

        May run on the runner's pool: it reports nothing itself (a status callback from there
        could wait on the processor's lock, held by the thread waiting for this result)."""
        t0 = time.perf_counter()
        if not self.wait_warm(m):  # its first utterance waits for the extractor to load
            return None, "the session stopped", (time.perf_counter() - t0) * 1000
        try:
            vector = self.profile.extractor(m).extract(utterance)
        except Exception as error:
            return None, f"{m} extractor failed: {type(error).__name__}: {error}", (time.perf_counter() - t0) * 1000
        ms = (time.perf_counter() - t0) * 1000
        if vector is None:
            return None, ("no face found" if m == "visual" else f"{m} extractor found nothing"), ms
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(vector)):
            return None, f"{m} features were not finite (NaN/inf)", ms
        return vector, None, ms

    def count(self, m: str, vector, reason: str | None) -> None:
        """Count an extraction of m: FAILURE_LIMIT failures in a row make m "failed" (a health
        state, with the reason); the next one that works clears it."""
        if vector is not None or not _extractor_failed(m, reason or ""):
            if self.failures_in_a_row[m] >= FAILURE_LIMIT:
                self.health.report_failed(m, None)
            self.failures_in_a_row[m] = 0
            return
        self.failures_in_a_row[m] += 1
        if self.failures_in_a_row[m] == FAILURE_LIMIT:
            self.health.report_failed(m, f"failed on {FAILURE_LIMIT} utterances in a row: {reason}")


@dataclass
class Heard:
    """What transcription found for an utterance (its transcript is set on the utterance)."""

    confidence: float | None = None  # the ASR's, for the words kept
    set_aside: str | None = None  # why the words are shown but not used for emotion
    missing: str | None = None  # why text is missing
    ms: float | None = None  # how long the ASR took
    note: LanguageEvent | None = None  # the language, when the ASR detected it


class Transcription:
    """The words of an utterance no text came with: the ASR's, behind the ASRWorker's timeout.
    Words less sure than `min_transcript_confidence` are shown but set aside for emotion."""

    def __init__(self, asr_worker, health: HealthMonitor, min_transcript_confidence: float = 0.0) -> None:
        self.asr_worker = asr_worker
        self.health = health
        self.min_transcript_confidence = check_confidence_threshold(min_transcript_confidence)

    def transcribe(self, utterance: PendingUtterance) -> Heard:
        heard = Heard()
        if utterance.transcript or self.asr_worker is None or utterance.audio is None:
            return heard
        t0 = time.perf_counter()
        scored = self.asr_worker.transcribe_scored(utterance.audio)
        heard.ms = (time.perf_counter() - t0) * 1000
        if scored is None:
            heard.missing = "ASR failed or timed out"
            self.health.report_missing("text", "ASR failed or timed out", by="content")
        else:
            self.health.report_data("text", by="content")
            if scored.detected is not None:
                heard.note = LanguageEvent(scored.detected[0], round(scored.detected[1], 3), utterance.end)
            if scored.note and not scored.text.strip():
                heard.missing = scored.note
        utterance.transcript = (scored.text if scored else "").strip() or None
        if utterance.transcript and scored.confidence is not None:
            heard.confidence = round(float(scored.confidence), 3)
            heard.set_aside = gate_reason(heard.confidence, self.min_transcript_confidence)
        return heard


class Prediction:
    """One MoMKE step over the conversation context for an utterance's features -> its event."""

    def __init__(self, context: ConversationContext) -> None:
        self.context = context

    def predict(self, utterance: PendingUtterance, features: dict, reasons: dict, latency: dict, began: float,
                shown: dict):
        """shown: what the event says of the words (transcript, transcript_confidence,
        text_set_aside; None where text is off)."""
        if not any(features[m] is not None for m in MODALITIES):
            why = "; ".join(f"{m}: {reasons.get(m, 'missing')}" for m in MODALITIES)
            return DroppedUtteranceEvent(utterance.id, utterance.start, utterance.end, f"no modality available ({why})",
                                         segmentation=utterance.segmentation)
        t0 = time.perf_counter()
        try:
            prediction = self.context.step(features)
        except (EmptyUtteranceError, NonFiniteOutputError) as error:
            return DroppedUtteranceEvent(utterance.id, utterance.start, utterance.end, f"model: {error}",
                                         segmentation=utterance.segmentation)
        latency["model"] = (time.perf_counter() - t0) * 1000
        latency["processing"] = (time.perf_counter() - began) * 1000
        latency["total"] = (time.perf_counter() - utterance.closed_at) * 1000
        if utterance.endpoint_ms is not None:
            latency["endpoint"] = utterance.endpoint_ms
        return EmotionEvent(
            utterance_id=utterance.id, start=utterance.start, end=utterance.end, label=prediction.label,
            probabilities=prediction.probabilities, modalities=prediction.modalities,
            expert_loads=prediction.expert_loads,
            latency_ms={k: round(v, 2) for k, v in latency.items()},
            modality_probabilities=prediction.modality_probabilities,
            segmentation=utterance.segmentation, **shown,
        )


class UtteranceProcessor:
    """One pending utterance -> its events (`process`), through transcription, extraction and
    prediction. `submit(fn, *args) -> Future`: where audio and visual features are computed while
    ASR runs (the runner's pool); `warm_up(modalities)`: load extractors switched on since."""

    def __init__(self, extraction: Extraction, transcription: Transcription, prediction: Prediction,
                 health: HealthMonitor, submit: Callable, warm_up: Callable[[list[str]], None]) -> None:
        self.extraction = extraction
        self.transcription = transcription
        self.prediction = prediction
        self.context = prediction.context
        self.health = health
        self.submit = submit
        self.warm_up = warm_up
        # Held while one utterance is processed (privacy waits on it); reentrant, since a status
        # callback on this thread may flip a privacy switch.
        self.lock = threading.RLock()
        self.processed = 0

    def process(self, item: PendingUtterance) -> list:
        """The utterance's events: a LanguageEvent when the ASR found the language, then its
        EmotionEvent (or a DroppedUtteranceEvent saying why not). Keeps nothing of it."""
        with self.lock:
            notes = []
            try:
                event = self._process(item, notes)
                event.to_json()  # an event that cannot be written is dropped here, not in delivery
            except Exception as error:
                event = DroppedUtteranceEvent(item.id, item.start, item.end, f"pipeline error: {type(error).__name__}: {error}",
                                              segmentation=item.segmentation)
            self.processed += 1
            for m in MODALITIES:  # processed: its data is needed no more (privacy)
                item.forget(m)
        return [*notes, event]

    def forget(self, modality: str) -> None:
        """Privacy: waits for the utterance being processed (it drops what was switched off
        while it worked), then the conversation context forgets the modality."""
        with self.lock:
            self.context.forget(modality)

    def _has_input(self, m: str, utterance: Utterance, enabled: dict, reasons: dict) -> bool:
        """Whether modality m was captured for this utterance (else record why not)."""
        if not enabled[m]:
            reasons[m] = "disabled"
        elif m == "audio" and utterance.audio is None:
            reasons.setdefault(m, "no audio captured")
        elif m == "visual" and not utterance.frames:
            state = self.health.reason("visual")
            reasons[m] = f"no frames ({state})" if state else "no frames"
        elif m == "text" and not utterance.transcript:
            reasons.setdefault(m, "no transcript")
        else:
            return True
        return False

    def _process(self, utterance: PendingUtterance, notes: list):
        began = time.perf_counter()
        latency = {"queue": (began - utterance.closed_at) * 1000}
        enabled = {m: self.health.enabled(m) for m in MODALITIES}
        for m in MODALITIES:
            if not enabled[m]:
                utterance.forget(m)
        reasons: dict[str, str] = {}
        self.warm_up([m for m in MODALITIES if enabled[m]])  # (already loading or loaded: nothing)
        # Audio and visual features are computed on the pool while ASR runs here; text follows
        # its transcript. Torch releases the GIL, so the extractors overlap on a multi-core CPU.
        jobs = {m: self.submit(self.extraction.extract, m, utterance)
                for m in ("audio", "visual") if self._has_input(m, utterance, enabled, reasons)}
        heard = self.transcription.transcribe(utterance) if enabled["text"] else Heard()
        if heard.ms is not None:
            latency["asr"] = heard.ms
        if heard.missing:
            reasons["text"] = heard.missing
        if heard.note is not None:
            notes.append(heard.note)
        transcript = utterance.transcript
        if heard.set_aside:  # shown, but not used for emotion
            reasons["text"] = heard.set_aside
        elif self._has_input("text", utterance, enabled, reasons):
            jobs["text"] = self.submit(self.extraction.extract, "text", utterance)
        features: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
        for m, job in jobs.items():
            features[m], reason, latency[f"extract_{m}"] = job.result()
            if reason:
                reasons[m] = reason
        for m in jobs:
            self.extraction.count(m, features[m], reasons.get(m))
        if "visual" in jobs:  # the face verdict is a health state of its own
            if features["visual"] is not None:
                self.health.report_data("visual", by="content")
            elif reasons.get("visual") == "no face found":
                self.health.report_missing("visual", "no face in view", by="content")
        for m in MODALITIES:  # switched off while we worked: keep nothing of it
            if not self.health.enabled(m):
                features[m] = None
                reasons[m] = "disabled"
        if features["text"] is None and not self.health.enabled("text"):
            transcript = None
        text_on = enabled["text"]
        shown = {"transcript": transcript if text_on else None,
                 "transcript_confidence": heard.confidence if text_on else None,
                 "text_set_aside": heard.set_aside if text_on else None}
        return self.prediction.predict(utterance, features, reasons, latency, began, shown)
