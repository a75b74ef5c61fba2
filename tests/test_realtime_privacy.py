"""Privacy switches: a modality switched off is not captured, reaches no extractor, and nothing
of it is held in buffers, in the conversation context, in events or in the JSON-lines log."""

from __future__ import annotations

import functools
import json
import threading

import pytest
from momke.realtime import EmotionEvent, LiveSession, StatusEvent
from momke.realtime.asr import ASRBackend
from realtime_support import (
    CountingCamera,
    replay_session,
    session_threads,
    spy_model,
    spy_profile,
    wait_for,
)

replay = functools.partial(replay_session, read_transcript=True)


@pytest.fixture(scope="module")
def conversation(recorded_conversation):
    return recorded_conversation(4)


def test_disabled_from_the_start_never_captured_nor_extracted(conversation, tmp_path):
    profile = spy_profile()
    log = tmp_path / "log.jsonl"
    session = replay(conversation, profile, disabled=("visual", "text"), log_path=log)
    frames_seen = []
    session.on_event(lambda e: frames_seen.append(len(session.frames)))
    with session:
        events = list(session.events())
    assert profile.visual.calls == [] and profile.text.calls == []
    assert set(frames_seen) == {0} and len(session.texts) == 0
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert len(emotions) == 4 and all(e.modalities == ["audio"] and e.transcript is None for e in emotions)
    logged = log.read_text()
    assert "door" not in logged  # no transcript word reaches the log
    assert [json.loads(x)["state"] for x in logged.splitlines() if '"visual"' in x and '"status"' in x] == ["disabled"]
    assert session.status()["visual"] == "disabled"
    assert all(u.frames == [] and u.transcript is None for u in profile.audio.calls)


def test_switching_off_mid_session_clears_everything_held(conversation, tmp_path):
    profile = spy_profile()
    log = tmp_path / "log.jsonl"
    session = replay(conversation, profile, log_path=log)
    switched = threading.Event()
    held_after_switch = {}

    def on_event(event):
        # Switch text and visual off from the callback after the second utterance.
        if isinstance(event, EmotionEvent) and event.utterance_id == 1:
            session.set_enabled("text", False)
            session.set_enabled("visual", False)
            held_after_switch.update(
                frames=len(session.frames), texts=len(session.texts),
                context_text=session.context.holds("text"), context_visual=session.context.holds("visual"),
                queued=[(u.frames, u.transcript) for u in session.utterances.items() if hasattr(u, "frames")],
            )
            switched.set()

    session.on_event(on_event)
    with session:
        events = list(session.events())
    assert switched.is_set()
    assert held_after_switch["frames"] == 0 and held_after_switch["texts"] == 0
    assert not held_after_switch["context_text"] and not held_after_switch["context_visual"]
    assert all(frames == [] and transcript is None for frames, transcript in held_after_switch["queued"])
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert [e.modalities for e in emotions] == [["audio", "text", "visual"]] * 2 + [["audio"]] * 2
    assert len(profile.text.calls) == 2 and len(profile.visual.calls) == 2
    assert all(u.frames == [] and u.transcript is None for u in profile.audio.calls[2:])
    # The log after the switch holds no transcript; the later utterances' words never appear.
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    later = [x for x in lines if x["type"] == "emotion" and x["utterance_id"] >= 2]
    assert later and all(x["transcript"] is None for x in later)
    later_words = {conversation["utterances"][i][2] for i in (2, 3)} - {conversation["utterances"][i][2] for i in (0, 1)}
    assert not any(words in log.read_text() for words in later_words)
    states = [(e.modality, e.state) for e in events if isinstance(e, StatusEvent)]
    assert ("text", "disabled") in states and ("visual", "disabled") in states
    assert wait_for(lambda: session_threads() == [], 5)


def test_switching_back_on_resumes_capture(conversation):
    profile = spy_profile()
    session = replay(conversation, profile, disabled=("visual",))

    def on_event(event):
        if isinstance(event, EmotionEvent) and event.utterance_id == 1:
            session.set_enabled("visual", True)

    session.on_event(on_event)
    with session:
        events = list(session.events())
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert "visual" not in emotions[0].modalities and "visual" not in emotions[1].modalities
    assert "visual" in emotions[-1].modalities


def test_audio_off_still_follows_the_conversation_through_text(conversation):
    profile = spy_profile()
    session = replay(conversation, profile, disabled=("audio",))
    with session:
        events = list(session.events())
    assert profile.audio.calls == [] and len(session.audio_queue) == 0
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    expected = conversation["utterances"]
    assert len(emotions) == len(expected)
    for event, (start, end, text) in zip(emotions, expected):
        assert event.modalities == ["text", "visual"] and event.transcript == text
        assert abs(event.start - start) < 1e-3 and abs(event.end - end) < 1e-3


def test_unknown_modality_is_refused(conversation):
    session = replay(conversation, spy_profile())
    with pytest.raises(ValueError, match="unknown modality"):
        session.set_enabled("smell", False)


def test_privacy_switch_from_a_status_callback_does_not_deadlock(conversation):
    profile = spy_profile()
    profile.visual.fail_on = {1: "none"}  # "no face" on the second utterance: a status event
    session = replay(conversation, profile)

    def on_event(event):
        if isinstance(event, StatusEvent) and event.reason == "no face in view":
            session.set_enabled("visual", False)  # from inside the pipeline's own thread

    session.on_event(on_event)
    with session:
        events = list(session.events())
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert len(emotions) == 4 and all("visual" not in e.modalities for e in emotions[1:])
    assert not session.context.holds("visual")


