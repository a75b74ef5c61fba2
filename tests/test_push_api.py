"""The public push API: `LiveSession(microphone="push", camera="push")` fed by the host with
`push_audio`, `push_frame` and `push_text` (real RAVDESS speech at 44.1 kHz stereo, a real face),
no private clock calls; clear refusals of bad input; status reasons that name the host; the
README's no-device example run as written; and a named device that does not open failing at once."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from frontend_support import REPO, frontend_checkpoint
from realtime_support import face_frames, speech_bounds
from synth_speech import RAVDESS_SENTENCES, ravdess_clips, read_clips

README = (REPO / "README.md").read_text()


def embedding_blocks() -> list[str]:
    start = README.index("## Embedding in a prototype")
    section = README[start:README.index("\n## ", start + 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def speech_at_44k(clips) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """RAVDESS clips joined by 1.2 s pauses, resampled to 44.1 kHz stereo (as a sound card
    delivers it), and each clip's speech span (s) and sentence."""
    from scipy.signal import resample_poly

    parts, spans, t = [np.zeros(8000, np.float32)], [], 0.5
    for path, audio in zip(clips, read_clips(clips)):
        start, end = speech_bounds(audio)
        spans.append((t + start, t + end, RAVDESS_SENTENCES[path.stem.split("-")[4]]))
        parts += [audio, np.zeros(int(1.2 * 16000), np.float32)]
        t += len(audio) / 16000 + 1.2
    mono = resample_poly(np.concatenate(parts), 441, 160).astype(np.float32)
    return np.stack([mono, 0.8 * mono], axis=1), spans


class BrokenOutlet:
    """An outlet of the host's own that fails on every event (a consumer gone, a bug)."""

    name = "broken"

    def __init__(self) -> None:
        self.calls, self.closed = 0, False

    def open(self, info) -> None:
        self.labels = info.labels

    def send(self, event) -> None:
        self.calls += 1
        raise ConnectionResetError("the consumer went away")

    def close(self, timeout: float) -> None:
        self.closed = True


class CollectWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return frontend_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def pushed_session_run(checkpoint):
    """A session fed only by pushes, in real time, from this thread; also sends to a WebSocket."""
    from momke.realtime import LiveSession
    from websockets.sync.client import connect

    audio, spans = speech_at_44k(ravdess_clips(1))
    rate, block = 44_100, 44_100 // 20  # 50 ms blocks
    frames = face_frames(1000)
    before = set(threading.enumerate())
    broken = BrokenOutlet()
    warnings = CollectWarnings()
    logging.getLogger("momke.realtime.outlets").addHandler(warnings)
    session = LiveSession(microphone="push", camera="push", asr=None, device="cpu", checkpoint=checkpoint,
                          emit=["ws://127.0.0.1:0", broken])
    events, refused_before_ready, received = [], None, []
    session.on_event(events.append)
    refused_before_ready = session.push_audio(audio[:block], rate)  # not started: nothing captures it
    with session:
        assert session.wait_ready(120)
        ws_url = re.search(r"ws://[^\s,]+", session.outlets).group(0)

        def listen():
            with connect(ws_url) as connection:
                received.extend(connection)  # until the session closes the server

        client = threading.Thread(target=listen, daemon=True)
        client.start()
        began, pushed_text = time.monotonic(), 0
        for index, start in enumerate(range(0, len(audio), block)):
            while time.monotonic() - began < start / rate:
                time.sleep(0.005)
            assert session.push_audio(audio[start:start + block], rate)
            if index % 4 == 0:
                assert session.push_frame(next(frames))
            if pushed_text < len(spans) and start / rate > spans[pushed_text][0] + 0.3:
                assert session.push_text(spans[pushed_text][2])
                pushed_text += 1
        deadline = time.monotonic() + 30
        while sum(e.type == "emotion" for e in events) < len(spans) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # pushes stopped: the sensors time out, and say who stopped sending
        session.set_enabled("visual", False)  # privacy: the pushed camera closes, nothing pushed is kept
        time.sleep(0.3)
        kept_while_off = session.push_frame(next(frames))
    client.join(5)
    time.sleep(0.2)
    # tqdm's monitor (started by a progress bar while loading) is the process's, not the session's
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive() and t.name != "tqdm_monitor"]
    logging.getLogger("momke.realtime.outlets").removeHandler(warnings)
    return {"events": events, "spans": spans, "refused_before_ready": refused_before_ready, "left": left,
            "received": received, "broken": broken, "warnings": warnings.messages,
            "kept_while_off": kept_while_off}


def test_pushed_speech_face_and_text_become_one_emotion_each(pushed_session_run):
    run = pushed_session_run
    # (once the pushes stop, the face alone is judged over windows: those are not counted here)
    emotions = [e for e in run["events"] if e.type == "emotion" and e.segmentation != "window"]
    assert len(emotions) == len(run["spans"]), [(e.type, getattr(e, "reason", "")) for e in run["events"]]
    for event, (start, end, sentence) in zip(emotions, run["spans"]):
        assert {"audio", "visual", "text"} <= set(event.modalities)
        assert event.transcript == sentence and event.segmentation == "speech"
        # pushed in real time at 44.1 kHz: the utterance lies where the clip's speech was
        assert abs(event.start - start) < 0.5 and abs(event.end - end) < 0.6
    assert run["refused_before_ready"] is False  # dropped before the start, and said so
    assert run["kept_while_off"] is False  # dropped while visual is switched off


