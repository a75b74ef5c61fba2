"""Event delivery, the last stage: `Delivery.dispatch(event)` hands one event to the JSON-lines
log, the host's callbacks and the `events()` queue. `Outbox` holds what the stages emitted until
the runner dispatches it, in the order it was emitted.

Stages never run host code: emitting is a post that never waits, so a slow callback cannot stall
a capture thread, and every callback runs on the one thread that dispatches ("momke-events").
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from .buffers import ChunkQueue
from .events import ReadyEvent

log = logging.getLogger(__name__)

END = object()  # dispatched last: events() ends, the session is finished


def erase(event, modality: str):
    """What a privacy switch erases from an event not yet delivered: switching text off erases
    its transcript (the only captured content an event carries; audio and visual appear in
    events only as labels, probabilities and loads)."""
    if modality == "text" and getattr(event, "transcript", None) is not None:
        return dataclasses.replace(event, transcript=None)
    return event


class Outbox:
    """Events emitted and not yet dispatched, with their wall times; thread-safe, never blocks a
    poster. Implements `forget(modality)` (privacy) like every stage holding data."""

    def __init__(self) -> None:
        self._pending: collections.deque = collections.deque()  # (event, wall time)
        self._condition = threading.Condition()

    def post(self, event) -> None:
        with self._condition:
            self._pending.append((event, time.time()))
            self._condition.notify_all()

    def take(self, timeout: float | None = None):
        """The oldest (event, wall time), waiting up to `timeout` s for one (0: not at all); None if none."""
        with self._condition:
            if not self._pending and timeout:
                self._condition.wait(timeout)
            return self._pending.popleft() if self._pending else None

    def replace(self, change: Callable[[object], object]) -> None:
        """Replace every event not yet dispatched by change(event)."""
        with self._condition:
            self._pending = collections.deque((change(e), w) for e, w in self._pending)

    def forget(self, modality: str) -> None:
        self.replace(lambda event: erase(event, modality))

    def pending(self) -> list:
        """The events not yet dispatched (for inspection)."""
        with self._condition:
            return [e for e, _ in self._pending]

    def wake(self) -> None:
        """Wake a take() waiting (the runner is closing)."""
        with self._condition:
            self._condition.notify_all()


class Delivery:
    """The dispatch stage: `dispatch(event, wall_time)` writes the log line, runs the host's
    callbacks (a failing one is logged, the others still run), then queues the event for
    `events()`. END ends `events()` and marks the session finished."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.callbacks: list[Callable] = []
        self.queue = ChunkQueue(maxsize=10_000)  # for events(): the newest are kept
        self.lock = threading.Lock()  # guards the log file
        self.log_file = None
        self.finished = threading.Event()  # END was dispatched
        self.ready = threading.Event()  # the ReadyEvent was dispatched

    def dispatch(self, event, wall_time: float) -> None:
        if event is END:
            self.queue.put(END)
            self.finished.set()
            return
        with self.lock:
            if self.log_file is not None:
                line = {**event.to_dict(), "session": self.session_id, "wall_time": iso(wall_time)}
                self.log_file.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
                self.log_file.flush()
        for callback in list(self.callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("event callback failed")
        self.queue.put(event)
        if isinstance(event, ReadyEvent):
            self.ready.set()

    def forget(self, modality: str) -> None:
        """Privacy: events delivered but not yet read from events() lose what `modality` erases."""
        self.queue.replace(lambda event: erase(event, modality))


def iso(wall_time: float) -> str:
    return datetime.fromtimestamp(wall_time, timezone.utc).isoformat(timespec="milliseconds")
