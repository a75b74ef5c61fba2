"""The terminal's live view (rich): the current utterance and its emotion with probabilities,
the recent transcript, each modality's status and the Soft Router's expert loads.

`render(snapshot)` is a pure function of a `LiveState` snapshot, so the view can be tested
without a session; `TerminalView` redraws it in place with rich's Live display. For output that
is not a terminal, `event_line` gives one plain line per event instead.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..models.config import MODALITIES
from .events import DroppedUtteranceEvent, EmotionEvent, Event, StatusEvent
from .live_state import LiveState, Snapshot

# Colours by the usual names; any other label is shown in white.
LABEL_STYLES = {
    "happy": "bold green", "excited": "bold green", "joy": "bold green", "positive": "bold green",
    "neutral": "bold white", "sad": "bold blue", "sadness": "bold blue", "negative": "bold blue",
    "angry": "bold red", "anger": "bold red", "frustrated": "bold magenta", "fear": "bold magenta",
}
STATE_STYLES = {"active": "green", "missing": "yellow", "disabled": "dim"}
BAR_WIDTH = 24
TRANSCRIPT_LINES = 6


def bar(value: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(value * width)))
    return "█" * filled + "·" * (width - filled)


def _label_text(label: str) -> Text:
    return Text(label, style=LABEL_STYLES.get(label.lower(), "bold white"))


def _current_panel(snap: Snapshot) -> Panel:
    event = snap.current
    if event is None:
        return Panel(Text("waiting for the first utterance…", style="dim"), title="Emotion")
    head = Text.assemble(f"utterance #{event.utterance_id}  {event.start:6.2f}–{event.end:6.2f} s   ",
                         _label_text(event.label.upper()))
    table = Table.grid(padding=(0, 1))
    for label in snap.labels or list(event.probabilities):
        p = float(event.probabilities.get(label, 0.0))
        style = LABEL_STYLES.get(label.lower(), "white") if label == event.label else "white"
        table.add_row(Text(f"{label:>10}", style=style), Text(bar(p), style=style), f"{p:5.2f}")
    used = ", ".join(event.modalities) or "none"
    latency = event.latency_ms or {}
    timing = "".join(f"   {name} {latency[key]:.0f} ms" for key, name in (("total", "latency"), ("processing", "processing"))
                     if key in latency)
    foot = Text(f"modalities used: {used}{timing}", style="dim")
    return Panel(Group(head, table, foot), title="Emotion")


def _transcript_panel(snap: Snapshot) -> Panel:
    table = Table.grid(padding=(0, 1))
    for event in snap.history[-TRANSCRIPT_LINES:]:
        text = event.transcript if event.transcript else "(no text)"
        table.add_row(Text(f"#{event.utterance_id:<3}"), _label_text(f"{event.label:<8}"), Text(text, overflow="fold"))
    if not snap.history:
        table.add_row(Text("(nothing yet)", style="dim"))
    return Panel(table, title="Transcript")


def _status_panel(snap: Snapshot) -> Panel:
    table = Table.grid(padding=(0, 1))
    used = set(snap.current.modalities) if snap.current else set()
    for modality in MODALITIES:
        status = snap.status.get(modality)
        state = status.state if status else "missing"
        mark = "✓ used" if modality in used else ""
        table.add_row(f"{modality:>7}", Text(f"{state:<8}", style=STATE_STYLES.get(state, "white")),
                      Text(mark, style="green"), Text(status.reason if status else "", style="dim"))
    return Panel(table, title="Modalities")


def _router_panel(snap: Snapshot) -> Panel:
    """Expert loads: for each modality used in the current utterance, how the Soft Router spread
    it over the experts (the mean over the conversation in brackets)."""
    event = snap.current
    if event is None or not event.expert_loads:
        return Panel(Text("no utterance yet", style="dim"), title="Soft Router: expert loads")
    table = Table(box=None, padding=(0, 1), show_edge=False)
    experts = list(next(iter(event.expert_loads.values())).keys())
    table.add_column("input")
    for expert in experts:
        table.add_column(f"expert {expert}", justify="left")
    for modality, loads in event.expert_loads.items():
        means = snap.mean_expert_loads.get(modality, {})
        cells = [f"{bar(w, 10)} {w:.2f} ({means.get(e, w):.2f})" for e, w in ((e, float(loads.get(e, 0.0))) for e in experts)]
        table.add_row(modality, *cells)
    return Panel(table, title="Soft Router: expert loads (now, mean)")


def render(snap: Snapshot, header: str = "momke-live") -> Group:
    counts = "  ".join(f"{k} {v}" for k, v in sorted(snap.label_counts.items(), key=lambda kv: -kv[1]))
    title = Text.assemble((header, "bold"), f"   utterances {len(snap.history)}   dropped {len(snap.dropped)}   ",
                          (counts, "dim"))
    return Group(title, _current_panel(snap), _status_panel(snap), _router_panel(snap), _transcript_panel(snap))


class TerminalView:
    """Redraws the view in place; `update(event)` after each event. Use as a context manager."""

    def __init__(self, state: LiveState, header: str = "momke-live", console: Console | None = None) -> None:
        self.state = state
        self.header = header
        self.console = console or Console()
        self._live = Live(self._renderable(), console=self.console, refresh_per_second=4, transient=False)

    def _renderable(self) -> Group:
        return render(self.state.snapshot(), self.header)

    def update(self, event: Event | None = None) -> None:
        if event is not None:
            self.state.update(event)
        self._live.update(self._renderable(), refresh=True)

    def __enter__(self) -> TerminalView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.update(self._renderable())
        self._live.__exit__(*exc)


def event_line(event: Event) -> str:
    """One plain, greppable line per event (for logs and pipes that are not terminals)."""
    if isinstance(event, EmotionEvent):
        top = event.probabilities.get(event.label, 0.0)
        text = f"  {event.transcript!r}" if event.transcript else ""
        return (f"[{event.start:7.2f}-{event.end:7.2f}] #{event.utterance_id:<3} {event.label:<9} {top:.2f}"
                f"  ({','.join(event.modalities) or '-'}){text}")
    if isinstance(event, StatusEvent):
        return f"[{event.time:7.2f}] {event.modality}: {event.state}" + (f" ({event.reason})" if event.reason else "")
    if isinstance(event, DroppedUtteranceEvent):
        return f"[{event.start:7.2f}-{event.end:7.2f}] #{event.utterance_id:<3} dropped: {event.reason}"
    return str(event)
