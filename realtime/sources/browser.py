"""Devices fed by pushes: the browser's microphone and webcam, streamed to the server by Gradio,
and a host program's own samples and frames (`LiveSession(microphone="push", camera="push")`,
then `session.push_audio(samples, rate)` / `session.push_frame(image)`).

They implement the live-device interface of sources/devices.py (open / read / close, `live`,
`sample_rate`), so a `LiveSession(microphone=PushedMicrophone(), camera=PushedCamera())` treats
the browser exactly like local hardware: same capture threads, clock, health checks (a browser
that stops streaming is reported "missing" after the read timeout) and privacy switches.

The host calls `push(...)` from any thread; bad input (wrong shape or type, NaN, a rate <= 0) is
refused with ValueError or TypeError whether or not the device is open. `sender` names who pushes
in status reasons ("the browser sent no audio for 2 s"). Both devices are `interruptible`:
`close()` from another thread wakes a read() waiting for a push, so the session's stop() ends
their capture threads at once. While the device is closed (not started yet, or its modality
switched off, which closes a live device) pushes are dropped: nothing is kept, and push()
returns False.

Timing: a browser's audio arrives in bursts (network, event loop), so stamping each block with
its arrival time would jitter by more than the segmenter tolerates and cut utterances apart. Once
`bind_clock(session.clock.now)` is called (a LiveSession does it for a pushed device it is
given), the microphone stamps blocks itself: consecutive blocks follow each other
sample-exactly, and the timeline is re-anchored on the session clock only
when it drifts by more than `resync_s` (a real gap: the browser paused or dropped audio). The
stamp is the block's end time, the same convention the capture thread uses for live blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ...extractors.media import SAMPLE_RATE, to_mono_float
from ..buffers import ChunkQueue
from .devices import ReadTimeout

_CLOSED = object()  # queued by close(): wakes a waiting read()


class PushedMicrophone:
    """Audio blocks pushed by the host, read by the session's audio capture thread."""

    live = True
    interruptible = True  # close() may come from another thread: it wakes a waiting read()

    def __init__(self, read_timeout_s: float = 2.0, max_blocks: int = 64, resync_s: float = 1.0,
                 sender: str = "the browser") -> None:
        self.read_timeout_s = read_timeout_s
        self.sender = sender
        self.resync_s = resync_s
        self.sample_rate = SAMPLE_RATE  # updated from each block: a block carries its own rate
        self._blocks = ChunkQueue(maxsize=max_blocks)  # the session behind: the oldest block goes
        self._open = False
        self._now: Callable[[], float] | None = None
        self._timeline: float | None = None  # end time of the last block pushed

    def bind_clock(self, now: Callable[[], float]) -> None:
        """Stamp blocks on this clock (the session's), sample-exactly; see the module docstring."""
        self._now = now

    def open(self) -> None:
        self._blocks.clear()
        self._timeline = None
        self._open = True

    def _stamp(self, n: int, rate: int) -> float | None:
        if self._now is None:
            return None  # the capture thread stamps the block when it reads it
        now = self._now()
        end = None if self._timeline is None else self._timeline + n / rate
        if end is None or abs(end - now) > self.resync_s:
            end = now
        self._timeline = end
        return end

    def push(self, sample_rate: int, samples: np.ndarray) -> bool:
        """Samples [n] or [n, channels] (float in [-1, 1], or integer PCM) at any rate (resampled
        to 16 kHz by the capture thread). False if dropped: the device is closed."""
        block, rate = check_audio(samples, sample_rate)
        if not self._open:
            return False
        if block.size == 0:
            return True
        self._blocks.put((rate, block, self._stamp(len(block), rate)))
        return True

    def read(self):
        item = self._blocks.get(timeout=self.read_timeout_s)
        if item is None:
            raise ReadTimeout(f"{self.sender} sent no audio for {self.read_timeout_s:g} s")
        if item is _CLOSED:
            raise RuntimeError(f"the microphone fed by {self.sender} was closed")
        self.sample_rate, block, t_end = item
        return block, t_end

    def forget(self) -> None:
        """Privacy: drop the blocks pushed but not read yet."""
        self._blocks.clear()

    def close(self) -> None:
        self._open = False
        self._blocks.clear()  # forget what was pushed, then wake a waiting read()
        self._blocks.put(_CLOSED)


class PushedCamera:
    """The newest frame pushed by the host (older unread frames are replaced, not queued)."""

    live = True
    interruptible = True  # close() may come from another thread: it wakes a waiting read()

    def __init__(self, read_timeout_s: float = 2.0, sender: str = "the browser") -> None:
        self.read_timeout_s = read_timeout_s
        self.sender = sender
        self._condition = threading.Condition()
        self._frame: np.ndarray | None = None
        self._open = False

    def open(self) -> None:
        with self._condition:
            self._frame = None
            self._open = True

    def push(self, frame: np.ndarray) -> bool:
        """An RGB uint8 frame [H, W, 3] (RGBA is cut to RGB). False if dropped: the device is closed."""
        frame = check_frame(frame)
        with self._condition:
            if not self._open:
                return False
            self._frame = np.ascontiguousarray(frame[:, :, :3])
            self._condition.notify_all()
            return True

    def read(self):
        with self._condition:
            if not self._condition.wait_for(lambda: self._frame is not None or not self._open, self.read_timeout_s):
                raise ReadTimeout(f"{self.sender} sent no frame for {self.read_timeout_s:g} s")
            if not self._open:
                raise RuntimeError(f"the camera fed by {self.sender} was closed")
            frame, self._frame = self._frame, None
        return frame, None

    def forget(self) -> None:
        """Privacy: drop the frame pushed but not read yet."""
        with self._condition:
            self._frame = None

    def close(self) -> None:
        with self._condition:
            self._open = False
            self._frame = None
            self._condition.notify_all()


def check_audio(samples, sample_rate) -> tuple[np.ndarray, int]:
    """Pushed audio as the capture thread reads it: (float32 mono samples, rate); bad input raises."""
    return to_mono_float(check_array(samples, "audio")), check_rate(sample_rate)


def check_frame(frame) -> np.ndarray:
    """A pushed frame: RGB (or RGBA) uint8 [height, width, 3 or 4]; anything else raises."""
    frame = check_array(frame, "a frame")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or min(frame.shape[:2]) < 1:
        raise ValueError(f"a frame must be RGB [height, width, 3], got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise TypeError(f"a frame must be uint8 RGB (0-255), got dtype {frame.dtype}")
    return frame


def check_rate(sample_rate) -> int:
    """A sample rate: a positive finite number of samples a second (any rate; 16 kHz is used)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"the sample rate must be a number (samples a second), got {type(sample_rate).__name__}")
    rate = float(sample_rate)
    if not np.isfinite(rate) or round(rate) <= 0:
        raise ValueError(f"the sample rate must be a positive number of samples a second, got {sample_rate}")
    return round(rate)


def check_array(data, what: str) -> np.ndarray:
    """A numpy array (or a list of numbers) as pushed; anything else is a TypeError naming `what`."""
    if isinstance(data, (str, bytes)) or data is None:
        raise TypeError(f"{what} must be a numpy array, got {type(data).__name__}")
    array = np.asarray(data)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers (float or integer PCM), got dtype {array.dtype}")
    if array.dtype.kind == "b":
        raise TypeError(f"{what} must hold numbers, not booleans")
    return array
