"""The two pipeline stages after capture, each on its own thread.

`SegmentationLoop`: audio chunks -> UtteranceSegmenter -> a `PendingUtterance` with the frames
inside it and the text said during it (or, with no audio, one utterance per pushed text item;
with neither speech nor text, camera-only windows), into the bounded utterance queue. It is
fast, so the audio queue stays short.

`UtteranceProcessor`: per pending utterance, the transcript (pushed or replayed text, else ASR),
the extractors (off the capture threads), the modality mask (privacy switches, what was
captured, and the extractors' verdicts), then one MoMKE step over the conversation context and
an EmotionEvent with its latency breakdown, or a DroppedUtteranceEvent saying why not.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..extractors.base import FeatureProfile, Utterance
from ..extractors.media import SAMPLE_RATE
from ..extractors.served import pick_frames
from ..models.config import MODALITIES
from .buffers import TEXT_TOLERANCE_S, ChunkQueue, FrameBuffer, TextBuffer
from .context import ConversationContext, EmptyUtteranceError, NonFiniteOutputError
from .events import DroppedUtteranceEvent, EmotionEvent, LanguageEvent
from .health import FAILURE_LIMIT, HealthMonitor
from .sources import END_OF_STREAM
from .transcript_gate import check_confidence_threshold, gate_reason

log = logging.getLogger(__name__)

END_OF_UTTERANCES = object()


def _extractor_failed(m: str, reason: str) -> bool:
    """Whether _extract's reason is a failure of the extractor (not "nothing found", "no face")."""
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


class _QueueWorker(threading.Thread):
    """A thread that handles the items of one queue until `stop` or the end of the stream.

    It first waits for `gate` (the session being ready). Each item is handled in its own call,
    so the loop keeps nothing of it referenced while it waits for the next (privacy)."""

    def __init__(self, name: str, queue: ChunkQueue, stop: threading.Event, gate: threading.Event | None) -> None:
        super().__init__(name=name, daemon=True)
        self.queue = queue
        self.stop_event = stop
        self.gate = gate

    def run(self) -> None:
        try:
            if self.begin():
                while not self.stop_event.is_set() and self.handle(self.queue.get(timeout=0.1)):
                    pass
        finally:
            self.finish()

    def wait_for_gate(self) -> bool:
        while self.gate is not None and not self.gate.wait(0.05):
            if self.stop_event.is_set():
                return False
        return not self.stop_event.is_set()

    def begin(self) -> bool:
        return self.wait_for_gate()

    def handle(self, item) -> bool:
        """Handle one item (None: nothing came for 0.1 s); False ends the thread."""
        raise NotImplementedError

    def finish(self) -> None: ...


class SegmentationLoop(_QueueWorker):
    """Cuts utterances: by speech while the microphone works; else one per text item; else, in
    camera-only mode (neither speech nor text to cut by), fixed windows of `window_s` seconds.
    Text no speech utterance takes (pushed between utterances) becomes an utterance of its own."""

    def __init__(
        self,
        segmenter,
        audio_queue: ChunkQueue,
        frames: FrameBuffer,
        texts: TextBuffer,
        utterances: ChunkQueue,
        health: HealthMonitor,
        clock_now: Callable[[], float],
        emit: Callable[[object], None],
        stop: threading.Event,
        live: bool,
        has_audio_source: bool,
        text_window_s: float = 3.0,
        max_frames: int = 3,
        *,
        has_video_source: bool = False,
        has_text_source: bool = False,
        window_s: float = 2.0,
        gate: threading.Event | None = None,
        frames_until: Callable[[float], bool] | None = None,
    ) -> None:
        super().__init__("momke-segmentation", audio_queue, stop, gate)
        self.frames_until = frames_until  # a fast replay: wait until the frames up to t are in
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.segmenter = segmenter
        self.audio_queue = audio_queue
        self.frames = frames
        self.texts = texts
        self.utterances = utterances
        self.health = health
        self.clock_now = clock_now
        self.emit = emit
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

    def begin(self) -> bool:
        if not self.wait_for_gate():
            return False
        import torch

        # The VAD's ops are tiny: on one core a 32 ms window costs about 1 ms, while an OpenMP
        # pool costs tens of ms on a busy CPU. Set once for this thread (the setting is per
        # thread, so the extractors and the model keep theirs).
        torch.set_num_threads(1)
        return True

    def handle(self, item) -> bool:
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
            self.utterances.put(END_OF_UTTERANCES, block=True, stop=self.stop_event)
            return False
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
        return True

    def forget(self, modality: str) -> None:
        """Privacy: the utterance being heard is forgotten (the segmenter holds its audio)."""
        if modality == "audio":
            with self.lock:
                self.segmenter.reset()

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
        if not self.live:  # a fast replay waits for the processor: nothing is lost
            self.utterances.put(pending, block=True, stop=self.stop_event)
            evicted = None
        else:
            evicted = self.utterances.put_evicting(pending)
        for m in MODALITIES:  # a switch flipped while this was cut: keep nothing of it
            if not self.health.enabled(m):
                pending.forget(m)
        if evicted is not None:  # live and the processor is far behind: the oldest gives way
            self.emit(DroppedUtteranceEvent(
                evicted.id, evicted.start, evicted.end,
                f"pipeline overloaded: more than {self.utterances.maxsize} utterances waiting for extraction",
                segmentation=evicted.segmentation,
            ))


