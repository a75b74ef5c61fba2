"""The one clock every source stamps its data with: seconds since the session started.

Monotonic (never jumps with the wall clock), shared by the microphone, the camera, pushed text
and file replay, so an utterance's [start, end] selects the right frames and words whatever
thread delivered them. A replay paced "as fast as possible" stamps media time on this same
scale (it starts at 0 with the session), so its times read like a live session's.
"""

from __future__ import annotations

import threading
import time


class SessionClock:
    def __init__(self) -> None:
        self._origin = time.monotonic()

    def restart(self, origin: float | None = None) -> None:
        """Time 0 is now (called when a session starts), or the given time.monotonic() value."""
        self._origin = time.monotonic() if origin is None else origin

    def now(self) -> float:
        return time.monotonic() - self._origin

    def wait_until(self, t: float, stop: threading.Event | None = None) -> bool:
        """Sleep until now() >= t; False if `stop` was set first."""
        while True:
            remaining = t - self.now()
            if remaining <= 0:
                return True
            if stop is None:
                time.sleep(remaining)
            elif stop.wait(remaining):
                return False
