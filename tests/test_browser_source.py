"""Pushed devices (the browser's microphone and webcam as Gradio streams them): conversions, privacy
(nothing kept while closed), timeouts, and the real LiveSession fed by pushes in real time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from frontend_support import DEMO_DIR, demo_transcript, frontend_checkpoint
from momke.extractors.media import to_mono_float
from momke.realtime.sources.browser import PushedCamera, PushedMicrophone
from momke.realtime.sources.devices import ReadTimeout


def test_pushed_int_audio_is_scaled_like_every_other_audio_input():
    """One convention (extractors/media.to_mono_float): int16 / 32768, int32 / 2**31, uint8 centred."""
    block = np.array([[-32768, -32768], [16384, 0], [0, 0]], dtype=np.int16)
    assert to_mono_float(block).tolist() == [-1.0, 0.25, 0.0]
    assert to_mono_float(np.array([-(2**31), 2**30], np.int32)).tolist() == [-1.0, 0.5]
    assert to_mono_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    with pytest.raises(ValueError):
        to_mono_float(np.zeros((2, 2, 2)))
    mic = PushedMicrophone(read_timeout_s=0.5)
    mic.open()
    mic.push(16000, block)
    samples, _ = mic.read()
    assert samples.dtype == np.float32 and samples.tolist() == [-1.0, 0.25, 0.0]


def test_microphone_keeps_nothing_while_closed_and_reads_with_its_rate():
    mic = PushedMicrophone(read_timeout_s=0.1)
    mic.push(48000, np.ones(480, np.int16))  # before open: dropped
    mic.open()
    with pytest.raises(ReadTimeout):
        mic.read()
    mic.push(48000, np.full(480, 16384, np.int16))
    block, t = mic.read()
    assert t is None and mic.sample_rate == 48000 and block == pytest.approx(np.full(480, 0.5), abs=1e-4)
    mic.push(16000, np.ones(10, np.float32))
    mic.close()  # privacy / stop: what was pushed is forgotten
    mic.open()
    with pytest.raises(ReadTimeout):
        mic.read()
    with pytest.raises(ValueError):
        mic.push(0, np.ones(3, np.float32))


def test_bursty_pushes_get_sample_exact_stamps_and_a_real_gap_resyncs():
    now = [10.0]
    mic = PushedMicrophone(resync_s=1.0)
    mic.bind_clock(lambda: now[0])
    mic.open()
    stamps = []
    for arrival in (10.0, 10.6, 10.6, 10.7, 10.9):  # 0.25 s blocks arriving in bursts
        now[0] = arrival
        mic.push(16000, np.zeros(4000, np.float32))
        stamps.append(mic.read()[1])
    assert stamps == pytest.approx([10.0, 10.25, 10.5, 10.75, 11.0])
    now[0] = 20.0  # the browser paused for seconds: re-anchor on the session clock
    mic.push(16000, np.zeros(4000, np.float32))
    assert mic.read()[1] == pytest.approx(20.0)


def test_camera_gives_the_newest_frame_and_unblocks_on_close():
    cam = PushedCamera(read_timeout_s=0.1)
    frame = np.zeros((4, 4, 3), np.uint8)
    cam.push(frame)  # closed: dropped
    cam.open()
    with pytest.raises(ReadTimeout):
        cam.read()
    cam.push(frame)
    cam.push(np.full((4, 4, 4), 7, np.uint8))  # RGBA: cut to RGB, replaces the unread frame
    out, _ = cam.read()
    assert out.shape == (4, 4, 3) and out.max() == 7
    with pytest.raises(ValueError):
        cam.push(np.zeros((4, 4), np.uint8))
    cam.read_timeout_s = 5
    errors = []
    reader = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, cam.read)))
    reader.start()
    time.sleep(0.1)
    cam.close()
    reader.join(2)
    assert not reader.is_alive() and errors


def demo_media(seconds: float):
    """The demo's first `seconds` of audio (as a browser would send it: 48 kHz int16) and frames."""
    import av
    import cv2
    from scipy.signal import resample_poly

    with av.open(str(DEMO_DIR / "conversation.mp4")) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    audio = resample_poly(audio[: int(seconds * 16000)], 3, 1)
    audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    capture = cv2.VideoCapture(str(DEMO_DIR / "conversation.mp4"))
    frames = []
    while len(frames) < seconds * 12:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1].copy())
    capture.release()
    return audio, frames


def test_live_session_fed_by_pushes_like_a_browser(tmp_path_factory):
    from momke.realtime.session import LiveSession

    lines = demo_transcript()[:2]
    seconds = lines[-1]["end"] + 1.0
    audio, frames = demo_media(seconds)
    mic, cam = PushedMicrophone(), PushedCamera()
    session = LiveSession(microphone=mic, camera=cam, asr=None, device="cpu",
                          checkpoint=frontend_checkpoint(tmp_path_factory))
    events = []
    session.on_event(events.append)
    mic.bind_clock(session.clock.now)  # as the Gradio app does: sample-exact stamps despite bursts
    chunk = 48000 // 4  # Gradio streams every 0.25 s
    with session:
        assert session.wait_ready(120)  # capture (and the session clock) begins at ready
        began = time.monotonic()
        pushed_text = 0
        for i in range(0, len(audio), chunk):
            t = i / 48000
            while time.monotonic() - began < t + 0.25:  # real time: a chunk is sent once recorded
                time.sleep(0.01)
            mic.push(48000, audio[i: i + chunk])
            frame_index = min(int(t * 12), len(frames) - 1)
            cam.push(frames[frame_index])
            if pushed_text < len(lines) and t >= lines[pushed_text]["start"] + 0.5:
                session.push_text(lines[pushed_text]["text"])
                pushed_text += 1
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum(e.type == "emotion" for e in events) < len(lines):
            mic.push(48000, np.zeros(chunk, np.int16))  # the browser keeps sending (silence)
            cam.push(frames[-1])
            time.sleep(0.25)
    emotions = [e for e in events if e.type == "emotion"]
    assert len(emotions) == len(lines), [(e.type, getattr(e, "reason", "")) for e in events]
    for index, (event, line) in enumerate(zip(emotions, lines)):
        # the demo's face is on camera during its happy lines 2 and 7 only (assets/demo/SOURCE.md)
        assert set(event.modalities) >= ({"audio", "visual"} if index in (1, 6) else {"audio"})
        assert abs(event.start - line["start"]) < 0.8 and abs(event.end - line["end"]) < 0.8
    assert any(e.transcript == lines[0]["text"] for e in emotions)
