"""Capture threads: one per device, the same code for a live device and a replayed file.

A capture thread opens its device (retrying with exponential back-off while it fails), reads,
stamps each item on the session clock, checks it (health) and hands it to a bounded store
without ever waiting on the pipeline (a replay paced "as fast as possible" is the exception:
it waits, that is its back-pressure). While its modality is switched off, a live device is
closed (and never opened if it starts switched off) and a replayed file is only advanced
(frames are not even decoded); nothing is kept: `forget(modality)` drops what the thread holds
(the resampler's filter state, the last frame's thumbnail) at once.

A file that cannot be read further ends its stream (`error` says why); damaged packets inside
it are skipped by the file device itself (see devices.py) and reported here once.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ...extractors.media import SAMPLE_RATE
from ...extractors.resample import StreamResampler
from ...extractors.served import FrameGate, ServingOptions
from ..buffers import AudioChunk, ChunkQueue, FrameBuffer
from ..clock import SessionClock
from ..health import HealthMonitor
from .devices import ReadTimeout
from .replay import ReplayPacer

log = logging.getLogger(__name__)

END_OF_STREAM = object()  # put into the audio queue when a replayed file has ended


class CaptureThread(threading.Thread):
    modality = ""
    stream = ""

    def __init__(
        self,
        device,
        clock: SessionClock,
        health: HealthMonitor,
        stop: threading.Event,
        pacer: ReplayPacer | None = None,
        backoff_s: tuple[float, float] = (0.5, 8.0),
        gate: threading.Event | None = None,
    ) -> None:
        """gate: capture begins once it is set (the session is ready)."""
        super().__init__(name=f"momke-capture-{self.modality}", daemon=True)
        self.device = device
        self.clock = clock
        self.health = health
        self.stop_event = stop
        self.pacer = pacer
        self.backoff_s = backoff_s
        self.gate = gate
        self.finished = threading.Event()
        self.error: str | None = None  # a file only: why its stream ended before the file did
        self._opened = False
        self._decode_errors_seen = 0

    # Subclasses: what to do with one item, and the reset on (re)open / switch-off.
    def deliver(self, data, t: float) -> None: ...

    def on_reset(self) -> None: ...

    def enabled(self) -> bool:
        return self.health.enabled(self.modality)

    def run(self) -> None:
        delay = self.backoff_s[0]
        try:
            while self.gate is not None and not self.gate.wait(0.05):
                if self.stop_event.is_set():
                    return
            if self.device.live:
                self.health.watch_timeout(self.modality, getattr(self.device, "read_timeout_s", 2.0) * 2)
            while not self.stop_event.is_set():
                enabled = self.enabled()
                if not enabled and self.device.live:
                    self._close()  # and never opened while switched off
                    self.stop_event.wait(0.1)
                    continue
                if not self._opened:
                    try:
                        self.device.open()
                    except Exception as error:
                        if not self.device.live:
                            self.error = f"cannot read the file: {error}"
                            self.health.report_missing(self.modality, self.error)
                            return
                        self.health.report_missing(self.modality, f"device error: {error}; retrying")
                        self.stop_event.wait(delay)
                        delay = min(2 * delay, self.backoff_s[1])
                        continue
                    self._opened = True
                    self.on_reset()
                try:
                    data, media_t = self.read(enabled)
                except EOFError:
                    return
                except ReadTimeout as error:
                    if self.stop_event.is_set():
                        return
                    self.health.report_missing(self.modality, f"read timeout: {error}")
                    continue
                except Exception as error:
                    if self.stop_event.is_set():  # interrupt() closed the device to stop us: no fault
                        return
                    if not self.device.live:  # a file is not reopened: the rest of this stream is lost
                        self.error = f"cannot read the file further: {error}"
                        self.health.report_missing(self.modality, self.error)
                        return
                    self.health.report_missing(self.modality, f"device error: {error}; reopening")
                    self._close()
                    self.stop_event.wait(delay)
                    delay = min(2 * delay, self.backoff_s[1])
                    continue
                delay = self.backoff_s[0]
                self.health.touch(self.modality)
                self._report_damage()
                t = self.clock.now() if media_t is None else media_t
                end = self.media_end(data, t) if media_t is not None else t  # (a replay's item only)
                if media_t is not None and self.pacer is not None:
                    # A fast replay's stream waits for the others; switched off meanwhile, it
                    # lets go of what it read before it waits on (the pipeline may be paused).
                    if not self.pacer.realtime and self.enabled() and not self.pacer.wait(self.stream, end, _StopOrOff(self)):
                        data = None
                    if not self.pacer.wait(self.stream, end, self.stop_event):
                        return
                if data is not None and self.enabled():
                    self.deliver(data, t)
                else:  # (what was read is let go before skip() may wait)
                    data = None
                    self.skip(end)
                if not self.enabled():
                    self.on_reset()  # privacy: keep nothing of what came before the switch
                data = None  # nothing of the last item stays referenced while waiting for the next
        finally:
            self._close()
            if self.pacer is not None:
                self.pacer.finish(self.stream)
            self.finished.set()
            self.on_finished()

    def read(self, enabled: bool):
        return self.device.read()

    def forget(self, modality: str) -> None:
        """Privacy: drop what this thread (and its device's buffers) hold of `modality`."""
        if modality == self.modality:
            self.on_reset()
            if hasattr(self.device, "forget"):
                self.device.forget()

    def _report_damage(self) -> None:
        # Damaged data a file device skipped: reported once (the count is in the summary).
        errors = getattr(self.device, "decode_errors", 0)
        if errors and not self._decode_errors_seen:
            self.health.report_missing(self.modality, "damaged data in the file (skipped)")
        self._decode_errors_seen = errors

    def media_end(self, data, media_t: float) -> float:
        return media_t

    def skip(self, end: float) -> None:
        """A replayed item (ending at `end`) read while its modality is off: dropped (subclasses
        may mark time)."""

    def on_finished(self) -> None: ...

    def _close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self.device.close()
            except Exception as error:
                log.debug("closing the %s device failed: %s", self.modality, error)
            self.on_reset()

    def interrupt(self) -> None:
        """Unblock a read() that waits on the device (called on stop), where the device allows
        closing from another thread (OpenCV and FFmpeg handles do not: they are closed by their
        own thread, which sees the stop after its current read)."""
        if getattr(self.device, "interruptible", False):
            try:
                self.device.close()
            except Exception as error:
                log.debug("interrupting the %s device failed: %s", self.modality, error)


class _StopOrOff:
    """For a wait: set once the session stops or the capture's modality is switched off."""

    def __init__(self, capture: CaptureThread) -> None:
        self.capture = capture

    def is_set(self) -> bool:
        return self.capture.stop_event.is_set() or not self.capture.enabled()


class AudioCapture(CaptureThread):
    """Audio -> 16 kHz mono chunks in the audio queue; reports a microphone delivering zeros."""

    modality = "audio"
    stream = "audio"

    def __init__(self, device, clock, health, stop, queue: ChunkQueue, pacer=None, zeros_s: float = 1.0, **kw) -> None:
        super().__init__(device, clock, health, stop, pacer, **kw)
        self.queue = queue
        self.zeros_s = zeros_s
        self._resampler: StreamResampler | None = None
        self._zero_run = 0.0

    def on_reset(self) -> None:
        self._resampler = None
        self._zero_run = 0.0

    def media_end(self, data, media_t: float) -> float:
        return media_t + len(data) / self.device.sample_rate

    def deliver(self, data, t: float) -> None:
        samples = np.asarray(data, dtype=np.float32)
        if samples.ndim not in (1, 2) or samples.size == 0:
            self.health.report_missing("audio", f"corrupt audio block of shape {samples.shape}")
            return
        if not np.all(np.isfinite(samples)):
            self.health.report_missing("audio", "audio device delivered NaN/inf samples")
            return
        rate = self.device.sample_rate
        if self._resampler is None or self._resampler.in_rate != rate:
            self._resampler = StreamResampler(rate, SAMPLE_RATE)
        duration = len(samples) / rate
        if self.device.live:
            t -= duration  # a live block is delivered when its last sample was captured
        audio = self._resampler.process(samples)
        if self.device.live and np.max(np.abs(audio), initial=0.0) < 1e-6:
            # Exact zeros: silence from a real microphone still has noise; this is a muted or
            # broken one, once it lasts zeros_s.
            self._zero_run += duration
        else:
            self._zero_run = 0.0
        if self._zero_run >= self.zeros_s:
            self.health.report_missing("audio", "microphone delivers only zeros (muted?)")
        else:
            self.health.report_data("audio")
        chunk = AudioChunk(audio, t)
        # A replay waits for room, unless audio is switched off meanwhile: then the chunk is let go
        # at once (the next ones mark the time), not held until the pipeline reads again.
        self.queue.put(chunk, block=not self.device.live, stop=self.stop_event, keep=self.enabled)
        if not self.enabled():  # switched off while this waited for room: keep nothing
            chunk.forget("audio")

    def skip(self, end: float) -> None:
        # A replay with audio off still drives the timeline: an empty chunk carries only the time.
        self.queue.put(AudioChunk(np.zeros(0, dtype=np.float32), end), block=True, stop=self.stop_event)

    def on_finished(self) -> None:
        if not self.device.live:
            self.queue.put(END_OF_STREAM, block=True, stop=self.stop_event)


class VideoCapture(CaptureThread):
    """Frames -> the frame buffer, at most `fps` a second; frozen, black or corrupt frames are kept out."""

    modality = "visual"
    stream = "video"

    def __init__(
        self, device, clock, health, stop, frames: FrameBuffer, pacer=None, fps: float = ServingOptions.camera_fps,
        frozen_s: float = 2.0, black_level: float = 8.0, **kw,
    ) -> None:
        super().__init__(device, clock, health, stop, pacer, **kw)
        self.frames = frames
        self.frame_gate = FrameGate(fps, frozen_s, black_level)  # as the served-media path keeps frames

    def on_reset(self) -> None:
        self.frame_gate.reset()

    def read(self, enabled: bool):
        if self.device.live:
            return self.device.read()
        # A file: decode only the frames that will be kept, and none while switched off.
        return self.device.read(decode=enabled)

    def deliver(self, frame, t: float) -> None:
        if frame is None:
            return
        keep, problem = self.frame_gate.admit(frame, t)
        if problem:
            self.health.report_missing("visual", problem)
            return
        if not keep:
            return
        if self.enabled():  # again: the privacy switch may have flipped during the checks
            self.frames.add(t, frame)
            if not self.enabled():
                self.frames.forget("visual")
        self.health.report_data("visual")
