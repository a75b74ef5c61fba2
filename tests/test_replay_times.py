"""A fast replay's status events carry media times that never go back (the replay clock once fell
back to 0.0 when every stream had ended, so the last status event said time 0.0)."""

from __future__ import annotations

import threading

from momke.realtime import LiveSession, StatusEvent
from momke.realtime.clock import SessionClock
from momke.realtime.sources import ReplayPacer
from realtime_support import spy_model, spy_profile


def test_replay_clock_keeps_its_time_once_every_stream_has_ended():
    pacer = ReplayPacer(SessionClock(), realtime=False, streams=("audio", "video"))
    stop = threading.Event()
    assert pacer.wait("audio", 2.5, stop) and pacer.wait("video", 2.4, stop)
    pacer.finish("audio")
    assert pacer.now() == 2.5  # not the video's 2.4: the time never goes back
    pacer.finish("video")
    assert pacer.now() == 2.5  # the furthest any stream got, not 0.0


def test_fast_demo_replay_stamps_every_timed_event_in_order():
    profile = spy_profile()
    # The face comes and goes: the last utterance's verdict is announced after the file ended.
    profile.extractor("visual").fail_on = {i: "none" for i in range(0, 200, 2)}
    session = LiveSession.demo(realtime=False, asr="none", checkpoint=spy_model(), profile=profile)
    with session:
        events = list(session.events())
    times = [e.time for e in events if hasattr(e, "time")]  # status and ready events
    assert len([e for e in events if isinstance(e, StatusEvent)]) >= 4, times
    assert times == sorted(times), times
    emotions = [e for e in events if e.type == "emotion"]
    assert emotions and times[-1] >= emotions[-2].end  # the last verdict came after the file ended: not 0.0
