"""The live engine's small parts on their own: buffers, health states, the conversation
context, transcript loading and replay pacing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from momke.realtime.buffers import ChunkQueue, FrameBuffer, TextBuffer, TextItem
from momke.realtime.clock import SessionClock
from momke.realtime.context import ConversationContext, EmptyUtteranceError
from momke.realtime.events import StatusEvent
from momke.realtime.health import HealthMonitor
from momke.realtime.sources import ReplayPacer, load_transcript
from realtime_support import FAKE_DIMS, spy_model


def test_chunk_queue_drops_oldest_for_live_and_waits_for_replay():
    q = ChunkQueue(maxsize=2)
    for i in range(3):
        q.put(i)
    assert q.items() == [1, 2] and q.dropped == 1
    stop = threading.Event()
    done = []
    threading.Thread(target=lambda: done.append(q.put(3, block=True, stop=stop))).start()
    time.sleep(0.1)
    assert not done  # waiting for room
    assert q.get(0.1) == 1
    assert wait(lambda: done == [True]) and q.items() == [2, 3]
    q.clear()
    assert q.get(0.01) is None


def wait(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_frame_buffer_keeps_only_recent_frames():
    frames = FrameBuffer(keep_s=2.0, max_frames=100)
    for i in range(50):
        frames.add(i * 0.1, np.full((2, 2, 3), i, np.uint8))
    kept = frames.between(0, 10)
    assert kept[0][0] == pytest.approx(2.9) and kept[-1][0] == pytest.approx(4.9)
    assert [t for t, _ in frames.between(3.0, 3.35)] == pytest.approx([3.0, 3.1, 3.2, 3.3])
    frames.clear()
    assert len(frames) == 0


def test_text_buffer_gives_each_item_to_one_utterance():
    texts = TextBuffer()
    for text, start, end in [("old", 0.0, 0.5), ("hello there", 2.0, 3.0), ("pushed", 3.6, 3.6), ("later", 9.0, 10.0)]:
        texts.add(TextItem(text, start, end))
    assert texts.take(2.1, 3.3) == "hello there pushed"  # pushed within 0.5 s of the end counts
    assert texts.take(2.1, 3.3) is None  # taken once
    assert len(texts) == 2  # "old" is not dropped: no utterance took it, it will get its own
    assert [i.text for i in texts.take_before(2.1 - 0.5)] == ["old"]
    assert [i.text for i in texts.take_ready(now=5.0)] == []
    assert [i.text for i in texts.take_ready(now=10.5)] == ["later"] and len(texts) == 0


def test_health_transitions_are_events_and_content_verdicts_stick():
    events = []
    health = HealthMonitor(events.append, lambda: 1.5, disabled=("text",))
    health.report_data("visual")
    health.report_data("visual")  # no change, no event
    health.report_missing("visual", "no face in view", by="content")
    health.report_data("visual")  # frames keep coming: still no face
    assert health.state("visual") == "missing"
    health.report_data("visual", by="content")
    health.report_data("text")  # switched off: stays disabled
    health.set_enabled("text", False)
    assert [(e.modality, e.state, e.reason) for e in events] == [
        ("visual", "active", ""), ("visual", "missing", "no face in view"), ("visual", "active", ""),
        ("text", "disabled", "switched off"),
    ]
    assert all(isinstance(e, StatusEvent) and e.time == 1.5 for e in events)


def test_health_says_loading_while_an_extractor_loads_unless_its_device_has_a_fault():
    events = []
    health = HealthMonitor(events.append, lambda: 0.0)
    health.set_loading("audio", True)
    health.report_data("audio")  # capturing while the extractor loads: still loading
    health.set_loading("visual", True)
    health.report_missing("visual", "no camera")  # a device fault wins over loading
    health.set_loading("audio", False)
    health.set_loading("visual", False)
    assert [(e.modality, e.state, e.reason) for e in events] == [
        ("audio", "loading", "loading its extractor"), ("visual", "loading", "loading its extractor"),
        ("visual", "missing", "no camera"), ("audio", "active", ""),
    ]


def test_health_read_timeout_only_for_watched_active_devices():
    events = []
    health = HealthMonitor(events.append, lambda: 0.0)
    health.watch_timeout("audio", 0.05)
    health.report_data("audio")
    time.sleep(0.1)
    health.check_timeouts()
    health.check_timeouts()
    assert [(e.state, e.reason.split(":")[0]) for e in events] == [("active", ""), ("missing", "read timeout")]


def test_context_matches_the_full_causal_forward_and_stays_bounded():
    model = spy_model()
    context = ConversationContext(model, max_context=4)
    rng = np.random.default_rng(0)
    utterances = []
    for i in range(3):
        features = {"audio": rng.standard_normal(FAKE_DIMS[0]).astype(np.float32),
                    "text": None if i == 1 else rng.standard_normal(FAKE_DIMS[1]).astype(np.float32),
                    "visual": rng.standard_normal(FAKE_DIMS[2]).astype(np.float32)}
        utterances.append(features)
        prediction = context.step(features)
    # The newest prediction equals MoMKE.forward on the whole conversation (causal mode).
    batch = {m: torch.tensor(np.stack([u[m] if u[m] is not None else np.zeros(d, np.float32) for u in utterances]))[None]
             for m, d in zip(("audio", "text", "visual"), FAKE_DIMS)}
    mask = torch.tensor([[[u[m] is not None for m in ("audio", "text", "visual")] for u in utterances]])
    with torch.no_grad():
        expected = model(batch, mask).logits[0, -1].softmax(-1).numpy()
    assert np.allclose(list(prediction.probabilities.values()), expected, atol=1e-4)
    assert prediction.modalities == ["audio", "text", "visual"] and prediction.context_length == 3
    for _ in range(10):
        context.step({"audio": np.ones(FAKE_DIMS[0], np.float32)})
        assert len(context) <= 4
    with pytest.raises(EmptyUtteranceError):
        context.step({"audio": None, "text": None, "visual": None})


def test_context_forgets_a_modality():
    context = ConversationContext(spy_model(), max_context=8)
    for _ in range(3):
        context.step({"audio": np.ones(FAKE_DIMS[0], np.float32), "visual": np.ones(FAKE_DIMS[2], np.float32)})
    context.step({"visual": np.ones(FAKE_DIMS[2], np.float32)})
    context.forget("visual")
    assert not context.holds("visual") and context.holds("audio") and len(context) == 3  # the visual-only one is gone


def test_transcript_loading_checks_its_input(tmp_path):
    items = load_transcript([{"start": 2, "end": 3, "text": "b"}, {"start": 0, "end": 1, "text": "a"}])
    assert [i.text for i in items] == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read transcript"):
        load_transcript(bad)
    with pytest.raises(ValueError, match="needs"):
        load_transcript([{"start": 0, "text": "x"}])
    with pytest.raises(ValueError, match="bad times"):
        load_transcript([{"start": 2, "end": 1, "text": "x"}])


def test_fast_replay_streams_advance_in_lockstep():
    released = []
    pacer = ReplayPacer(SessionClock(), realtime=False, streams=("audio", "video"),
                        transcript=[TextItem("hi", 0.2, 0.4)], text_sink=released.append, slack_s=0.5)
    stop = threading.Event()
    assert pacer.wait("audio", 0.5, stop)  # within slack of the video stream (at 0)
    assert [i.text for i in released] == ["hi"]
    blocked = []
    thread = threading.Thread(target=lambda: blocked.append(pacer.wait("audio", 2.0, stop)))
    thread.start()
    time.sleep(0.1)
    assert not blocked  # audio may not run more than 0.5 s ahead of video
    pacer.wait("video", 1.6, stop)
    thread.join(1)
    assert blocked == [True] and pacer.now() == 2.0
    pacer.finish("audio")
    assert pacer.wait("video", 100.0, stop)  # a finished stream holds no one back


def test_fast_replay_with_a_slow_video_stream_never_deadlocks():
    pacer = ReplayPacer(SessionClock(), realtime=False, streams=("audio", "video"), slack_s=0.5)
    stop = threading.Event()

    def stream(name, step, end):
        t = 0.0
        while t < end:
            t += step
            assert pacer.wait(name, t, stop)
        pacer.finish(name)

    threads = [threading.Thread(target=stream, args=("audio", 0.064, 10.0)),
               threading.Thread(target=stream, args=("video", 1.0, 10.0))]  # a 1 fps video
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    stop.set()
    assert not any(thread.is_alive() for thread in threads)


def test_health_a_device_fault_wins_over_an_older_content_verdict():
    events = []
    health = HealthMonitor(events.append, lambda: 2.0)
    health.report_data("visual")
    health.report_missing("visual", "black frames (lens covered or camera dark)")
    health.report_data("visual", by="content")  # an older utterance's face was fine
    health.report_missing("visual", "black frames (lens covered or camera dark)")  # same cause: no event
    assert health.state("visual") == "missing" and health.reason("visual").startswith("black frames")
    health.report_missing("visual", "no face in view", by="content")
    health.report_data("visual")  # the camera recovers, but the last verdict was "no face"
    assert [(e.state, e.reason.split(" (")[0]) for e in events] == [
        ("active", ""), ("missing", "black frames"), ("missing", "no face in view")]
