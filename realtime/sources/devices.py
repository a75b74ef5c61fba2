"""Device readers: one small interface for a live device and for a file played back as one.

    open() -> None           may raise (the capture thread reports it and retries with back-off)
    read() -> (data, t)      data: audio samples [n] or [n, ch] / an RGB uint8 frame; t: media time
                             in seconds for files, None for live devices (the capture thread stamps
                             them on the session clock); raises ReadTimeout when nothing came in
                             time, EOFError when a file has ended, anything else is a device error
    close() -> None          idempotent
    live: bool               False for files: they are paced by the replay, not by the hardware
    interruptible: bool      True if close() from another thread safely unblocks a read()

Audio devices also have `sample_rate`. Files are read by extractors/media_files.py
(`FileAudioDevice`, `FileVideoDevice`), the same readers the served-media path uses to build
training corpora, re-exported here beside the live devices.
"""

from __future__ import annotations

import logging

import numpy as np

from ...extractors.media import SAMPLE_RATE
from ...extractors.media_files import FileAudioDevice, FileVideoDevice, has_video_track
from ..buffers import ChunkQueue

log = logging.getLogger(__name__)


class ReadTimeout(Exception):
    """The device delivered nothing within its read timeout."""


class DeviceUnavailable(RuntimeError):
    """A named microphone or camera that does not open (raised by LiveSession before it loads)."""


PUSH = "push"  # LiveSession(microphone=PUSH, camera=PUSH): the host pushes samples and frames


def check_device_opens(modality: str, spec) -> None:
    """Open the microphone ("audio") or camera ("visual") `spec` names once and close it again;
    DeviceUnavailable says why it does not open and what to do instead."""
    device = MicrophoneDevice(spec) if modality == "audio" else CameraDevice(spec)
    what = "microphone" if modality == "audio" else "camera"
    try:
        device.open()
    except Exception as error:  # PortAudio and OpenCV raise many kinds
        parameter = "microphone" if modality == "audio" else "camera"
        raise DeviceUnavailable(
            f"the {what} {spec!r} does not open ({type(error).__name__}: {error}). Without one, push your own "
            f"{'samples' if modality == 'audio' else 'frames'} (LiveSession({parameter}=\"push\")), replay a file "
            f"(LiveSession(input_file=...)) or the demo (LiveSession.demo()); check_devices=False starts anyway "
            f"and retries the device") from error
    finally:
        device.close()


# ------------------------------------------------------------------------------------------------
# Live devices


class MicrophoneDevice:
    """A sounddevice input stream at the device's own rate (resampled later); callback-fed."""

    live = True
    interruptible = True

    def __init__(self, device=None, block_s: float = 0.032, read_timeout_s: float = 1.0) -> None:
        self.device = None if device in (None, "default") else device
        self.block_s = block_s
        self.read_timeout_s = read_timeout_s
        self.sample_rate = SAMPLE_RATE
        self._stream = None
        self._blocks = ChunkQueue(maxsize=256)  # the capture thread behind: the oldest block goes
        self._error: str | None = None

    def open(self) -> None:
        import sounddevice as sd

        info = sd.query_devices(self.device, kind="input")
        self.sample_rate = int(info["default_samplerate"])
        self._blocks.clear()
        self._error = None
        stream = sd.InputStream(
            device=self.device, channels=1, samplerate=self.sample_rate, dtype="float32",
            blocksize=int(self.sample_rate * self.block_s), callback=self._callback,
            finished_callback=self._finished,
        )
        stream.start()
        self._stream = stream

    def _callback(self, indata, frames, time_info, status) -> None:
        self._blocks.put(indata[:, 0].copy())  # never blocks audio I/O

    def _finished(self) -> None:
        if self._stream is not None:
            self._error = "input stream stopped"

    def forget(self) -> None:
        """Privacy: drop the blocks captured but not read yet."""
        self._blocks.clear()

    def read(self):
        if self._stream is None:
            raise RuntimeError("microphone is not open")
        block = self._blocks.get(timeout=self.read_timeout_s)
        if block is None:
            if self._error:
                raise RuntimeError(self._error)
            raise ReadTimeout(f"no audio for {self.read_timeout_s:g} s")
        return block, None

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as error:
                log.debug("closing the microphone failed: %s", error)


class CameraDevice:
    """An OpenCV camera: a device index (0) or a stream URL; frames come back RGB."""

    live = True

    def __init__(self, source=0) -> None:
        self.source = source
        self._capture = None

    def open(self) -> None:
        import cv2

        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise RuntimeError(f"cannot open camera {self.source!r}")
        self._capture = capture

    def read(self):
        capture = self._capture
        if capture is None:
            raise RuntimeError("camera is not open")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise RuntimeError("camera returned no frame")
        return bgr_to_rgb(frame), None

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3:
        return np.ascontiguousarray(frame[:, :, ::-1])
    return frame  # anything else is passed on; the capture thread rejects it as a corrupt frame


__all__ = ["PUSH", "CameraDevice", "DeviceUnavailable", "FileAudioDevice", "FileVideoDevice", "MicrophoneDevice",
           "ReadTimeout", "bgr_to_rgb", "check_device_opens", "has_video_track"]
