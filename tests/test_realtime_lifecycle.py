"""The session's lifecycle as a host sees it: a ready event and wait_ready(), warm-up of the
enabled modalities only, stop() at any moment within its timeout with no thread left, every
callback on the one event thread, and a JSON-lines log that names its session."""

from __future__ import annotations

import json
import threading
import time

import pytest
from momke.realtime import EmotionEvent, LiveSession, ReadyEvent, StatusEvent
from realtime_support import FakeMicrophone, session_threads, spy_model, spy_profile, wait_for


@pytest.fixture(scope="module")
def conversation(recorded_conversation):
    return recorded_conversation(2)


def chat_session(profile, **kwargs):
    """No devices, no ASR: a chat box's session (text pushed by the host)."""
    return LiveSession(asr="none", checkpoint=spy_model(), profile=profile, **kwargs)


def test_ready_at_once_while_only_the_enabled_extractors_load_in_parallel_then_pushed_text_is_answered():
    profile = spy_profile()
    for extractor in (profile.audio, profile.text, profile.visual):
        extractor.warm_up_s = 0.3
    session = chat_session(profile, disabled=("visual",))
    events = []
    session.on_event(events.append)
    began = time.monotonic()
    with session:
        # Ready means capturing: at once, not after the extractors' warm-up.
        assert session.wait_ready(timeout=10)
        assert time.monotonic() - began < 0.3 or profile.audio.warmups + profile.text.warmups < 2
        ready = [e for e in events if isinstance(e, ReadyEvent)]
        assert len(ready) == 1 and ready[0].modalities == ["audio", "text"]
        pushed = time.monotonic()
        assert session.push_text("I am so happy")  # its extractor may still be loading: the utterance waits
        assert wait_for(lambda: any(isinstance(e, EmotionEvent) for e in events), 5)
        assert time.monotonic() - pushed < 2.0  # the first answer within 2 s
        assert (profile.audio.warmups, profile.text.warmups, profile.visual.warmups) == (1, 1, 0)
        # A modality switched on later is loaded then, while the session is idle.
        session.set_enabled("visual", True)
        assert wait_for(lambda: profile.visual.warmups == 1, 5)
    emotion = next(e for e in events if isinstance(e, EmotionEvent))
    assert emotion.transcript == "I am so happy" and emotion.modalities == ["text"] and emotion.segmentation == "text"
    # Status events announcing the configuration come before ready (sensors "loading", never a
    # red "missing" for a modality that is merely warming up); the answer after it.
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ReadyEvent") < kinds.index("EmotionEvent")
    before = events[: kinds.index("ReadyEvent")]
    assert all(isinstance(e, StatusEvent) for e in before)
    assert {(e.modality, e.state) for e in before} >= {("audio", "loading"), ("text", "missing")}
    assert ("text", "no ASR: waiting for pushed text") in {(e.modality, e.reason) for e in before}  # it wins over loading
    audio = [e.state for e in events if isinstance(e, StatusEvent) and e.modality == "audio"]
    assert audio[0] == "loading" and "missing" not in audio[: audio.index("loading") + 1]


def test_text_pushed_before_ready_is_answered_after_it():
    profile = spy_profile()
    profile.text.warm_up_s = 0.5
    session = chat_session(profile)
    events = []
    session.on_event(events.append)
    with session:
        assert session.push_text("hello early")  # still warming up
        assert session.wait_ready(10)
        assert wait_for(lambda: any(isinstance(e, EmotionEvent) for e in events), 3)
    assert next(e for e in events if isinstance(e, EmotionEvent)).transcript == "hello early"


