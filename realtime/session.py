"""`LiveSession`: the live engine for host programs (its use is shown in the README).

It wires one path, whatever the input: device readers (a microphone, a camera, or a file played
back as both) -> capture threads (session clock, health checks, bounded stores) -> the stages
(pipeline.py: segmentation, transcription, extraction, modality mask, MoMKE over the conversation
context; dispatch.py: delivery to callbacks, to `events()` and to an optional JSON-lines log), driven
by the runner (runner.py): on threads with queues between them for a live session or a real-time
replay, one after another on one thread for a replay as fast as possible. Events are delivered on
one thread, "momke-events", either way.

Lifecycle: start() begins capture at once, with a ReadyEvent (`wait_ready()`; the session clock
starts there), while the enabled modalities' extractors load in parallel threads (each one's
status says "loading" until it is warm; the first utterance waits for its extractors, not the
capture). stop() returns within its timeout at any moment, warm-up included.

Privacy is one protocol: every stage holding data of a modality implements `forget(modality)`
and `_forget` calls them all; a device switched off is closed, and never opened while off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..extractors.base import FeatureProfile
from ..extractors.runtime import pick_device
from ..models.cli_common import version
from ..models.config import MODALITIES
from ..models.ensemble import MoMKEEnsemble
from ..models.momke import MoMKE
from .buffers import ChunkQueue, FrameBuffer, TextBuffer, TextItem
from .clock import SessionClock
from .context import ConversationContext
from .dispatch import END, Delivery, Outbox, iso
from .events import Event, ReadyEvent
from .health import HealthMonitor
from .options import DEMO_DIR, LiveOptions
from .outlets import Outlets, SessionInfo
from .pipeline import Extraction, Prediction, Segmentation, Transcription
from .runner import Runner
from .sources import (
    PUSH,
    AudioCapture,
    CameraDevice,
    FileAudioDevice,
    FileVideoDevice,
    MicrophoneDevice,
    ReplayPacer,
    VideoCapture,
    check_device_opens,
    has_video_track,
    load_transcript,
)
from .sources.browser import PushedCamera, PushedMicrophone, check_audio, check_frame

log = logging.getLogger(__name__)

__all__ = ["DEMO_DIR", "LiveOptions", "LiveSession"]


class LiveSession:
    def __init__(self, *, options: LiveOptions | None = None, **settings) -> None:
        """The session's settings: `options` (a LiveOptions), or keyword arguments that build one
        (both: `settings` change `options`). What each one means:

        microphone: None, "default", a sounddevice index/name, or "push" (the host pushes samples:
        push_audio); camera: None, an OpenCV index or URL, or "push" (push_frame); a named device
        on this machine is opened once here (check_devices=False: not; capture retries it with
        back-off) and one that does not open raises DeviceUnavailable at once; input_file: a video (with audio) or
        audio file replayed through the same path, with an optional transcript (JSON [{"start", "end", "text"}]) at real-time speed or as
        fast as possible (realtime=False); asr: "whisper" (default: Whisper base on CUDA, tiny.en on a CPU) | "whisper-base" | "whisper-tiny" |
        "pocketsphinx" | "none" | "whisper:/local/ctranslate2/folder";
        checkpoint: None for the shipped default; device: None = CUDA if present, else CPU;
        disabled: modalities off from the start; log_path: JSON-lines log of events;
        max_context: utterances of conversation context kept; None = the checkpoint's own limit
        (what it was trained for), which a larger value is also cut to.

        Beyond that: `profile` (a loaded
        FeatureProfile or a profile name; default: the checkpoint's own), `asr_language` (Whisper's
        language, "en" by default; "auto" or None = detected once per session, see realtime/asr.py),
        `min_transcript_confidence` (an ASR transcript less sure than this is shown but not used
        for emotion; 0-1, see realtime/transcript_gate.py), `asr_timeout_s` +
        `asr_timeout_factor` x the utterance's duration (the ASR's time limit), `checkpoint` may also be a MoMKE (or MoMKEEnsemble) instance, `microphone`
        / `camera` may be device objects (open/read/close), `asr` may be an ASRBackend,
        `segmenter` an UtteranceSegmenter with non-default settings, `camera_fps` the frames a
        second kept from the camera and `max_frames` the frames per utterance given to the visual
        extractor (spread evenly; face detection is the costliest step on a CPU; both are
        `serving`'s), `window_s` the
        length of the windows the face is judged over when neither speech nor text cuts
        utterances (camera-only mode), `accept_modified_checkpoint` loads a checkpoint whose
        weights file no longer matches the sha256 recorded at save (refused otherwise), `emit`
        the outlets every event is also sent to: "lsl", "osc://HOST:PORT", "ws://HOST:PORT" or
        objects of one's own (see outlets/; opened by start(), closed by stop());
        `check_devices` as above; `clock_origin` the time.monotonic() value the session's timeline
        counts from (default: when capture begins; a real-time replay plays from there)."""
        self._created = time.perf_counter()  # the ReadyEvent says how long it took from here
        self.options = options = LiveOptions.of(options, **settings)  # checks the settings
        microphone, camera, input_file, disabled = options.microphone, options.camera, options.input_file, options.disabled
        self._outlets = Outlets(options.emit)  # a bad spec or a missing package: refused before the model loads
        self.device = str(pick_device(options.device))
        if options.check_devices and input_file is None:  # before the model loads: a missing device fails fast
            for modality, spec in (("audio", microphone), ("visual", camera)):
                if _local_device(spec) and modality not in disabled:
                    check_device_opens(modality, spec)
        self.realtime = bool(options.realtime)
        self.input_file = Path(input_file) if input_file is not None else None
        self._transcript = load_transcript(options.transcript) if options.transcript is not None else []
        self.log_path = Path(options.log_path) if options.log_path is not None else None

        self.model = _load_model(options.checkpoint, self.device, options.accept_modified_checkpoint)
        self.profile = _load_profile(options.profile or self.model.config.feature_profile, self.device)
        from ..models.checkpoint import check_features

        check_features(self.model.config, self.profile.name, self.profile.dims)
        _check_weights(self.profile, disabled)
        self.context = ConversationContext(self.model, max_context=options.max_context)
        self._asr_backend = _make_asr(options.asr, options.asr_language, self.device, text_off="text" in disabled)

        self.clock = SessionClock()
        # time.monotonic() the timeline counts from; None: the moment capture begins. momke-live
        # passes its launch for a real-time replay: the file plays from launch while the models
        # load (as a microphone records meanwhile), and the pipeline catches up on that backlog.
        self._clock_origin = options.clock_origin
        self.session_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self._delivery = Delivery(self.session_id)  # the last stage: log, callbacks, events()
        self._callbacks: list[Callable[[Event], None]] = self._delivery.callbacks
        self._events = self._delivery.queue  # for events(): the newest are kept
        self._outbox = Outbox()  # events emitted, waiting for "momke-events"
        self._runner: Runner | None = None
        self._ready = threading.Event()  # capture has begun
        self._ready_delivered = self._delivery.ready  # ... and the ReadyEvent reached the callbacks
        self._finished = self._delivery.finished  # a replay was processed and its events delivered
        self._end_lock = threading.Lock()
        self._end_posted = False
        self._pacer: ReplayPacer | None = None
        self.health = HealthMonitor(self._emit, self.timeline_now, disabled=disabled)

        live = self.input_file is None
        self.live = live
        self.audio_queue = ChunkQueue(maxsize=600 if live else 16)
        self.frames = FrameBuffer(keep_s=16.0, max_frames=int(16 * options.serving.camera_fps) + 8)
        self.texts = TextBuffer()
        self._stop = threading.Event()
        # A replay as fast as possible runs its stages one after another on one thread (False: on
        # the threaded runner, as live; tests compare the two).
        self.synchronous = options.fast
        self._started = False
        self._stopped = False

        self._audio_device = self._video_device = None
        if live:
            pusher = "the host program (push_audio / push_frame)"
            if microphone == PUSH:
                microphone = PushedMicrophone(sender=pusher)
            if camera == PUSH:
                camera = PushedCamera(sender=pusher)
            if microphone is not None:
                self._audio_device = microphone if hasattr(microphone, "read") else MicrophoneDevice(microphone)
                if hasattr(self._audio_device, "bind_clock"):  # pushed audio is stamped sample-exactly
                    self._audio_device.bind_clock(self.clock.now)
            if camera is not None:
                self._video_device = camera if hasattr(camera, "read") else CameraDevice(camera)
        else:
            self._audio_device = FileAudioDevice(self.input_file)
            try:  # fail here, with the reason, rather than as a status event once running
                self._audio_device.open()
            except Exception as error:  # soundfile and FFmpeg raise many kinds
                raise ValueError(f"cannot replay {self.input_file}: {error}") from error
            finally:
                self._audio_device.close()
            if has_video_track(self.input_file):
                self._video_device = FileVideoDevice(self.input_file)
        self._segmenter = options.segmenter
        self._captures: list = []
        self.asr_worker = None

    @classmethod
    def demo(cls, options: LiveOptions | None = None, **settings) -> LiveSession:
        """Replay the bundled demo conversation (assets/demo/) through the live path."""
        return cls(options=LiveOptions.demo(options, **settings))

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> LiveSession:
        if self._started:
            raise RuntimeError("a LiveSession can be started once; make a new one")
        if self._outlets:  # first: a port in use refuses the start before anything runs
            self._outlets.open(SessionInfo(self.model.config.labels or ("score",), self.session_id, self.clock.now))
            self.on_event(self._outlets.send)
        self._started = True
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = self._delivery.log_file = open(self.log_path, "a", encoding="utf-8")
            log_file.write(json.dumps(self._log_header(), ensure_ascii=False) + "\n")
            log_file.flush()
        if self._segmenter is None:
            self._segmenter = self.options.serving.segmenter()  # the settings training corpora are cut with
        if self._asr_backend is not None:
            from .asr import ASRWorker

            if callable(getattr(self._asr_backend, "reset", None)):
                self._asr_backend.reset()  # a backend shared across sessions forgets the last one's language
            self.asr_worker = ASRWorker(self._asr_backend, self.options.asr_timeout_s, self.options.asr_timeout_factor)
        self.clock.restart()

        pacer = None
        if not self.live:
            streams = ("audio", "video") if self._video_device is not None else ("audio",)
            pacer = self._pacer = ReplayPacer(self.clock, self.realtime, streams, self._transcript, self._push_item)
        ready = self._ready  # capture and segmentation begin at the ReadyEvent
        if self._audio_device is not None:
            self._captures.append(AudioCapture(self._audio_device, self.clock, self.health, self._stop, self.audio_queue,
                                               pacer=pacer, gate=ready))
        if self._video_device is not None:
            self._captures.append(VideoCapture(self._video_device, self.clock, self.health, self._stop, self.frames,
                                               pacer=pacer, fps=self.options.serving.camera_fps, gate=ready))
        fast = self.options.fast
        self.segmentation = Segmentation(
            self._segmenter, self.frames, self.texts, self.health, self.clock.now, live=not fast,
            has_audio_source=self._audio_device is not None, max_frames=self.options.serving.max_frames,
            has_video_source=self._video_device is not None, has_text_source=bool(self._transcript),
            window_s=self.options.window_s,
            # A replay's video may trail its audio (by the pacer's slack when fast; while catching
            # up on a backlog in real time): an utterance's frames are taken once the video has
            # passed its end, so none is missing.
            frames_until=(lambda t: pacer.wait_passed("video", t, self._stop))
            if pacer is not None and self._video_device is not None else None,
        )
        self._runner = Runner(
            self.options, self.audio_queue, self.segmentation, Extraction(self.profile, self.health, self._stop),
            Transcription(self.asr_worker, self.health, self.options.min_transcript_confidence), Prediction(self.context),
            self._delivery, self._outbox, self.health, self._stop, ready, on_finished=self._on_processor_finished,
            sync=self.synchronous,
        )
        self.processor, self.utterances = self._runner.processor, self._runner.utterances
        # The enabled modalities' extractors load from now on, in parallel with capture: their
        # status says "loading" (never a red "missing") until they are warm.
        self._runner.warm_up([m for m in MODALITIES if self.health.enabled(m)])
        self._announce_initial_states()
        self._on_ready([m for m in MODALITIES if self.health.enabled(m)], (time.perf_counter() - self._created) * 1000)
        self._runner.start()  # events posted so far (the initial states, ready) go out first
        for capture in self._captures:
            capture.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop capture and processing, join every thread, close the log. Idempotent; returns
        within `timeout` seconds at any moment, warm-up included (a thread still inside one
        extractor's load or one extraction ends when that returns; it is logged)."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        workers_deadline = deadline - min(0.2, timeout / 5)  # the rest: the event thread's last deliveries
        self._stop.set()
        for capture in self._captures:
            capture.interrupt()
        current = threading.current_thread()  # stop() may come from a callback (the event thread)
        runner = self._runner  # None: a start() cut short (Ctrl-C) before it was made
        events_thread = runner.events_thread if runner is not None else None
        workers = [*self._captures, *(t for t in (runner.threads() if runner else []) if t is not events_thread)]
        for thread in workers:
            if thread is not current and thread.is_alive():  # a start() cut short may leave one unstarted
                thread.join(max(0.0, workers_deadline - time.monotonic()))
        if self.asr_worker is not None:
            self.asr_worker.close(timeout=max(0.0, workers_deadline - time.monotonic()))
        self._post_end()
        if runner is not None:
            runner.close()
        if events_thread is not None and events_thread is not current and events_thread.is_alive():
            events_thread.join(max(0.0, deadline - time.monotonic()))
        self._outlets.close(max(0.1, deadline - time.monotonic()))  # after the last delivery
        stuck = [t.name for t in [*workers, events_thread] if t is not None and t.is_alive() and t is not current]
        if stuck:
            log.warning("threads still running after stop: %s", stuck)
        if not self._finished.is_set():  # the event thread is stuck in a callback: end events() anyway
            self._events.put(END)
            self._finished.set()
        with self._delivery.lock:
            if self._delivery.log_file is not None:
                self._delivery.log_file.close()
                self._delivery.log_file = None

    @property
    def outlets(self) -> str:
        """The outlets events are sent to, for messages ("" when none)."""
        return self._outlets.describe()

    def join(self, timeout: float | None = None) -> bool:
        """After stop(): wait for the session's threads still inside a load or an extraction (they
        cannot be interrupted). A process about to exit should: native code (CTranslate2, torch)
        may abort if the interpreter ends under it. False if one still runs after `timeout` s."""
        threads = [*self._captures, *(self._runner.threads() if self._runner is not None else [])]
        deadline = None if timeout is None else time.monotonic() + timeout
        current = threading.current_thread()
        for thread in threads:
            if thread is not current and thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads if t is not current)

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a replay has been fully processed and its events delivered (or the
        session stopped); False on timeout."""
        return self._finished.wait(timeout)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the session is ready (the ReadyEvent); False on timeout or if it was
        stopped (or ended) before."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready_delivered.wait(0.05):
            ended = self._stopped or self._finished.is_set()
            if ended or (deadline is not None and time.monotonic() >= deadline):
                return self._ready_delivered.is_set()
        return True

    @property
    def ready(self) -> bool:
        """True once the ReadyEvent was delivered."""
        return self._ready_delivered.is_set()

    def _on_ready(self, modalities: list[str], warmup_ms: float) -> None:
        self.clock.restart(self._clock_origin)  # time 0: capture begins now, or the given origin
        self._ready.set()
        self._emit(ReadyEvent(time=round(self.clock.now(), 3), warmup_ms=round(warmup_ms, 1), modalities=modalities))

    # ----------------------------------------------------------------------------- events
    def on_event(self, callback: Callable[[Event], None]) -> None:
        """callback(event) runs on the session's event thread ("momke-events"), one event at a
        time in order, never on a capture thread nor the caller's: keep it quick."""
        self._callbacks.append(callback)

    def events(self) -> Iterator[Event]:
        """Events as they come; ends after stop() or when a replay has been fully processed."""
        while True:
            event = self._events.get(timeout=0.25)
            if event is None:
                continue
            if event is END:
                self._events.put(END)  # let any other iterator end too
                return
            yield event

    def _emit(self, event) -> None:
        """Hand an event to "momke-events" (from any thread; never waits)."""
        self._outbox.post(event)

    def _post_end(self) -> None:
        with self._end_lock:
            if self._end_posted:
                return
            self._end_posted = True
        self._outbox.post(END)

    def _on_processor_finished(self) -> None:
        if not self._stop.is_set():
            self._post_end()

    def _log_header(self) -> dict:
        return {
            "type": "session", "session": self.session_id, "wall_time": iso(time.time()),
            "version": version(), "input": str(self.input_file) if self.input_file is not None else "live",
            "disabled": [m for m in MODALITIES if not self.health.enabled(m)], "options": self.options.to_log(),
        }

    # ----------------------------------------------------------------------------- replay
    @property
    def replay_problems(self) -> list[str]:
        """A replay's decode problems, one line each: damaged data skipped, a stream cut short."""
        problems = []
        for capture in self._captures:
            errors = getattr(capture.device, "decode_errors", 0)
            if errors:
                first = getattr(capture.device, "first_decode_error", None)
                problems.append(f"{capture.modality}: {errors} damaged packet(s) skipped" + (f", first: {first}" if first else ""))
            if capture.error:
                problems.append(f"{capture.modality}: {capture.error}")
        return problems

    @property
    def replay_errors(self) -> int:
        """Damaged packets skipped plus streams that ended before the file did (0 when live)."""
        return sum(getattr(c.device, "decode_errors", 0) + (c.error is not None) for c in self._captures if not self.live)

    @property
    def replay_complete(self) -> bool | None:
        """For a replay: True if every stream was decoded to its end with no damaged data (an
        incomplete replay should make a CLI exit non-zero); None for a live session."""
        if self.live:
            return None
        return not self.replay_problems

    @property
    def failures(self) -> dict[str, str]:
        """Modalities whose extractor failed on several utterances in a row (health.FAILURE_LIMIT)
        at some point of this session, and why; a status event "failed" said so at the time."""
        return dict(self.health.failures)

    # ----------------------------------------------------------------------------- controls
    def set_enabled(self, modality: str, enabled: bool) -> None:
        """Privacy switch: a switched-off modality is not captured and nothing of it is kept."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        if self.health.enabled(modality) == bool(enabled):
            return
        self.health.set_enabled(modality, bool(enabled))
        if not enabled:
            self._forget(modality)

    def _forget(self, modality: str) -> None:
        """Privacy, one protocol: every stage that holds data of `modality` drops it. Capture
        (the threads' last data, a microphone's unread blocks), the audio queue (chunks keep
        only their time), segmentation (the utterance being heard), frame and text buffers,
        utterances waiting for extraction, the ASR worker's samples, the utterance being
        processed and the conversation context (the processor, under its lock), and events not
        yet delivered and not yet read from events() (text: their transcript)."""
        runner = self._runner  # the utterances waiting, the processing, the events not yet delivered
        stages = [*self._captures, self.audio_queue, getattr(self, "segmentation", None), self.frames, self.texts,
                  self.asr_worker, runner if runner is not None else self.context, self._outbox, self._delivery]
        for stage in stages:
            if stage is not None:
                stage.forget(modality)

    def push_text(self, text: str, start: float | None = None, end: float | None = None) -> bool:
        """Text from the host's own ASR or typing; stamped now (or with the given session times).

        Pushed text is never lost: it joins the utterance whose span it falls in (up to 0.5 s
        either side, so push it while or right after the words are said), else it becomes an
        utterance of its own (with no working microphone, always); either way an event follows.
        Returns False if text is switched off (privacy: the text is not kept)."""
        if not isinstance(text, str):
            raise TypeError(f"push_text takes a string, got {type(text).__name__}")
        if not text.strip():
            return False
        now = self.timeline_now() if self._ready.is_set() else 0.0  # before ready: the clock's start
        start = now if start is None else float(start)
        return self._push_item(TextItem(text=text, start=start, end=start if end is None else float(end)))

    def push_audio(self, samples, rate) -> bool:
        """Audio from the host (needs LiveSession(microphone="push")): samples [n] or
        [n, channels], float in [-1, 1] or integer PCM, at any rate (resampled to 16 kHz). Push it
        as it is recorded, in blocks of any length (e.g. 20-250 ms): blocks are stamped on the
        session clock, sample-exactly one after another, re-anchored on the clock when they drift
        more than a second from it (a pause). Bad input raises ValueError / TypeError. Returns
        False if dropped: before the session is ready, or while audio is switched off."""
        device = self._pushed_device("audio", "push_audio", "microphone")
        if not self.health.enabled("audio"):  # privacy: dropped at once (the capture thread closes it soon)
            check_audio(samples, rate)  # bad input is refused all the same
            return False
        return device.push(rate, samples)

    def push_frame(self, image) -> bool:
        """A camera frame from the host (needs LiveSession(camera="push")): RGB uint8
        [height, width, 3] (RGBA is cut to RGB), stamped when pushed; the newest frame not yet read
        replaces an older one. Returns False if dropped: before ready, or while visual is off."""
        device = self._pushed_device("visual", "push_frame", "camera")
        if not self.health.enabled("visual"):
            check_frame(image)
            return False
        return device.push(image)

    def _pushed_device(self, modality: str, method: str, parameter: str):
        device = self._audio_device if modality == "audio" else self._video_device
        if isinstance(device, (PushedMicrophone, PushedCamera)):
            return device
        has = ("replays a file" if not self.live else f"has no {parameter}" if device is None
               else f"reads {device!r}")
        raise RuntimeError(f"{method} needs a session made with LiveSession({parameter}=\"push\"); this one {has}")

    def _push_item(self, item: TextItem) -> bool:
        if not self.health.enabled("text"):
            return False
        self.texts.add(item)
        self.health.report_data("text")  # the text source works ...
        self.health.report_data("text", by="content")  # ... and its content is usable
        return True

    def timeline_now(self) -> float:
        """Now on the session's timeline: the clock, or the media time of a fast replay."""
        return self._pacer.now() if self._pacer is not None else self.clock.now()

    def status(self) -> dict[str, str]:
        return self.health.snapshot()

    def _announce_initial_states(self) -> None:
        for modality in MODALITIES:
            if not self.health.enabled(modality):
                self.health.set_enabled(modality, False)
        if self._audio_device is None:
            self.health.report_missing("audio", "no microphone")
        if self._video_device is None:
            self.health.report_missing("visual", "no camera" if self.live else "the file has no video track")
        if self._asr_backend is not None or self._transcript:
            self.health.report_data("text")
        else:
            self.health.report_missing("text", "no ASR: waiting for pushed text")