def test_status_reasons_name_the_host_program(pushed_session_run):
    reasons = [e.reason for e in pushed_session_run["events"] if e.type == "status" and e.state == "missing"]
    assert any("the host program (push_audio / push_frame) sent no audio" in r for r in reasons), reasons
    assert any("the host program (push_audio / push_frame) sent no frame" in r for r in reasons), reasons
    assert not any("browser" in r for r in reasons)


def test_emit_from_the_api_and_no_thread_left_after_stop(pushed_session_run):
    run = pushed_session_run
    assert run["left"] == []  # capture, segmentation, processing, events, the WebSocket server
    lines = [json.loads(line) for line in run["received"]]
    sent = [e.to_dict() for e in run["events"]]
    assert lines and lines == sent[len(sent) - len(lines):]  # it joined after ready: from then on, in order
    assert [line for line in lines if line["type"] == "emotion"] == [e for e in sent if e["type"] == "emotion"]


def test_a_failing_outlet_is_logged_and_the_session_goes_on(pushed_session_run):
    run = pushed_session_run
    broken = run["broken"]
    assert broken.calls == len(run["events"]) and broken.closed  # every event was offered, then closed
    failed = [m for m in run["warnings"] if m.startswith("outlet broken failed")]
    assert len(failed) == 1 and "ConnectionResetError: the consumer went away" in failed[0]  # once, not per event


def test_bad_pushes_are_refused_with_a_clear_error(checkpoint):
    from momke.realtime import LiveSession

    session = LiveSession(microphone="push", camera="push", asr=None, device="cpu", checkpoint=checkpoint)
    good = np.zeros(160, np.float32)
    cases = [
        (lambda: session.push_audio(good, 0), ValueError, "positive"),
        (lambda: session.push_audio(good, -8000), ValueError, "positive"),
        (lambda: session.push_audio(good, float("nan")), ValueError, "positive"),
        (lambda: session.push_audio(good, "16000"), TypeError, "must be a number"),
        (lambda: session.push_audio(np.array([0.1, np.nan], np.float32), 16000), ValueError, "NaN"),
        (lambda: session.push_audio(np.zeros((2, 2, 2), np.float32), 16000), ValueError, "samples"),
        (lambda: session.push_audio(np.zeros((2, 160), np.float32), 16000), ValueError, "transpose"),
        (lambda: session.push_audio(np.array(["a", "b"]), 16000), TypeError, "numbers"),
        (lambda: session.push_audio(np.ones(4, bool), 16000), TypeError, "booleans"),
        (lambda: session.push_audio(b"\x00\x01", 16000), TypeError, "numpy array"),
        (lambda: session.push_frame(np.zeros((4, 4), np.uint8)), ValueError, "RGB"),
        (lambda: session.push_frame(np.zeros((0, 4, 3), np.uint8)), ValueError, "RGB"),
        (lambda: session.push_frame(np.zeros((4, 4, 3), np.float32)), TypeError, "uint8"),
    ]
    for push, error, says in cases:
        with pytest.raises(error, match=says):
            push()
    assert session.push_audio(good, 44_100.0) is False  # valid, but not started: dropped
    replay = LiveSession.demo(asr=None, device="cpu", checkpoint=checkpoint)
    with pytest.raises(RuntimeError, match='microphone="push"'):
        replay.push_audio(good, 16_000)
    with pytest.raises(RuntimeError, match='camera="push"'):
        replay.push_frame(np.zeros((4, 4, 3), np.uint8))


def test_readme_no_device_example_runs_as_written(tmp_path):
    import soundfile as sf

    (block,) = [b for b in embedding_blocks() if 'microphone="push"' in b]
    audio, spans = speech_at_44k(ravdess_clips(1))
    sf.write(str(tmp_path / "speech.wav"), audio, 44_100)  # "a recording of your own"
    (tmp_path / "example.py").write_text(block)
    result = subprocess.run([sys.executable, "example.py"], check=False, capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    emotions = [e for e in events if e["type"] == "emotion"]
    assert len(emotions) == len(spans)
    for event, (start, end, sentence) in zip(emotions, spans):
        assert "audio" in event["modalities"] and abs(event["end"] - end) < 0.6
        # the default speech-to-text heard the sentence
        assert event["transcript"] and event["transcript"].lower().strip(".!") == sentence.lower()


def test_readme_device_example_fails_clearly_within_5_s_without_a_device(tmp_path):
    from momke.realtime import DeviceUnavailable
    from momke.realtime.sources.devices import check_device_opens

    try:
        check_device_opens("audio", "default")
        pytest.skip("this machine has a microphone: the example would run live")
    except DeviceUnavailable:  # no microphone here: the case this test is about
        pass
    (block,) = [b for b in embedding_blocks() if 'microphone="default"' in b]
    (tmp_path / "example.py").write_text(block)
    timed = ("import time, momke.realtime.session\n"  # the imports are not what is timed
             "began = time.monotonic()\n"
             "try:\n    exec(open('example.py').read())\n"
             "finally:\n    print(f'ELAPSED {time.monotonic() - began:.2f}', flush=True)\n")
    result = subprocess.run([sys.executable, "-c", timed], check=False, capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode != 0
    elapsed = float(re.search(r"ELAPSED (\S+)", result.stdout).group(1))
    assert elapsed < 5, elapsed
    assert "DeviceUnavailable: the microphone 'default' does not open" in result.stderr
    assert 'LiveSession(microphone="push")' in result.stderr  # and what to do instead
