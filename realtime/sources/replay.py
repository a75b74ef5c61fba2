"""Pacing a replayed file, so it reaches the pipeline the way live devices would.

Real-time: each chunk or frame is released when the session clock reaches its media time.
As fast as possible: the file's streams advance in lockstep (none more than `slack_s` ahead of
another), so frames are in the frame buffer when the audio around them closes an utterance,
and the whole replay is slowed only by the pipeline's back-pressure. A replayed transcript is
released here too, entry by entry, as the audio passes each entry's start.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path

from ..buffers import TextItem
from ..clock import SessionClock


def load_transcript(path_or_items) -> list[TextItem]:
    """JSON [{"start", "end", "text"}] (a path or the list itself) -> TextItems sorted by start."""
    data = path_or_items
    if isinstance(path_or_items, (str, Path)):
        try:
            data = json.loads(Path(path_or_items).read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"cannot read transcript {path_or_items}: it is not UTF-8 text (byte {error.object[error.start]:#04x} "
                             f"at offset {error.start}); save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from error
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read transcript {path_or_items}: {error}") from error
    if not isinstance(data, list):
        raise ValueError('a transcript is a JSON list of {"start": s, "end": s, "text": "..."}')
    items = []
    for index, entry in enumerate(data):
        try:
            start, end, text = float(entry["start"]), float(entry["end"]), entry["text"]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'transcript entry {index} needs "start", "end" (seconds) and "text": {entry!r}') from error
        if not isinstance(text, str):  # null would be read as the word "None"
            raise ValueError(f'transcript entry {index}: "text" must be a string (the words said; "" for none), '
                             f"got {json.dumps(text)}")
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"transcript entry {index} has bad times start={start}, end={end}")
        items.append(TextItem(text=text, start=start, end=end))
    return sorted(items, key=lambda i: i.start)


class ReplayPacer:
    def __init__(
        self,
        clock: SessionClock,
        realtime: bool,
        streams: tuple[str, ...],
        transcript: list[TextItem] | None = None,
        text_sink: Callable[[TextItem], None] | None = None,
        slack_s: float = 0.5,
    ) -> None:
        self.clock = clock
        self.realtime = realtime
        self.slack_s = slack_s
        self._position = {s: 0.0 for s in streams}
        self._furthest = 0.0  # the furthest media time any stream reached (kept once they end)
        self._condition = threading.Condition()
        self._transcript = list(transcript or [])
        self._text_sink = text_sink

    def wait(self, stream: str, media_t: float, stop: threading.Event) -> bool:
        """Block until `stream` may deliver data ending at media_t; False if stopped first."""
        if self.realtime:
            if not self.clock.wait_until(media_t, stop):
                return False
        else:
            with self._condition:
                # The stream furthest behind always goes (so streams with steps longer than the
                # slack, e.g. a 1 fps video, never wait on each other); the others wait for it.
                while self._position[stream] > min(self._others(stream), default=math.inf) and \
                        media_t > min(self._others(stream), default=math.inf) + self.slack_s:
                    if stop.is_set():
                        return False
                    self._condition.wait(0.05)
        with self._condition:
            self._position[stream] = max(self._position[stream], media_t)
            self._furthest = max(self._furthest, media_t)
            self._condition.notify_all()
        if stream == "audio":
            self.release_text(media_t)
        return True

    def wait_passed(self, stream: str, media_t: float, stop: threading.Event) -> bool:
        """Block until `stream` has delivered everything up to media_t (it has moved past it, or
        ended); False if stopped first."""
        with self._condition:
            while self._position.get(stream, math.inf) <= media_t:
                if stop.is_set():
                    return False
                self._condition.wait(0.05)
        return True

    def now(self) -> float:
        """The replay's current media time: the furthest any stream has got (an ended stream
        counts where it ended, so the time never goes back, not even once every stream has ended)."""
        if self.realtime:
            return self.clock.now()
        with self._condition:
            return self._furthest

    def finish(self, stream: str) -> None:
        """This stream has ended (or is paused): it holds no one back any more."""
        with self._condition:
            self._position[stream] = math.inf
            self._condition.notify_all()
        if stream == "audio":
            self.release_text(math.inf)

    def release_text(self, media_t: float) -> None:
        while self._transcript and self._transcript[0].start <= media_t:
            item = self._transcript.pop(0)
            if self._text_sink is not None:
                self._text_sink(item)

    def _others(self, stream: str) -> list[float]:
        return [t for s, t in self._position.items() if s != stream]
