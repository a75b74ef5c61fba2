"""Per-modality health: "active", "missing" (with the reason) or "disabled" (privacy).

Capture threads report what they see (data arrived, a device error, frozen or black frames, a
microphone delivering zeros); the pipeline reports extractor verdicts (no face, ASR failed).
Read timeouts are found by `check_timeouts`, which the pipeline calls regularly. Every change
of state becomes a StatusEvent through `on_change`, and the modality mask of each utterance
reads `is_usable` here, so a sensor dropping mid-conversation just changes the mask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..models.config import MODALITIES
from .events import StatusEvent

ACTIVE, MISSING, DISABLED = "active", "missing", "disabled"


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
        self._state = {m: (MISSING, "not started") for m in MODALITIES}
        # Who set the current state: "device" (capture threads) or "content" (the pipeline's
        # verdict on what was captured, e.g. no face). Frames still arriving must not hide
        # "no face": only the pipeline clears its own verdict.
        self._set_by = {m: "device" for m in MODALITIES}
        self._enabled = {m: m not in disabled for m in MODALITIES}
        # Live devices only: how long without data counts as a read timeout.
        self._read_timeout_s = dict(read_timeout_s or {})
        self._last_data: dict[str, float] = {}

    # ----- privacy
    def set_enabled(self, modality: str, enabled: bool) -> None:
        with self._lock:
            self._enabled[modality] = enabled
        if not enabled:  # announced even if it was off already (a session's initial states)
            self._set(modality, DISABLED, "switched off")
        else:
            self._set(modality, MISSING, "switched on, waiting for data")

    def enabled(self, modality: str) -> bool:
        with self._lock:
            return self._enabled[modality]

    # ----- reports from sources and the pipeline
    def report_data(self, modality: str, by: str = "device") -> None:
        """Good data arrived (by="device") or was usable (by="content"): the modality is active."""
        with self._lock:
            self._last_data[modality] = time.monotonic()
            if by == "device" and self._set_by[modality] == "content" and self._state[modality][0] == MISSING:
                return
        self._set(modality, ACTIVE, "", by)

    def touch(self, modality: str) -> None:
        """The device answered (whatever it delivered): no read timeout."""
        with self._lock:
            self._last_data[modality] = time.monotonic()

    def report_missing(self, modality: str, reason: str, by: str = "device") -> None:
        self._set(modality, MISSING, reason, by)

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
                if self._enabled[m] and now - self._last_data.get(m, now) > limit
            ]
        for modality, limit in late:
            self._set(modality, MISSING, f"read timeout: no data for over {limit:g} s", only_from=ACTIVE)

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

    def _set(self, modality: str, state: str, reason: str, by: str = "device", only_from: str | None = None) -> None:
        with self._lock:
            if not self._enabled[modality] and state != DISABLED:
                return  # a switched-off modality stays "disabled" whatever its device does
            old_state, old_reason = self._state[modality]
            if only_from is not None and old_state != only_from:
                return
            if old_state == state and (state != MISSING or old_reason == reason):
                return
            self._state[modality] = (state, reason)
            self._set_by[modality] = by
        self._on_change(StatusEvent(modality=modality, state=state, reason=reason, time=round(self._clock_now(), 3)))
