"""Is there a microphone or a camera? Cheap, guarded checks for the front ends' start-up.

Each probe answers with a short reason instead of raising, so "no device" becomes a clear
message (and exit code 2 in the CLI), never a traceback from PortAudio or OpenCV.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass


@dataclass
class Probe:
    found: bool
    detail: str  # the device's name when found, else why not


def probe_microphone(device=None) -> Probe:
    """An input-capable sounddevice device (the default one, or `device`)."""
    try:
        import sounddevice as sd
    except Exception as error:
        return Probe(False, f"sounddevice/PortAudio unavailable ({error})")
    try:
        if device not in (None, "default"):
            info = sd.query_devices(device, kind="input")
            return Probe(True, str(info["name"]))
        devices = sd.query_devices()
        inputs = [d for d in devices if d.get("max_input_channels", 0) > 0]
        if not inputs:
            return Probe(False, "no audio input device")
        info = sd.query_devices(kind="input")  # raises when there is no default input
        return Probe(True, str(info["name"]))
    except Exception as error:
        return Probe(False, f"no usable audio input ({error})")


def probe_camera(source=0) -> Probe:
    """An OpenCV camera that opens. On Linux an index is first checked against /dev/video*, so a
    machine with no camera answers at once instead of waiting on OpenCV's backends."""
    if isinstance(source, int) and sys.platform.startswith("linux"):
        if not glob.glob("/dev/video*"):
            return Probe(False, "no /dev/video* device")
        if not os.path.exists(f"/dev/video{source}"):
            return Probe(False, f"/dev/video{source} does not exist")
    try:
        import cv2

        capture = cv2.VideoCapture(source)
        try:
            if not capture.isOpened():
                return Probe(False, f"camera {source!r} does not open")
            ok, _ = capture.read()
            return Probe(True, f"camera {source!r}") if ok else Probe(False, f"camera {source!r} gives no frames")
        finally:
            capture.release()
    except Exception as error:
        return Probe(False, f"camera {source!r} unusable ({error})")


def parse_camera(value: str):
    """A CLI camera argument: an integer index ("0") or a URL / device path."""
    return int(value) if value.strip().isdigit() else value