@pytest.mark.parametrize("moment", ["warm-up", "capture"])
def test_stop_at_any_moment_returns_within_a_second_and_leaves_no_thread(conversation, moment):
    profile = spy_profile()
    for extractor in (profile.audio, profile.text, profile.visual):
        extractor.warm_up_s = 0.4  # 1.2 s of warm-up in all: stop() must not wait for it
    mic = FakeMicrophone(quiet_noise(), rate=16_000)
    session = LiveSession(microphone=mic, asr="none", checkpoint=spy_model(), profile=profile)
    session.start()
    if moment == "warm-up":
        time.sleep(0.2)
        assert session.ready and profile.audio.warmups == 1  # capturing while the extractors load
        assert session.status()["audio"] in ("loading", "missing")
    else:
        assert session.wait_ready(10) and wait_for(lambda: mic.index > 10, 5)
    began = time.monotonic()
    session.stop()
    assert time.monotonic() - began < 1.0
    assert session_threads() == [], session_threads()


def test_stop_after_a_start_cut_short_leaves_no_thread_and_raises_nothing(monkeypatch):
    """Ctrl-C inside start(), after its threads were made but before all were started (momke-live
    used to end in "cannot join thread before it is started" instead of exit 130)."""
    from momke.realtime import runner

    spawn = runner.Runner._spawn
    started = []

    def interrupted(self, name, target):  # the event thread starts, then Ctrl-C
        if started:
            raise KeyboardInterrupt
        started.append(name)
        return spawn(self, name, target)

    monkeypatch.setattr(runner.Runner, "_spawn", interrupted)
    session = chat_session(spy_profile())
    with pytest.raises(KeyboardInterrupt):
        session.start()
    session.stop()  # joins only the threads that run
    assert session_threads() == [], session_threads()


def quiet_noise():
    """Five seconds of faint noise: a working microphone in a quiet room."""
    import numpy as np

    return (0.01 * np.random.default_rng(0).standard_normal(16_000 * 5)).astype(np.float32)


def test_every_callback_runs_on_the_event_thread(conversation):
    mic = FakeMicrophone(quiet_noise(), rate=16_000)
    session = LiveSession(microphone=mic, asr="none", checkpoint=spy_model(), profile=spy_profile())
    threads = []
    session.on_event(lambda event: threads.append((type(event).__name__, threading.current_thread().name)))
    with session:
        session.set_enabled("visual", False)  # a status event caused by the caller's thread
        assert session.wait_ready(10)
        session.push_text("a typed line")  # an emotion event caused by the caller's thread
        assert wait_for(lambda: any(kind == "EmotionEvent" for kind, _ in threads), 5)
    # A replay: status events from capture threads, emotions from the pipeline.
    replay = LiveSession(input_file=conversation["path"], transcript=conversation["transcript"], realtime=False,
                         asr="none", checkpoint=spy_model(), profile=spy_profile())
    replay.on_event(lambda event: threads.append((type(event).__name__, threading.current_thread().name)))
    with replay:
        assert replay.wait(30)
    kinds = {kind for kind, _ in threads}
    assert {"StatusEvent", "EmotionEvent", "ReadyEvent"} <= kinds
    assert {name for _, name in threads} == {"momke-events"}


def test_log_has_a_header_and_every_line_names_its_session_and_wall_time(conversation, tmp_path):
    log = tmp_path / "events.jsonl"
    ids = []
    for _ in range(2):  # two runs appending to one file stay apart
        session = LiveSession(input_file=conversation["path"], transcript=conversation["transcript"], realtime=False,
                              asr="none", checkpoint=spy_model(), profile=spy_profile(), log_path=log)
        before = time.time()
        with session:
            assert session.wait(30)
        ids.append(session.session_id)
    assert ids[0] != ids[1]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    headers = [x for x in lines if x["type"] == "session"]
    assert [h["session"] for h in headers] == ids
    assert all(h["version"] and h["input"] == str(conversation["path"]) for h in headers)
    from datetime import datetime

    for line in lines:
        assert line["session"] in ids
        stamp = datetime.fromisoformat(line["wall_time"]).timestamp()
        assert before - 60 < stamp < time.time() + 1
    second = [x for x in lines if x["session"] == ids[1]]
    assert second[0]["type"] == "session"  # the header opens each session's lines
    emotions = [x for x in second if x["type"] == "emotion"]
    assert [x["utterance_id"] for x in emotions] == list(range(len(emotions))) and len(emotions) == 2
