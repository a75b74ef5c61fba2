"""The terminal's live view (rich): the current utterance's fused emotion with probabilities,
each modality's status and own reading, the Soft Router's expert loads and the recent transcript.

It fits a standard 80x24 terminal with the transcript visible (the transcript takes the rows
that are left), and reads on dark and light backgrounds alike: text keeps the terminal's own
foreground colour; only emotion labels and sensor states are coloured.

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

from ...models.config import MODALITIES
from ..events import (
    DroppedUtteranceEvent,
    EmotionEvent,
    Event,
    LanguageEvent,
    ReadyEvent,
    StatusEvent,
)
from .live_state import LiveState, Snapshot, modality_readings, transcript_label, unsure

# Colours by the usual names, chosen to read on dark and light backgrounds; any other label is
# bold in the terminal's own foreground (never white, which vanishes on a light terminal).
LABEL_STYLES = {
    "happy": "bold green", "excited": "bold green", "joy": "bold green", "positive": "bold green",
    "neutral": "bold", "sad": "bold blue", "sadness": "bold blue", "negative": "bold blue",
    "angry": "bold red", "anger": "bold red", "frustrated": "bold magenta", "fear": "bold magenta",
}
STATE_STYLES = {"active": "green", "loading": "blue", "missing": "red", "failed": "bold red", "disabled": "dim"}
BAR_WIDTH = 20
TRANSCRIPT_LINES = 6  # when the terminal's height is unknown (screenshots, tests)
MIN_TRANSCRIPT_LINES = 2


def label_style(label: str) -> str:
    return LABEL_STYLES.get(label.lower(), "bold")


def bar(value: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(value * width)))
    return "█" * filled + "·" * (width - filled)


def _label_text(label: str, width: int = 0) -> Text:
    """A label in its colour, padded after the colour lookup (so "sad     " is still blue)."""
    return Text(label.ljust(width), style=label_style(label))


def _probabilities(snap: Snapshot, event: EmotionEvent) -> Table:
    table = Table.grid(padding=(0, 1))
    labels = snap.labels or list(event.probabilities)
    width = max(len(label) for label in labels)
    for label in labels:
        p = float(event.probabilities.get(label, 0.0))
        style = label_style(label) if label == event.label else ""
        table.add_row(_label_text(label, width) if label == event.label else Text(label.ljust(width)),
                      Text(bar(p), style=style), f"{p:4.2f}")
    return table


def _modalities(snap: Snapshot) -> Table:
    """Per modality: its sensor's state, then its own reading of the utterance (when the event
    carries one), or whether it was used, or why it is missing."""
    event = snap.current
    used = set(event.modalities) if event else set()
    readings = modality_readings(event)
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis")
    for modality in MODALITIES:
        status = snap.status.get(modality)
        state = status.state if status else "loading"
        if modality in readings:
            label, p = readings[modality]
            detail = Text.assemble("own: ", _label_text(label), f" {p:.2f}")
        elif modality in used:
            detail = Text("✓ used")
        else:
            detail = Text(status.reason if status else "", style="dim")
        table.add_row(modality.ljust(6), Text(state.ljust(8), style=STATE_STYLES.get(state, "")), detail)
    return table


def _current_panel(snap: Snapshot) -> Panel:
    event = snap.current
    if event is None:
        return Panel(Group(Text("waiting for the first utterance…", style="dim"), _modalities(snap)),
                     title="Emotion", title_align="left")
    title = Text.assemble(" Emotion: ", _label_text(event.label.upper()),
                          f" · utterance #{event.utterance_id} · {event.start:.2f}–{event.end:.2f} s ")
    latency = event.latency_ms or {}
    timing = " · ".join(f"{name} {latency[key]:.0f} ms"
                        for key, name in (("total", "latency"), ("processing", "processing")) if key in latency)
    body = Table.grid(padding=(0, 3))
    body.add_row(_probabilities(snap, event), _modalities(snap))
    return Panel(body, title=title, title_align="left", subtitle=timing or None, subtitle_align="right")


def _router_panel(snap: Snapshot) -> Panel:
    """Expert loads: for each modality used in the current utterance, how the Soft Router spread
    it over the experts (the mean over the conversation in brackets)."""
    event = snap.current
    title = "Soft Router: expert loads, now (mean)"
    if event is None or not event.expert_loads:
        return Panel(Text("no utterance yet", style="dim"), title=title, title_align="left")
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    experts = list(next(iter(event.expert_loads.values())).keys())
    table.add_column("input")
    for expert in experts:
        table.add_column(f"expert {expert}", justify="left", no_wrap=True)
    for modality, loads in event.expert_loads.items():
        means = snap.mean_expert_loads.get(modality, {})
        cells = [f"{bar(w, 6)} {w:.2f} ({means.get(e, w):.2f})" for e, w in ((e, float(loads.get(e, 0.0))) for e in experts)]
        table.add_row(modality, *cells)
    return Panel(table, title=title, title_align="left")


def _transcript_panel(snap: Snapshot, lines: int) -> Panel:
    width = max((len(e.label) for e in snap.history), default=0)
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True, min_width=4)
    table.add_column(no_wrap=True, min_width=width)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    for event in snap.history[-lines:]:
        text = Text(transcript_label(event), style="dim italic" if unsure(event) else "") if event.transcript \
            else "(no text)"
        table.add_row(f"#{event.utterance_id:<3}", _label_text(event.label, width), text)
    if not snap.history:
        table.add_row(Text("(nothing yet)", style="dim"))
    return Panel(table, title="Transcript", title_align="left")


def render(snap: Snapshot, header: str = "momke-live", height: int | None = None) -> Group:
    """The whole view; with the terminal's `height`, the transcript gets the rows that are left
    (one is kept free for the cursor)."""
    counts = Text("  ").join(Text.assemble(_label_text(k), f" {v}")
                             for k, v in sorted(snap.label_counts.items(), key=lambda kv: -kv[1]))
    language = f"language {snap.language.language} (detected)  " if snap.language else ""
    title = Text.assemble((header, "bold"), f"  utterances {len(snap.history)}  dropped {len(snap.dropped)}  {language}",
                          counts, no_wrap=True, overflow="ellipsis")
    current, router = _current_panel(snap), _router_panel(snap)
    lines = TRANSCRIPT_LINES
    if height is not None:
        labels = len(snap.labels or (snap.current.probabilities if snap.current else ()))
        current_rows = 2 + (max(labels, len(MODALITIES)) if snap.current else 1 + len(MODALITIES))
        router_rows = 2 + (1 + len(snap.current.expert_loads) if snap.current and snap.current.expert_loads else 1)
        lines = max(MIN_TRANSCRIPT_LINES, height - 1 - current_rows - router_rows - 2 - 1)
    return Group(title, current, router, _transcript_panel(snap, lines))


class TerminalView:
    """Redraws the view in place; `update(event)` after each event. Use as a context manager."""

    def __init__(self, state: LiveState, header: str = "momke-live", console: Console | None = None) -> None:
        self.state = state
        self.header = header
        self.console = console or Console()
        self._live = Live(self._renderable(), console=self.console, refresh_per_second=4, transient=False)

    def _renderable(self) -> Group:
        return render(self.state.snapshot(), self.header, height=self.console.size.height)

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
        text = f"  {transcript_label(event)!r}" if event.transcript else ""
        own = " ".join(f"{m}={label}" for m, (label, _) in modality_readings(event).items())
        return (f"[{event.start:7.2f}-{event.end:7.2f}] #{event.utterance_id:<3} {event.label:<9} {top:.2f}"
                f"  ({','.join(event.modalities) or '-'})" + (f" [{own}]" if own else "") + text)
    if isinstance(event, StatusEvent):
        return f"[{event.time:7.2f}] {event.modality}: {event.state}" + (f" ({event.reason})" if event.reason else "")
    if isinstance(event, DroppedUtteranceEvent):
        return f"[{event.start:7.2f}-{event.end:7.2f}] #{event.utterance_id:<3} dropped: {event.reason}"
    if isinstance(event, ReadyEvent):
        return (f"[{event.time:7.2f}] ready: capturing {', '.join(event.modalities) or 'nothing'} "
                f"(started in {event.warmup_ms / 1000:.1f} s; a sensor says \"loading\" until its extractor is warm)")
    if isinstance(event, LanguageEvent):
        return f"[{event.time:7.2f}] language detected: {event.language} (p={event.probability:.2f})"
    return str(event)
