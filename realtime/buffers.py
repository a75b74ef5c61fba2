"""Bounded, thread-safe stores between the capture threads and the pipeline.

Capture threads never wait on the pipeline (a live device would lose data or stall): the audio
queue drops its oldest chunk when full, the frame buffer keeps only the last few seconds of
frames, and the text buffer only text not yet given to an utterance. A file replayed as fast as
possible is the one producer allowed to wait (`block=True`): that is its back-pressure. Every
store implements `forget(modality)`, the privacy switch's one protocol: nothing of that modality
is left in it afterwards.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np

TEXT_TOLERANCE_S = 0.5  # text whose middle is this close to an utterance's span joins it


@dataclass
class AudioChunk:
    """Mono float32 samples at 16 kHz whose first sample was captured at `start` (session clock)."""

    samples: np.ndarray
    start: float

    def forget(self, modality: str) -> None:
        if modality == "audio":  # the chunk still carries its time (a replay's timeline)
            self.samples = np.zeros(0, dtype=np.float32)


@dataclass
class TextItem:
    """Words said between start and end (a pushed text has start == end == its push time)."""

    text: str
    start: float
    end: float

    @property
    def middle(self) -> float:
        return 0.5 * (self.start + self.end)


class ChunkQueue:
    """A bounded FIFO: put() never blocks a live producer (the oldest item is dropped instead)."""

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque = collections.deque()
        self.maxsize = maxsize
        self._condition = threading.Condition()
        self.dropped = 0

    def put(self, item, block: bool = False, stop: threading.Event | None = None, keep=None) -> bool:
        """Add item; with block=True wait for room (False, and the item not added, if `stop` was
        set or keep() turned False meanwhile)."""
        with self._condition:
            while block and len(self._items) >= self.maxsize:
                if (stop is not None and stop.is_set()) or (keep is not None and not keep()):
                    return False
                self._condition.wait(0.05)
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._condition.notify_all()
            return True

    def put_evicting(self, item):
        """Add item without waiting; returns the oldest item dropped to make room, else None."""
        with self._condition:
            evicted = None
            if len(self._items) >= self.maxsize:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._condition.notify_all()
            return evicted

    def get(self, timeout: float):
        """The oldest item, or None after `timeout` seconds with nothing to give."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            self._condition.notify_all()
            return item

    def clear(self) -> None:
        with self._condition:
            self._items.clear()
            self._condition.notify_all()

    def forget(self, modality: str) -> None:
        """Privacy: every queued item that holds data of `modality` drops it (items stay queued)."""
        with self._condition:
            for item in self._items:
                if hasattr(item, "forget"):
                    item.forget(modality)

    def replace(self, change) -> None:
        """Replace every queued item by change(item), in place and in order."""
        with self._condition:
            self._items = collections.deque(change(item) for item in self._items)

    def items(self) -> list:
        """A copy of what is queued (for inspection)."""
        with self._condition:
            return list(self._items)

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)


class FrameBuffer:
    """The most recent RGB frames with their times; older than `keep_s` before the newest are dropped."""

    def __init__(self, keep_s: float = 20.0, max_frames: int = 200) -> None:
        self.keep_s = keep_s
        self._frames: collections.deque = collections.deque(maxlen=max_frames)
        self._lock = threading.Lock()

    def add(self, t: float, frame: np.ndarray) -> None:
        with self._lock:
            self._frames.append((t, frame))
            while self._frames and self._frames[0][0] < t - self.keep_s:
                self._frames.popleft()

    def between(self, start: float, end: float) -> list[tuple[float, np.ndarray]]:
        with self._lock:
            return [(t, f) for t, f in self._frames if start <= t <= end]

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def forget(self, modality: str) -> None:
        if modality == "visual":
            self.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)


class TextBuffer:
    """Text waiting for its utterance: taken once, pruned when too old, bounded in count."""

    def __init__(self, max_items: int = 256) -> None:
        self._items: collections.deque[TextItem] = collections.deque(maxlen=max_items)
        self._lock = threading.Lock()

    def add(self, item: TextItem) -> None:
        with self._lock:
            self._items.append(item)

    def take(self, start: float, end: float, tolerance: float = TEXT_TOLERANCE_S) -> str | None:
        """Join and remove the items whose middle falls in [start - tol, end + tol].

        Items before that window stay: no later utterance takes them, so the caller gives them
        an utterance of their own (`take_before`); nothing pushed is lost here."""
        with self._lock:
            taken = [i for i in self._items if start - tolerance <= i.middle <= end + tolerance]
            kept = (i for i in self._items if not start - tolerance <= i.middle <= end + tolerance)
            self._items = collections.deque(kept, maxlen=self._items.maxlen)
        text = " ".join(i.text.strip() for i in taken if i.text.strip())
        return text or None

    def take_before(self, t: float) -> list[TextItem]:
        """Remove and return the items whose middle is before t, oldest first."""
        with self._lock:
            before = [i for i in self._items if i.middle < t]
            self._items = collections.deque((i for i in self._items if i.middle >= t), maxlen=self._items.maxlen)
        return sorted(before, key=lambda i: i.start)

    def take_ready(self, now: float, final: bool = False, settle_s: float = 0.3) -> list[TextItem]:
        """Remove and return the items that ended at least settle_s before `now` (all if final)."""
        with self._lock:
            ready = [i for i in self._items if final or i.end <= now - settle_s]
            taken = {id(i) for i in ready}
            self._items = collections.deque((i for i in self._items if id(i) not in taken), maxlen=self._items.maxlen)
            return ready

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def forget(self, modality: str) -> None:
        if modality == "text":
            self.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