def _local_device(spec) -> bool:
    """A device on this machine, named by number, name or /dev path, which opens at once or not at
    all (not "push", not a device object, not a camera stream URL, which may take long to open)."""
    if spec is None or spec == PUSH or hasattr(spec, "read"):
        return False
    return not isinstance(spec, str) or "://" not in spec






def _load_profile(profile, device: str) -> FeatureProfile:
    if isinstance(profile, FeatureProfile):
        for modality in MODALITIES:
            profile.extractor(modality).to(device)
        return profile
    from ..extractors.profiles import load_profile

    return load_profile(profile, device=device)


def _load_model(checkpoint, device: str, allow_modified: bool = False) -> MoMKE | MoMKEEnsemble:
    if isinstance(checkpoint, (MoMKE, MoMKEEnsemble)):
        return checkpoint.to(device).eval()
    from ..models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

    directory = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if not directory.is_dir():
        raise ValueError(
            f"checkpoint {directory} does not exist"
            + (" (the default checkpoint is not trained yet: pass checkpoint=...)" if checkpoint is None else "")
        )
    return load_checkpoint(directory, device=device, allow_modified=allow_modified)


def _check_weights(profile: FeatureProfile, disabled) -> None:
    """Before anything starts: each enabled modality's weights are installed and intact, else a
    ValueError names what to install (a modality switched off is only said to be off)."""
    for modality in MODALITIES:
        off = modality in disabled
        check = getattr(profile.extractor(modality), "check", None)  # a host's own extractor may have none
        try:
            if check is not None:
                check(verify=not off)
        except (RuntimeError, ImportError, OSError) as error:
            if off:
                log.warning("%s; %s is switched off, so the session goes on without it", error, modality)
                continue
            raise ValueError(f"the {modality} extractor cannot load: {error}. "
                             f"Install it, or switch {modality} off (--privacy {modality})") from error


def _make_asr(asr, language, device, text_off: bool = False):
    if asr is None:
        return None
    from ..extractors.whisper_weights import WhisperWeightsError
    from .asr import make_asr

    try:
        return make_asr(asr, language=language, device=device)
    except (WhisperWeightsError, ImportError) as error:
        if text_off:
            log.warning("%s; text is switched off, so the session goes on without speech-to-text", error)
            return None
        raise ValueError(f"speech-to-text cannot load: {error}. Install it, choose another --asr "
                         "(pocketsphinx, none), or switch text off (--privacy text)") from error
