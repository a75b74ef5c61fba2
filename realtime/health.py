"""Per-modality health: "active", "missing" (with the reason), "failed" or "disabled" (privacy).

Capture threads report what they see (data arrived, a device error, frozen or black frames, a
microphone delivering zeros); the pipeline reports extractor verdicts (no face, ASR failed).
Read timeouts are found by `check_timeouts`, which the pipeline calls regularly. Every change
of state or of its cause becomes a StatusEvent through `on_change` (reasons never contain
changing numbers, so a lasting fault is one event), and a sensor dropping mid-conversation just
changes the mask.

While a modality's extractor is still loading (the session captures from the start, and an
utterance waits for its extractors), its state is "loading" unless its device has a fault.

Two sides make a modality's state: the device (what the sensor does now) and the content verdict
(the pipeline's judgement of what was captured, e.g. no face). A device fault always wins: the
verdict on an older utterance never makes a dark camera "active" again, and frames still
arriving never hide "no face" (only a later verdict clears it).

"failed" is the pipeline's verdict on itself: the modality's extractor raised (or gave non-finite
features) on FAILURE_LIMIT utterances in a row (out of memory, weights missing, a bug). It says
why, wins over every other state but "disabled", is cleared by the next utterance that extracts
(or by switching the modality off and on), and `failures` keeps it for the end of a run: a
command-line replay with a failed modality exits non-zero.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..models.config import MODALITIES
from .events import StatusEvent

ACTIVE, MISSING, FAILED, DISABLED, LOADING = "active", "missing", "failed", "disabled", "loading"
NOT_STARTED, WAITING = "not started", "switched on, waiting for data"
FAILURE_LIMIT = 3  # utterances in a row whose extraction failed: the modality has failed


class HealthMonitor:
    def __init__(
        self,
        on_change: Callable[[StatusEvent], None],
        clock_now: Callable[[], float],
        read_timeout_s: dict[str, float] | None = None,
        disabled=(),
    ) -> None:
        self._on_change = on_change
        self._clock_now = clock_now
        self._lock = threading.Lock()
        self._state = {m: (MISSING, NOT_STARTED) for m in MODALITIES}  # as last announced
        self._device = {m: (MISSING, NOT_STARTED) for m in MODALITIES}
        self._loading: set[str] = set()  # modalities whose extractor is still loading
        self._verdict: dict[str, str | None] = dict.fromkeys(MODALITIES)  # why content is unusable
        self._failed: dict[str, str | None] = dict.fromkeys(MODALITIES)  # why its extraction fails
        self.failures: dict[str, str] = {}  # every modality that failed in this session, and why
        self._enabled = {m: m not in disabled for m in MODALITIES}
        # Live devices only: how long without data counts as a read timeout.
        self._read_timeout_s = dict(read_timeout_s or {})
        self._last_data: dict[str, float] = {}

    # ----- privacy
    def set_enabled(self, modality: str, enabled: bool) -> None:
        with self._lock:
            self._enabled[modality] = enabled
            if enabled:
                self._device[modality] = (MISSING, WAITING)
                self._verdict[modality] = None
                self._failed[modality] = None
        # Announced even if it was off already (a session's initial states).
        self._update(modality, announce_again=not enabled)

    def enabled(self, modality: str) -> bool:
        with self._lock:
            return self._enabled[modality]

    # ----- reports from sources and the pipeline
    def set_loading(self, modality: str, loading: bool) -> None:
        """The modality's extractor is loading (True) or ready (False)."""
        with self._lock:
            if loading:
                self._loading.add(modality)
            else:
                self._loading.discard(modality)
        self._update(modality)

    def report_data(self, modality: str, by: str = "device") -> None:
        """Good data arrived (by="device") or was usable (by="content")."""
        with self._lock:
            if by == "content":
                self._verdict[modality] = None
            else:
                self._last_data[modality] = time.monotonic()
                self._device[modality] = (ACTIVE, "")
        self._update(modality)

    def touch(self, modality: str) -> None:
        """The device answered (whatever it delivered): no read timeout."""
        with self._lock:
            self._last_data[modality] = time.monotonic()

    def report_missing(self, modality: str, reason: str, by: str = "device") -> None:
        with self._lock:
            if by == "content":
                self._verdict[modality] = reason
            else:
                self._device[modality] = (MISSING, reason)
        self._update(modality)

    def report_failed(self, modality: str, reason: str | None) -> None:
        """The modality's extraction keeps failing (reason), or works again (None)."""
        with self._lock:
            self._failed[modality] = reason
            if reason is not None:
                self.failures[modality] = reason
        self._update(modality)

    def watch_timeout(self, modality: str, timeout_s: float | None) -> None:
        """Expect data of a live device at least every timeout_s seconds (None: stop watching)."""
        with self._lock:
            if timeout_s is None:
                self._read_timeout_s.pop(modality, None)
            else:
                self._read_timeout_s[modality] = timeout_s
                self._last_data[modality] = time.monotonic()

    def check_timeouts(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [
                (m, limit) for m, limit in self._read_timeout_s.items()
                if self._enabled[m] and self._device[m][0] == ACTIVE and now - self._last_data.get(m, now) > limit
            ]
            for modality, limit in late:
                self._device[modality] = (MISSING, f"read timeout: no data for over {limit:g} s")
        for modality, _ in late:
            self._update(modality)

    # ----- reading
    def state(self, modality: str) -> str:
        with self._lock:
            return self._state[modality][0]

    def reason(self, modality: str) -> str:
        with self._lock:
            return self._state[modality][1]

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return {m: s for m, (s, _) in self._state.items()}

    def _update(self, modality: str, announce_again: bool = False) -> None:
        """Recompute the modality's state from its two sides; announce it if it changed."""
        with self._lock:
            if not self._enabled[modality]:
                if not announce_again:
                    return  # a switched-off modality stays "disabled" whatever its device does
                new = (DISABLED, "switched off")
            elif self._failed[modality] is not None:
                new = (FAILED, self._failed[modality])
            elif modality in self._loading and self._device[modality][1] in ("", NOT_STARTED, WAITING):
                new = (LOADING, "loading its extractor")
            elif self._device[modality] == (MISSING, NOT_STARTED):  # its capture is opening the device
                new = (LOADING, "starting capture")
            elif self._device[modality][0] != ACTIVE:
                new = self._device[modality]
            elif self._verdict[modality] is not None:
                new = (MISSING, self._verdict[modality])
            else:
                new = (ACTIVE, "")
            if new == self._state[modality] and not announce_again:
                return
            self._state[modality] = new
        self._on_change(StatusEvent(modality=modality, state=new[0], reason=new[1], time=round(self._clock_now(), 3)))
