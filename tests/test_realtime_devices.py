"""Live microphone and camera readers against fake sounddevice / OpenCV modules (no devices):
any device rate resampled to 16 kHz, errors and stalls surface as health states, reopen with
back-off, frames converted BGR -> RGB; and the resampler itself."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest
from momke.realtime import EmotionEvent, LiveSession, StatusEvent
from momke.realtime.sources import CameraDevice, MicrophoneDevice, ReadTimeout, StreamResampler
from realtime_support import face_frames, session_threads, spy_model, spy_profile, wait_for


def test_resampler_keeps_frequency_and_has_no_seams():
    rate = 44_100
    t = np.arange(rate * 2) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    resampler = StreamResampler(rate)
    pieces = [resampler.process(tone[i: i + 1000]) for i in range(0, len(tone), 1000)]  # odd-sized chunks
    out = np.concatenate(pieces)
    assert abs(len(out) - 32_000) <= 2
    spectrum = np.abs(np.fft.rfft(out[4000:20000]))
    assert abs(np.argmax(spectrum) * 16_000 / 16_000 - 440) <= 1  # 1 Hz bins over 16,000 samples
    assert abs(np.sqrt(np.mean(out[4000:] ** 2)) - 0.5 / np.sqrt(2)) < 0.01  # level kept
    assert np.max(np.abs(np.diff(out[500:]))) < 0.2  # no clicks at chunk boundaries
    with pytest.raises(ValueError):
        StreamResampler(0)


def test_resampler_removes_what_16k_cannot_hold():
    rate = 48_000
    t = np.arange(rate) / rate
    high = np.sin(2 * np.pi * 12_000 * t).astype(np.float32)  # above 8 kHz: must not alias
    out = StreamResampler(rate).process(high)
    assert np.sqrt(np.mean(out[200:] ** 2)) < 0.05


class FakeSoundDevice(types.SimpleNamespace):
    """Just enough of the sounddevice module: an input stream calling back from its own thread."""

    def __init__(self, rate=44_100, fail_open=0, stop_after=None):
        super().__init__()
        self.rate, self.fail_open, self.stop_after = rate, fail_open, stop_after
        self.opened = 0
        self.streams = []

    def query_devices(self, device=None, kind=None):
        return {"default_samplerate": float(self.rate), "name": "fake"}

    def InputStream(self, **kwargs):
        self.opened += 1
        if self.opened <= self.fail_open:
            raise OSError("injected: no such device")
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream


class FakeStream:
    def __init__(self, owner, samplerate, blocksize, callback, finished_callback, **_):
        self.owner, self.rate, self.blocksize = owner, samplerate, blocksize
        self.callback, self.finished_callback = callback, finished_callback
        self.running = threading.Event()

    def start(self):
        self.running.set()
        threading.Thread(target=self._run, name="fake-portaudio", daemon=True).start()

    def _run(self):
        n = 0
        phase = 0
        while self.running.is_set():
            if self.owner.stop_after is not None and n >= self.owner.stop_after:
                self.running.clear()
                self.finished_callback()
                return
            t = (phase + np.arange(self.blocksize)) / self.rate
            block = (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[:, None]
            phase += self.blocksize
            self.callback(block, self.blocksize, None, None)
            n += 1
            time.sleep(self.blocksize / self.rate)

    def abort(self):
        self.running.clear()

    def close(self):
        self.running.clear()


def test_microphone_device_reads_at_device_rate(monkeypatch):
    fake = FakeSoundDevice(rate=44_100)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    mic = MicrophoneDevice("default", read_timeout_s=0.5)
    mic.open()
    block, t = mic.read()
    assert mic.sample_rate == 44_100 and t is None and block.dtype == np.float32
    assert len(block) == int(44_100 * mic.block_s)
    mic.close()
    mic.close()  # idempotent
    with pytest.raises(RuntimeError):
        mic.read()


def test_microphone_stream_that_stops_is_a_device_error_and_silence_a_timeout(monkeypatch):
    fake = FakeSoundDevice(rate=16_000, stop_after=3)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    mic = MicrophoneDevice(read_timeout_s=0.3)
    mic.open()
    for _ in range(3):
        mic.read()
    with pytest.raises(RuntimeError, match="stopped"):
        mic.read()
    mic._error = None  # a stream that just goes quiet
    with pytest.raises(ReadTimeout):
        mic.read()
    mic.close()


def test_session_with_live_microphone_that_fails_to_open_then_works(monkeypatch):
    fake = FakeSoundDevice(rate=48_000, fail_open=2)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    events = []
    # check_devices=False: the first opens fail, and the capture thread retries (no refusal up front)
    session = LiveSession(microphone="default", asr="none", checkpoint=spy_model(), profile=spy_profile(),
                          check_devices=False)
    session.on_event(events.append)
    with session:
        assert wait_for(lambda: session.status()["audio"] == "active", 8)
        assert wait_for(lambda: len(session.audio_queue) > 0 or "momke-segmentation" in session_threads(), 2)
    assert fake.opened == 3
    reasons = [e.reason for e in events if isinstance(e, StatusEvent) and e.modality == "audio"]
    # Two failed opens, one cause: one status event (the reason carries no changing delay).
    assert sum("no such device" in r for r in reasons) == 1
    assert all(not s.running.is_set() for s in fake.streams)
    assert wait_for(lambda: session_threads() == [], 5), session_threads()


class FakeCapture:
    """cv2.VideoCapture stand-in: BGR frames of a face; can fail to open, die or freeze."""

    script: dict = {}

    def __init__(self, source):
        self.source = source
        self.frames = face_frames(10_000, seed=1)
        self.count = 0
        FakeCapture.instances.append(self)

    def isOpened(self):
        return not FakeCapture.script.get("closed", False)

    def read(self):
        self.count += 1
        time.sleep(0.02)
        if FakeCapture.script.get("die_after") and self.count > FakeCapture.script["die_after"]:
            return False, None
        rgb = next(self.frames)
        if FakeCapture.script.get("black"):
            rgb = np.zeros_like(rgb)
        return True, rgb[:, :, ::-1].copy()

    def release(self):
        pass


@pytest.fixture
def fake_cv2(monkeypatch):
    import cv2

    FakeCapture.instances = []
    FakeCapture.script = {}
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    return FakeCapture


def test_camera_device_gives_rgb_and_errors(fake_cv2):
    camera = CameraDevice(0)
    camera.open()
    frame, t = camera.read()
    expected = next(face_frames(1, seed=1))
    assert t is None and np.array_equal(frame, expected)  # BGR from OpenCV -> RGB
    fake_cv2.script["die_after"] = 1
    with pytest.raises(RuntimeError, match="no frame"):
        camera.read()
    camera.close()
    fake_cv2.script["closed"] = True
    with pytest.raises(RuntimeError, match="cannot open"):
        CameraDevice("rtsp://example.invalid/stream").open()


def test_session_camera_black_frames_then_recovery_and_reopen(fake_cv2):
    events = []
    fake_cv2.script["black"] = True
    session = LiveSession(camera=0, asr="none", checkpoint=spy_model(), profile=spy_profile(), camera_fps=10)
    session.on_event(events.append)
    with session:
        assert wait_for(lambda: any(isinstance(e, StatusEvent) and "black" in e.reason for e in events), 5)
        assert len(session.frames) == 0
        fake_cv2.script["black"] = False
        assert wait_for(lambda: session.status()["visual"] == "active", 5)
        assert len(session.frames) > 0
        fake_cv2.script["die_after"] = fake_cv2.instances[-1].count + 2
        assert wait_for(lambda: any(isinstance(e, StatusEvent) and "device error" in e.reason for e in events), 5)
        fake_cv2.script["die_after"] = None
        assert wait_for(lambda: len(fake_cv2.instances) >= 2 and session.status()["visual"] == "active", 5)
        session.push_text("I am so happy today")
        assert wait_for(lambda: any(isinstance(e, EmotionEvent) for e in events), 5)
    emotion = next(e for e in events if isinstance(e, EmotionEvent))
    assert emotion.transcript == "I am so happy today" and emotion.modalities == ["text", "visual"]
    assert wait_for(lambda: session_threads() == [], 5), session_threads()
