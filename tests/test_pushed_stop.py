"""Pushed devices (realtime/sources/browser.py) are interruptible: stop() ends every thread at
once, even while the capture threads wait in read() for a push that never comes."""

from __future__ import annotations

import time

from momke.realtime import LiveSession, StatusEvent
from momke.realtime.sources.browser import PushedCamera, PushedMicrophone
from realtime_support import session_threads, spy_model, spy_profile, wait_for


def test_stop_ends_every_thread_promptly_while_pushed_devices_wait_for_data():
    # Long read timeouts: a capture thread blocked in read() would outlive stop() by seconds.
    mic, cam = PushedMicrophone(read_timeout_s=30.0), PushedCamera(read_timeout_s=30.0)
    session = LiveSession(microphone=mic, camera=cam, asr="none", checkpoint=spy_model(), profile=spy_profile())
    events = []
    session.on_event(events.append)
    session.start()
    assert session.wait_ready(30)
    assert wait_for(lambda: mic._open and cam._open, 5)  # both capture threads are inside read()
    time.sleep(0.2)
    began = time.monotonic()
    session.stop(timeout=1.0)
    assert time.monotonic() - began < 1.5
    assert session_threads() == []  # no thread left running, not even for a moment after stop()
    # Closing the devices to stop them is not a device fault.
    assert not [e for e in events if isinstance(e, StatusEvent) and "closed" in e.reason]