class UtteranceProcessor(_QueueWorker):
    def __init__(
        self,
        utterances: ChunkQueue,
        profile: FeatureProfile,
        context: ConversationContext,
        health: HealthMonitor,
        asr_worker,
        emit: Callable[..., object],
        stop: threading.Event,
        on_finished: Callable[[], None],
        *,
        min_transcript_confidence: float = 0.0,
    ) -> None:
        """emit(event, wait=True) is called once per utterance (the session decides whether to
        wait for delivery). The enabled modalities' extractors load in parallel from the thread's
        start (`start_warm_up`), while capture runs; an utterance waits for the ones it needs.
        min_transcript_confidence: an ASR transcript below it is shown but not used for emotion."""
        super().__init__("momke-pipeline", utterances, stop, None)
        self.utterances = utterances
        self.profile = profile
        self.context = context
        self.health = health
        self.asr_worker = asr_worker
        self.emit = emit
        self.on_finished = on_finished
        # Held while one utterance is processed (privacy waits on it); reentrant, since a status
        # callback on this thread may flip a privacy switch.
        self.lock = threading.RLock()
        self.processed = 0
        self.warmed: set[str] = set()
        self.failures_in_a_row = dict.fromkeys(MODALITIES, 0)  # extractions that raised or gave NaN
        self.warm_up_ms: dict[str, float] = {}  # how long each extractor took to load
        self._warming: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self.min_transcript_confidence = check_confidence_threshold(min_transcript_confidence)
        self.notes: list = []  # events found while processing (the language), emitted before its result

    def begin(self) -> bool:
        self.pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="momke-extract")
        self.start_warm_up([m for m in MODALITIES if self.health.enabled(m)])
        return not self.stop_event.is_set()

    def handle(self, item) -> bool:
        if item is None:  # idle: load the extractor of a modality switched on since
            self.start_warm_up([m for m in MODALITIES if self.health.enabled(m)])
            return True
        if item is END_OF_UTTERANCES:
            return False
        with self.lock:
            try:
                event = self.process(item)
                event.to_json()  # an event that cannot be written is dropped here, not in emit
            except Exception as error:
                event = DroppedUtteranceEvent(item.id, item.start, item.end, f"pipeline error: {type(error).__name__}: {error}",
                                              segmentation=item.segmentation)
            self.processed += 1
            for m in MODALITIES:  # processed: its data is needed no more (privacy)
                item.forget(m)
            notes, self.notes = self.notes, []
        for note in notes:
            self.emit(note)
        self.emit(event, wait=True)
        return True

    def finish(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:  # on stop, an extraction still running is not waited for
            pool.shutdown(wait=not self.stop_event.is_set(), cancel_futures=True)
        for thread in self.warm_up_threads():  # a replay ended before a load did: let it end first
            while thread.is_alive() and not self.stop_event.is_set():
                thread.join(0.1)
        self.on_finished()

    def forget(self, modality: str) -> None:
        """Privacy: waits for the utterance being processed (it drops what was switched off
        while it worked), then the conversation context forgets the modality."""
        with self.lock:
            self.context.forget(modality)

    def start_warm_up(self, modalities) -> None:
        """Load these extractors' networks now (they load lazily), each on a thread of its own and
        in parallel with capture, not on the first utterance; the modality's status says
        "loading" until then. An utterance waits only for the extractors it needs."""
        for m in modalities:
            if m in self._warming or self.stop_event.is_set():
                continue
            self.health.set_loading(m, True)
            done = threading.Event()
            thread = threading.Thread(target=self._warm_up, args=(m, done), name=f"momke-warmup-{m}", daemon=True)
            self._warming[m] = (thread, done)
            thread.start()

    def _warm_up(self, m: str, done: threading.Event) -> None:
        began = time.perf_counter()
        try:
            self.profile.extractor(m).extract(warm_up_utterance())
        except Exception as error:
            log.debug("warming up the %s extractor failed: %s", m, error)
        finally:
            self.warm_up_ms[m] = round((time.perf_counter() - began) * 1000, 1)
            self.warmed.add(m)
            self.health.set_loading(m, False)
            done.set()

    def wait_warm(self, m: str) -> bool:
        """Block until m's extractor is loaded (True), or the session stops (False)."""
        entry = self._warming.get(m)
        if entry is None:
            return True
        while not entry[1].wait(0.05):
            if self.stop_event.is_set():
                return False
        return True

    def warm_up_threads(self) -> list[threading.Thread]:
        return [thread for thread, _ in self._warming.values()]

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

    def _extract(self, m: str, utterance: Utterance) -> tuple[np.ndarray | None, str | None, float]:
        """(features or None, why missing, milliseconds); a failing extractor only makes m missing.

        Runs on the pool: it reports nothing itself (a status callback from here could wait on
        the processor's lock, held by the thread waiting for this result)."""
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

    def _count_failure(self, m: str, failed: bool, reason: str | None) -> None:
        """FAILURE_LIMIT extractions of m failing in a row: m has failed (a health state, with
        the reason); the next one that works clears it."""
        if not failed:
            if self.failures_in_a_row[m] >= FAILURE_LIMIT:
                self.health.report_failed(m, None)
            self.failures_in_a_row[m] = 0
            return
        self.failures_in_a_row[m] += 1
        if self.failures_in_a_row[m] == FAILURE_LIMIT:
            self.health.report_failed(m, f"failed on {FAILURE_LIMIT} utterances in a row: {reason}")

    def process(self, utterance: PendingUtterance):
        began = time.perf_counter()
        latency = {"queue": (began - utterance.closed_at) * 1000}
        enabled = {m: self.health.enabled(m) for m in MODALITIES}
        for m in MODALITIES:
            if not enabled[m]:
                utterance.forget(m)
        reasons: dict[str, str] = {}
        self.start_warm_up([m for m in MODALITIES if enabled[m]])  # (already loading or loaded: nothing)
        # Audio and visual features are computed on the pool while ASR runs here; text follows
        # its transcript. Torch releases the GIL, so the extractors overlap on a multi-core CPU.
        jobs = {m: self.pool.submit(self._extract, m, utterance)
                for m in ("audio", "visual") if self._has_input(m, utterance, enabled, reasons)}
        confidence = set_aside = None
        if enabled["text"] and not utterance.transcript and self.asr_worker is not None and utterance.audio is not None:
            t0 = time.perf_counter()
            heard = self.asr_worker.transcribe_scored(utterance.audio)
            latency["asr"] = (time.perf_counter() - t0) * 1000
            if heard is None:
                reasons["text"] = "ASR failed or timed out"
                self.health.report_missing("text", "ASR failed or timed out", by="content")
            else:
                self.health.report_data("text", by="content")
                if heard.detected is not None:
                    self.notes.append(LanguageEvent(heard.detected[0], round(heard.detected[1], 3), utterance.end))
                if heard.note and not heard.text.strip():
                    reasons["text"] = heard.note
            utterance.transcript = (heard.text if heard else "").strip() or None
            if utterance.transcript and heard.confidence is not None:
                confidence = round(float(heard.confidence), 3)
                set_aside = gate_reason(confidence, self.min_transcript_confidence)
        transcript = utterance.transcript
        if set_aside:  # shown, but not used for emotion
            reasons["text"] = set_aside
        elif self._has_input("text", utterance, enabled, reasons):
            jobs["text"] = self.pool.submit(self._extract, "text", utterance)
        features: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
        for m, job in jobs.items():
            features[m], reason, latency[f"extract_{m}"] = job.result()
            if reason:
                reasons[m] = reason
        for m in jobs:
            self._count_failure(m, features[m] is None and _extractor_failed(m, reasons.get(m, "")), reasons.get(m))
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
        used = [m for m in MODALITIES if features[m] is not None]
        if not used:
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
            transcript=transcript if enabled.get("text") else None,
            expert_loads=prediction.expert_loads,
            latency_ms={k: round(v, 2) for k, v in latency.items()},
            modality_probabilities=prediction.modality_probabilities,
            segmentation=utterance.segmentation,
            transcript_confidence=confidence if enabled.get("text") else None,
            text_set_aside=set_aside if enabled.get("text") else None,
        )
