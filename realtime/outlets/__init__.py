"""Outlets: the session's events sent to other programs over the network (`--emit`, `emit=[...]`).

    lsl                 Lab Streaming Layer: a float32 stream "momke-emotion" (one channel per
                        label, irregular rate, stamped on the LSL clock at the utterance's end)
                        and a string marker stream "momke-events" (each event's JSON)   lsl.py
    osc://HOST:PORT     OSC over UDP: /momke/emotion <label> <p per label ...>, /momke/status
                        <modality> <state> <reason>, ... (the address space: osc.py)    osc.py
    ws://HOST:PORT      a WebSocket server: every client gets the same JSON lines as --json,
                        from the moment it connects                                      websocket.py

Outlets hang off the one event stream: the session hands them each event on its event thread,
after the log and beside the callbacks. Sending never waits on a consumer (LSL and UDP sends do
not block; a WebSocket client has a bounded queue, and a client that falls behind loses events,
counted), and a failing outlet only logs a warning: the session goes on. `close()` ends every
thread an outlet started.

This module imports only the standard library: the protocol packages (pylsl, python-osc,
websockets: `pip install 'momke-live[outlets]'`) are imported when an outlet opens, and a
missing one is named by `parse_outlets`, before any model loads.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# scheme -> (the module it needs, the package that installs it)
PACKAGES = {"lsl": ("pylsl", "pylsl"), "osc": ("pythonosc", "python-osc"), "ws": ("websockets", "websockets")}
FORMS = "lsl, osc://HOST:PORT or ws://HOST:PORT"


class OutletError(ValueError):
    """An outlet that cannot be made or opened: a bad spec, a missing package, a port in use."""


@dataclass(frozen=True)
class OutletSpec:
    scheme: str  # "lsl" | "osc" | "ws"
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return self.scheme if self.scheme == "lsl" else f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class SessionInfo:
    """What an outlet may know of its session: the labels (in the checkpoint's order, the channel
    order of every outlet), the session's id, and its clock (seconds; events' times are on it)."""

    labels: tuple[str, ...]
    session_id: str
    now: Callable[[], float]


def parse_outlet(spec: str) -> OutletSpec:
    """'lsl' | 'osc://HOST:PORT' | 'ws://HOST:PORT' (ws port 0: any free port) -> OutletSpec;
    OutletError says what is wrong, or which package to install."""
    text = str(spec).strip()
    if text.lower() == "lsl":
        parsed = OutletSpec("lsl")
    else:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("osc", "ws") or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise OutletError(f"--emit {text}: expected {FORMS}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or (port == 0 and scheme == "osc"):
            raise OutletError(f"--emit {text}: give a host and a port, e.g. {scheme}://127.0.0.1:"
                              f"{9000 if scheme == 'osc' else 8765}")
        parsed = OutletSpec(scheme, parts.hostname, port)
    module, package = PACKAGES[parsed.scheme]
    if importlib.util.find_spec(module) is None:
        raise OutletError(f"--emit {text} needs the {package} package: pip install {package} "
                          f"(or pip install 'momke-live[outlets]' for every outlet)")
    return parsed


def parse_outlets(specs: Iterable[str] | None) -> list[OutletSpec]:
    parsed = [parse_outlet(spec) for spec in specs or ()]
    seen = set()
    for spec in parsed:
        if spec in seen:
            raise OutletError(f"--emit {spec} is given twice")
        seen.add(spec)
    return parsed


def make_outlet(spec: OutletSpec):
    if spec.scheme == "lsl":
        from .lsl import LSLOutlet

        return LSLOutlet()
    if spec.scheme == "osc":
        from .osc import OSCOutlet

        return OSCOutlet(spec.host, spec.port)
    from .websocket import WebSocketOutlet

    return WebSocketOutlet(spec.host, spec.port)


class Outlets:
    """The outlets of one session: opened at start, handed every event, closed at stop.

    `items` may hold specs (strings) or outlet objects of one's own (open(info), send(event),
    close(timeout), and a `name`). A failing send is logged as a warning (the first failure of
    an outlet, then every 100th) and counted in `failures`; the session never sees it."""

    def __init__(self, items: Iterable = ()) -> None:
        self.outlets = []
        items = [items] if isinstance(items, str) else list(items or ())
        parse_outlets([item for item in items if isinstance(item, str)])  # every problem before anything opens
        for item in items:
            self.outlets.append(make_outlet(parse_outlet(item)) if isinstance(item, str) else item)
        self.failures: dict[str, int] = {}
        self._opened: list = []

    def __bool__(self) -> bool:
        return bool(self.outlets)

    def open(self, info: SessionInfo) -> None:
        """Open every outlet; if one cannot open, close the ones opened and raise OutletError."""
        for outlet in self.outlets:
            try:
                outlet.open(info)
            except Exception as error:
                self.close()
                if isinstance(error, OutletError):
                    raise
                raise OutletError(f"--emit {outlet.name}: cannot open: {type(error).__name__}: {error}") from error
            self._opened.append(outlet)

    def send(self, event) -> None:
        """On the session's event thread: hand `event` to every outlet; never raises."""
        for outlet in self._opened:
            try:
                outlet.send(event)
            except Exception as error:
                count = self.failures[outlet.name] = self.failures.get(outlet.name, 0) + 1
                if count == 1 or count % 100 == 0:
                    log.warning("outlet %s failed to send an event (%d so far): %s: %s",
                                outlet.name, count, type(error).__name__, error)

    def close(self, timeout: float = 1.0) -> None:
        """Close every opened outlet (each ends its threads) within about `timeout` seconds."""
        deadline = time.monotonic() + timeout
        opened, self._opened = self._opened, []
        for outlet in opened:
            try:
                outlet.close(max(0.05, deadline - time.monotonic()))
            except Exception as error:
                log.warning("closing outlet %s failed: %s: %s", outlet.name, type(error).__name__, error)

    def describe(self) -> str:
        return ", ".join(getattr(outlet, "description", outlet.name) for outlet in self.outlets)


def event_time(event) -> float | None:
    """When an event happened on the session clock: an utterance's end, a status change's or the
    ready event's time; None for an event without one."""
    for name in ("end", "time"):
        value = getattr(event, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return None


__all__ = ["FORMS", "OutletError", "OutletSpec", "Outlets", "SessionInfo", "event_time", "parse_outlet",
           "parse_outlets"]