# ------------------------------------------------------------------------------------------------
# forget(modality): every stage, inspected after a switch


def _thread_locals_holding(modality: str) -> list[str]:
    """Arrays of `modality` referenced by a local variable of any session thread."""
    import sys

    import numpy as np

    found = []
    names = {t.ident: t.name for t in threading.enumerate() if t.name.startswith("momke-")}
    for ident, frame in sys._current_frames().items():
        if ident not in names:
            continue
        while frame is not None:
            for name, value in list(frame.f_locals.items()):
                values = list(value) if isinstance(value, (list, tuple)) else [value]
                for holder in list(values):  # chunks, jobs, utterances: what they carry
                    frames = getattr(holder, "frames", None)
                    values += [getattr(holder, "samples", None), getattr(holder, "audio", None),
                               *(frames if isinstance(frames, list) else [])]
                for v in values:
                    if isinstance(v, np.ndarray) and (
                        (modality == "audio" and v.dtype == np.float32 and v.ndim == 1 and v.size > 512)
                        or (modality == "visual" and v.dtype == np.uint8 and v.ndim == 3)
                    ):
                        found.append(f"{names[ident]}:{frame.f_code.co_name}:{name}")
            frame = frame.f_back
    return found


def held_of(session, modality: str) -> list[str]:
    """Every place of the engine that still holds data of `modality` (empty: nothing)."""
    held = []
    if modality == "audio":
        if any(len(c.samples) for c in session.audio_queue.items() if hasattr(c, "samples")):
            held.append("audio queue")
        segmenter = session.segmentation.segmenter
        if segmenter._buffer.end > segmenter._buffer.start or float(segmenter._context.abs().sum()) > 0:
            held.append("segmenter")
        for capture in session._captures:
            if capture.modality == "audio" and capture._resampler is not None:
                held.append("audio capture resampler")
        worker = session.asr_worker
        if worker is not None and any(j is not None and j.audio is not None for j in (worker._job, worker._queued)):
            held.append("ASR worker")
    if modality == "visual":
        if len(session.frames):
            held.append("frame buffer")
        for capture in session._captures:
            if capture.modality == "visual" and capture.frame_gate._thumbnail is not None:
                held.append("camera thumbnail")
    if modality == "text":
        if len(session.texts):
            held.append("text buffer")
        events = session._outbox.pending() + session._events.items()
        if any(getattr(e, "transcript", None) for e in events):
            held.append("event queues")
    for u in session.utterances.items():
        if hasattr(u, "forget") and {"audio": u.audio is not None, "visual": bool(u.frames),
                                     "text": u.transcript is not None}[modality]:
            held.append(f"waiting utterance {u.id}")
    if session.context.holds(modality):
        held.append("context")
    return held + _thread_locals_holding(modality)


class SlowASR(ASRBackend):
    """Transcribes slowly, so a switch finds it holding an utterance's samples."""

    name = "slow"

    def transcribe(self, audio):
        import time

        time.sleep(0.3)
        return "words"


@pytest.mark.parametrize("modality", ["audio", "visual", "text"])
def test_after_a_switch_no_stage_holds_data_of_that_modality(conversation, modality):
    profile = spy_profile()
    kwargs = {"asr": SlowASR()} if modality == "audio" else {"transcript": conversation["transcript"], "asr": "none"}
    session = LiveSession(input_file=conversation["path"], realtime=False, checkpoint=spy_model(),
                          profile=profile, **kwargs)
    before, after = {}, {}

    def on_event(event):
        if isinstance(event, EmotionEvent) and event.utterance_id == 1 and not before:
            before["held"] = held_of(session, modality)  # something is held before the switch
            session.set_enabled(modality, False)
            after["at_once"] = held_of(session, modality)
            # Capture and pipeline threads let go within one read / one item.
            after["soon"] = wait_for(lambda: held_of(session, modality) == [], 2)
            after["left"] = held_of(session, modality)

    session.on_event(on_event)
    with session:
        events = list(session.events())
    assert before["held"], "the test needs data of the modality in flight before the switch"
    stores = [h for h in after["at_once"] if ":" not in h]  # the stores forget at once ...
    assert stores == [], stores
    assert after["soon"], after["left"]  # ... threads within moments
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert all(modality not in e.modalities for e in emotions[2:])
    if modality == "text":
        assert all(e.transcript is None for e in emotions[2:])


def test_a_camera_switched_off_from_the_start_is_never_opened_and_opens_when_switched_on():
    camera = CountingCamera()
    session = LiveSession(camera=camera, asr="none", checkpoint=spy_model(), profile=spy_profile(),
                          disabled=("visual",))
    with session:
        assert session.wait_ready(10)
        import time

        time.sleep(0.5)
        assert camera.opens == 0 and len(session.frames) == 0
        session.set_enabled("visual", True)
        assert wait_for(lambda: camera.opens == 1 and len(session.frames) > 0, 5)
        session.set_enabled("visual", False)
        assert len(session.frames) == 0
    assert wait_for(lambda: session_threads() == [], 5)
