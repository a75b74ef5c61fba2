"""Event delivery: one thread, "momke-events", hands every event to the JSON-lines log, the
host's callbacks and the `events()` queue, in the order the stages emitted them.

Stages never run host code: emitting is a put that never waits, so a slow callback cannot stall
a capture thread, and every callback runs on this one thread. A fast replay's processor may wait
until its event was delivered (`wait_delivered`): that keeps a replay deterministic (a callback
that flips a switch takes effect from the next utterance on) and is its back-pressure.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def erase(event, modality: str):
    """What a privacy switch erases from an event not yet delivered: switching text off erases
    its transcript (the only captured content an event carries; audio and visual appear in
    events only as labels, probabilities and loads)."""
    if modality == "text" and getattr(event, "transcript", None) is not None:
        return dataclasses.replace(event, transcript=None)
    return event


class EventDispatcher(threading.Thread):
    def __init__(self, deliver: Callable[[object, float], None]) -> None:
        """deliver(event, wall_time) runs on this thread for every posted event, in order."""
        super().__init__(name="momke-events", daemon=True)
        self._deliver = deliver
        self._pending: collections.deque = collections.deque()  # (sequence number, event, wall time)
        self._condition = threading.Condition()
        self._posted = 0
        self._delivered = 0
        self._closing = False

    def post(self, event) -> int:
        """Queue `event` for delivery (never waits); returns its sequence number."""
        with self._condition:
            self._posted += 1
            self._pending.append((self._posted, event, time.time()))
            self._condition.notify_all()
            return self._posted

    def wait_delivered(self, sequence: int, stop: threading.Event) -> bool:
        """Block until event `sequence` was delivered; False if `stop` was set or we closed first."""
        with self._condition:
            while self._delivered < sequence:
                if stop.is_set() or (self._closing and not self.is_alive()):
                    return False
                self._condition.wait(0.05)
            return True

    def replace(self, change: Callable[[object], object]) -> None:
        """Replace every event not yet delivered by change(event) (privacy)."""
        with self._condition:
            self._pending = collections.deque((n, change(e), w) for n, e, w in self._pending)

    def forget(self, modality: str) -> None:
        self.replace(lambda event: erase(event, modality))

    def pending(self) -> list:
        """The events not yet delivered (for inspection)."""
        with self._condition:
            return [e for _, e, _ in self._pending]

    def close(self) -> None:
        """Deliver what is queued, then end the thread."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()

    def run(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                if not self._pending:
                    return
                sequence, event, wall_time = self._pending.popleft()
            try:
                self._deliver(event, wall_time)
            except Exception:  # a failing sink must not end delivery
                log.exception("delivering an event failed")
            event = None  # hold nothing (a transcript) while waiting for the next one
            with self._condition:
                self._delivered = sequence
                self._condition.notify_all()
