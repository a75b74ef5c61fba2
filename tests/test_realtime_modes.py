"""How utterances are cut when speech alone does not: pushed or replayed text that no speech
utterance takes becomes an utterance of its own (never lost), and with neither speech nor text
(camera only) the face is judged over fixed windows."""

from __future__ import annotations

import itertools
import json

import pytest
from momke.realtime import EmotionEvent, LiveSession
from momke.realtime.session import DEMO_DIR
from realtime_support import spy_model, spy_profile, wait_for


@pytest.fixture(scope="module")
def conversation(recorded_conversation):
    return recorded_conversation(2)


def emotions_of(session) -> list[EmotionEvent]:
    with session:
        events = list(session.events())
    return [e for e in events if isinstance(e, EmotionEvent)]


def test_text_outside_every_speech_utterance_becomes_its_own_utterance(conversation, tmp_path):
    (s0, e0, text0), (s1, e1, text1) = conversation["utterances"]
    # Words before anyone speaks and in the pause between the two utterances: no speech
    # utterance overlaps them (they are further than 0.5 s from both).
    gap = e0 + 1.0
    assert gap + 0.2 + 0.5 < s1 - 0.1 - 0.5, "the pause between the clips is too short for this test"
    entries = [{"start": 0.05, "end": 0.2, "text": "hi there"},
               {"start": s0, "end": e0, "text": text0},
               {"start": gap, "end": gap + 0.2, "text": "in the pause"},
               {"start": s1, "end": e1, "text": text1}]
    transcript = tmp_path / "transcript.json"
    transcript.write_text(json.dumps(entries))
    emotions = emotions_of(LiveSession(input_file=conversation["path"], transcript=transcript, realtime=False,
                                       asr="none", checkpoint=spy_model(), profile=spy_profile()))
    assert [(e.transcript, e.segmentation) for e in emotions] == [
        ("hi there", "text"), (text0, "speech"), ("in the pause", "text"), (text1, "speech")]
    assert [e.utterance_id for e in emotions] == [0, 1, 2, 3]
    assert [e.modalities for e in emotions] == [["text", "visual"], ["audio", "text", "visual"]] * 2
    assert emotions[2].start >= emotions[1].end and emotions[2].end == pytest.approx(gap + 0.2)


def test_text_pushed_during_silence_is_answered_and_during_speech_joins_the_utterance(conversation):
    session = LiveSession(input_file=conversation["path"], realtime=True, asr="none", checkpoint=spy_model(),
                          profile=spy_profile(), disabled=("visual",))
    (s0, e0, _), _ = conversation["utterances"]
    events = []
    session.on_event(events.append)
    with session:
        assert session.wait_ready(10)
        assert wait_for(lambda: session.timeline_now() > (s0 + e0) / 2, 10)
        assert session.push_text("said while speaking")
        assert wait_for(lambda: session.timeline_now() > e0 + 1.0, 10)
        pushed_at = session.timeline_now()
        assert session.push_text("typed in the pause")
        assert wait_for(lambda: sum(isinstance(e, EmotionEvent) for e in events) >= 2, 10)
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert emotions[0].transcript == "said while speaking" and emotions[0].segmentation == "speech"
    assert emotions[1].transcript == "typed in the pause" and emotions[1].segmentation == "text"
    assert emotions[1].modalities == ["text"] and emotions[1].end == pytest.approx(pushed_at, abs=0.05)


def test_camera_only_judges_the_face_over_fixed_windows():
    video = DEMO_DIR / "conversation.mp4"
    profile = spy_profile()
    session = LiveSession.demo(realtime=False, asr="none", checkpoint=spy_model(), profile=profile,
                               disabled=("audio", "text"))
    emotions = emotions_of(session)
    assert profile.audio.calls == [] and profile.text.calls == []
    assert len(emotions) >= 15 and all(e.segmentation == "window" and e.modalities == ["visual"] for e in emotions)
    assert emotions[0].start == 0.0
    for a, b in itertools.pairwise(emotions):
        assert b.start == pytest.approx(a.end)  # windows tile the timeline
    assert all(e.end - e.start == pytest.approx(2.0) for e in emotions[:-1])
    assert video.is_file()
    # The window length is the host's to choose.
    longer = emotions_of(LiveSession.demo(realtime=False, asr="none", checkpoint=spy_model(), profile=spy_profile(),
                                          disabled=("audio", "text"), window_s=3.0))
    assert all(e.end - e.start == pytest.approx(3.0) for e in longer[:-1])
    assert len(longer) < len(emotions)


def test_camera_only_is_off_while_text_cuts_utterances(conversation):
    # Audio off but a transcript: text drives, no windows (the face is judged per text item).
    emotions = emotions_of(LiveSession(input_file=conversation["path"], transcript=conversation["transcript"],
                                       realtime=False, asr="none", checkpoint=spy_model(), profile=spy_profile(),
                                       disabled=("audio",)))
    assert [e.segmentation for e in emotions] == ["text", "text"]


def test_a_microphone_gone_quiet_for_good_leaves_the_camera_judging_windows():
    import numpy as np
    from realtime_support import CountingCamera, FakeMicrophone

    mic = FakeMicrophone(np.zeros(16_000 * 30, np.float32), rate=16_000)  # muted: only zeros
    session = LiveSession(microphone=mic, camera=CountingCamera(), asr="none", checkpoint=spy_model(),
                          profile=spy_profile(), window_s=1.0)
    events = []
    session.on_event(events.append)
    with session:
        assert wait_for(lambda: sum(isinstance(e, EmotionEvent) for e in events) >= 2, 10)
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert all(e.segmentation == "window" and e.modalities == ["visual"] for e in emotions)
    assert all(e.end - e.start == pytest.approx(1.0) for e in emotions)


def test_a_real_time_replay_playing_from_an_earlier_origin_catches_up_and_cuts_the_same_utterances(
        conversation, tmp_path):
    """momke-live starts a real-time replay's clock at launch: the seconds spent loading become a
    backlog released at once. Text must still join its speech, and frames their utterance, as
    in a fast replay (the VAD and the video lag the clock while they catch up)."""
    import time

    (s0, e0, text0), (s1, e1, text1) = conversation["utterances"]
    transcript = tmp_path / "transcript.json"
    transcript.write_text(json.dumps([{"start": s0, "end": e0, "text": text0}, {"start": s1, "end": e1, "text": text1}]))

    def run(**pace) -> list[EmotionEvent]:
        return emotions_of(LiveSession(input_file=conversation["path"], transcript=transcript, asr="none",
                                       checkpoint=spy_model(), profile=spy_profile(), **pace))

    fast = run(realtime=False)
    backlog_s = e0 + 2.0  # the first utterance is over (and past the text grace) when capture begins
    caught_up = run(realtime=True, clock_origin=time.monotonic() - backlog_s)
    assert [(e.transcript, e.segmentation, e.modalities) for e in caught_up] == \
        [(text0, "speech", ["audio", "text", "visual"]), (text1, "speech", ["audio", "text", "visual"])]
    for late, reference in zip(caught_up, fast, strict=True):
        assert (late.start, late.end) == pytest.approx((reference.start, reference.end), abs=0.05)
