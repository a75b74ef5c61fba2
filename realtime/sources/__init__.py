"""Sources: live devices and replayed files behind one device interface, read by capture threads
that stamp everything on the session clock. See devices.py,
browser.py (the browser's pushed devices), capture.py, replay.py."""

from ...extractors.resample import StreamResampler
from .capture import END_OF_STREAM, AudioCapture, CaptureThread, VideoCapture
from .devices import (
    PUSH,
    CameraDevice,
    DeviceUnavailable,
    FileAudioDevice,
    FileVideoDevice,
    MicrophoneDevice,
    ReadTimeout,
    check_device_opens,
    has_video_track,
)
from .replay import ReplayPacer, load_transcript

__all__ = [
    "END_OF_STREAM",
    "PUSH",
    "AudioCapture",
    "CameraDevice",
    "CaptureThread",
    "DeviceUnavailable",
    "FileAudioDevice",
    "FileVideoDevice",
    "MicrophoneDevice",
    "ReadTimeout",
    "ReplayPacer",
    "StreamResampler",
    "VideoCapture",
    "check_device_opens",
    "has_video_track",
    "load_transcript",
]
