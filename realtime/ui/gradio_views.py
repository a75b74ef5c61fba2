"""The Gradio page's views as small HTML/SVG fragments, pure functions of a `LiveState` snapshot.

Plain inline SVG instead of a plotting library: it renders instantly on every refresh, needs no
JavaScript, and every mark carries data-* attributes (label, modality, expert), so the browser
test can read what the page shows. All text is escaped.
"""

from __future__ import annotations

from html import escape

from ...models.config import MODALITIES
from .live_state import Snapshot, modality_readings, transcript_label, unsure

COLOURS = {
    "happy": "#2e9d4f", "excited": "#2e9d4f", "positive": "#2e9d4f", "neutral": "#8a8f98",
    "sad": "#3b6fd1", "negative": "#3b6fd1", "angry": "#d13b3b", "frustrated": "#a340c0",
}
# The experts' own colours, from hues no emotion uses (amber, teal, pink): a load bar is never
# mistaken for an emotion.
EXPERT_COLOURS = {"audio": "#b45309", "text": "#0f766e", "visual": "#be185d"}
# "idle": before anything started, neutral (not a warning).
STATE_COLOURS = {"active": "#2e9d4f", "loading": "#2563eb", "missing": "#c26a00", "failed": "#b91c1c",
                 "disabled": "#6b7280", "idle": "#6b7280"}
_FALLBACK = ("#7b5ea7", "#1f9e9e", "#b5652a", "#5e7b1f")
LOADS_EXPLAINED = ("How the Soft Router spread each input over MoMKE's three modality experts for the latest "
                   "utterance (upper bar) and on average over the conversation (lower bar).")


def colour(label: str, index: int = 0) -> str:
    return COLOURS.get(label.lower(), _FALLBACK[index % len(_FALLBACK)])


def timeline_svg(snap: Snapshot, width: int = 640, height: int = 220, last: int = 40) -> str:
    """Probability of each label per utterance (lines) and the predicted label (coloured dots)."""
    events = snap.history[-last:]
    if not events:
        return '<div class="mk-timeline mk-empty" data-count="0">No utterance yet: start a session.</div>'
    labels = snap.labels or list(events[0].probabilities)
    left, right, top, bottom = 34, 10, 10, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(events) - 1, 1)

    def xy(i: int, p: float) -> tuple[float, float]:
        return left + i * step, top + (1.0 - p) * plot_h

    parts = [(f'<svg class="mk-timeline" data-count="{len(events)}" viewBox="0 0 {width} {height}" '
              f'width="100%" role="img" aria-label="emotion timeline">')]
    for p in (0.0, 0.5, 1.0):
        _, y = xy(0, p)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#888">{p:.1f}</text>')
    for k, label in enumerate(labels):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, float(e.probabilities.get(label, 0.0))) for i, e in enumerate(events)))
        parts.append(f'<polyline class="mk-line" data-label="{escape(label)}" points="{points}" fill="none" '
                     f'stroke="{colour(label, k)}" stroke-width="1.5" opacity="0.6"/>')
    for i, event in enumerate(events):
        x, y = xy(i, float(event.probabilities.get(event.label, 0.0)))
        k = labels.index(event.label) if event.label in labels else 0
        tip = escape(f"#{event.utterance_id} {event.label} ({event.start:.1f}-{event.end:.1f} s) {event.transcript or ''}")
        parts.append(f'<circle class="mk-utt" data-utterance="{event.utterance_id}" data-label="{escape(event.label)}" '
                     f'data-modalities="{escape(",".join(event.modalities))}" cx="{x:.1f}" cy="{y:.1f}" r="4.5" '
                     f'fill="{colour(event.label, k)}"><title>{tip}</title></circle>')
        if len(events) <= 20 or i % 2 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle" fill="#666">'
                         f'{event.utterance_id}</text>')
    x = left
    for k, label in enumerate(labels):  # legend
        parts.append(f'<rect x="{x}" y="{height - 16}" width="10" height="10" fill="{colour(label, k)}"/>'
                     f'<text x="{x + 14}" y="{height - 7}" font-size="11" fill="#444">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def expert_loads_html(snap: Snapshot) -> str:
    """For each modality used in the latest utterance: a stacked bar of the Soft Router's weights
    over the experts, now and the conversation's mean, with the numbers written beside it."""
    event = snap.current
    explained = f'<div class="mk-explain" style="font-size:12px;color:#555;margin-bottom:4px">{LOADS_EXPLAINED}</div>'
    if event is None or not event.expert_loads:
        return f'<div class="mk-loads mk-empty">{explained}No expert loads yet.</div>'
    rows = []
    for modality in MODALITIES:
        loads = event.expert_loads.get(modality)
        if loads is None:
            rows.append(f'<div class="mk-load-row" data-modality="{modality}" data-used="false" style="font-size:13px">'
                        f'<b>{modality}</b> <span style="color:#666">not used for this utterance</span></div>')
            continue
        rows.append(f'<div class="mk-load-row" data-modality="{modality}" data-used="true" style="font-size:13px">'
                    f'<b>{modality}</b> input'
                    + _stacked_bar(loads, "now") + _stacked_bar(snap.mean_expert_loads.get(modality, loads), "mean")
                    + "</div>")
    return f'<div class="mk-loads" data-utterance="{event.utterance_id}">{explained}{"".join(rows)}</div>'


def _stacked_bar(loads: dict[str, float], which: str) -> str:
    cells = "".join(
        f'<div class="mk-load" data-expert="{escape(e)}" data-weight="{float(w):.3f}" title="expert {escape(e)}: {float(w):.2f}" '
        f'style="width:{100 * float(w):.1f}%;background:{EXPERT_COLOURS.get(e, "#999")}"></div>'
        for e, w in loads.items()
    )
    numbers = " ".join(f'<span style="color:{EXPERT_COLOURS.get(e, "#555")};white-space:nowrap">■ {escape(e)} '
                       f'{float(w):.2f}</span>' for e, w in loads.items())
    return (f'<div style="display:flex;align-items:center;gap:6px;margin:1px 0"><span style="width:34px;font-size:11px;'
            f'color:#555">{which}</span><div class="mk-bar" data-which="{which}" style="display:flex;flex:1;height:12px;'
            f'border-radius:3px;overflow:hidden;background:#eee">{cells}</div>'
            f'<span class="mk-load-numbers" style="font-size:12px;min-width:230px">{numbers}</span></div>')


def status_html(snap: Snapshot) -> str:
    chips = []
    used = set(snap.current.modalities) if snap.current else set()
    for modality in MODALITIES:
        status = snap.status.get(modality)
        state = status.state if status else "missing"
        reason = f" ({escape(status.reason)})" if status and status.reason else ""
        mark = " ✓" if modality in used else ""
        shown = "waiting for start" if state == "idle" else state
        look = (f"color:{STATE_COLOURS['idle']};background:white;border:1px solid {STATE_COLOURS['idle']}"
                if state == "idle" else f"color:white;background:{STATE_COLOURS.get(state, '#555')}")
        chips.append(f'<span class="mk-status" data-modality="{modality}" data-state="{state}" '
                     f'style="display:inline-block;margin:2px 6px 2px 0;padding:2px 8px;border-radius:10px;{look}" '
                     f'title="{state}{reason}">{modality}: {shown}{mark}</span>')
    return '<div class="mk-statuses">' + "".join(chips) + "</div>"


def transcript_html(snap: Snapshot, last: int = 12) -> str:
    if not snap.history and not snap.dropped:
        return '<div class="mk-transcript mk-empty">The transcript appears here.</div>'
    rows = []
    for event in snap.history[-last:][::-1]:
        rows.append(f'<tr class="mk-row" data-utterance="{event.utterance_id}" data-modalities="{escape(",".join(event.modalities))}">'
                    f"<td>{event.utterance_id}</td><td>{event.start:.1f}–{event.end:.1f}</td>"
                    f'<td style="color:{colour(event.label)};font-weight:bold">{escape(event.label)}</td>'
                    f"<td>{escape(', '.join(event.modalities) or '-')}</td>"
                    + (f'<td class="mk-unsure" title="{escape(event.text_set_aside or "")}" style="color:#888;font-style:italic">'
                       if unsure(event) else "<td>") + f"{escape(transcript_label(event))}</td></tr>")
    dropped = f'<div style="font-size:12px;color:#888">{len(snap.dropped)} utterance(s) dropped</div>' if snap.dropped else ""
    language = (f'<div class="mk-language" data-language="{escape(snap.language.language)}" style="font-size:12px;color:#555">'
                f"language detected: {escape(snap.language.language)} (p={snap.language.probability:.2f})</div>"
                if snap.language else "")
    return (f'{language}<table class="mk-transcript" style="font-size:13px;width:100%"><tr><th>#</th><th>time (s)</th><th>emotion</th>'
            f'<th>modalities</th><th>text</th></tr>{"".join(rows)}</table>{dropped}')


def current_html(snap: Snapshot) -> str:
    """The latest utterance: the fused emotion, its probabilities, and each modality's own reading
    (from the event's per-modality probabilities; else whether the modality was used)."""
    event = snap.current
    if event is None:
        return '<div class="mk-current mk-empty" style="color:#555">No utterance yet: press Start.</div>'
    labels = snap.labels or list(event.probabilities)
    bars = "".join(
        f'<div class="mk-prob" data-label="{escape(label)}" data-p="{p:.3f}" style="display:flex;align-items:center;gap:6px;'
        f'font-size:13px"><span style="width:70px">{escape(label)}</span><div style="flex:1;height:10px;background:#eee;'
        f'border-radius:3px"><div style="width:{100 * p:.1f}%;height:10px;border-radius:3px;background:{colour(label, k)}">'
        f"</div></div><span style=\"width:34px;text-align:right\">{p:.2f}</span></div>"
        for k, (label, p) in enumerate((lab, float(event.probabilities.get(lab, 0.0))) for lab in labels)
    )
    readings = modality_readings(event)
    cells = []
    for modality in MODALITIES:
        status = snap.status.get(modality)
        if modality in readings:
            label, p = readings[modality]
            shown = f'<b style="color:{colour(label)}">{escape(label)}</b> {p:.2f}'
            reading = escape(label)
        elif modality in event.modalities:
            shown, reading = "used", ""
        else:
            shown, reading = escape(status.state if status else "missing"), ""
        cells.append(f'<div class="mk-reading" data-modality="{modality}" data-label="{reading}" '
                     f'data-used="{str(modality in event.modalities).lower()}" style="flex:1;padding:2px 6px;'
                     f'border:1px solid #ddd;border-radius:6px;font-size:13px">{modality}: {shown}</div>')
    k = labels.index(event.label) if event.label in labels else 0
    return (f'<div class="mk-current" data-utterance="{event.utterance_id}" data-label="{escape(event.label)}">'
            f'<div style="display:flex;align-items:baseline;gap:10px"><span class="mk-fused" style="font-size:28px;'
            f'font-weight:bold;color:{colour(event.label, k)}">{escape(event.label)}</span>'
            f'<span style="font-size:12px;color:#555">fused from {escape(", ".join(event.modalities) or "-")} · '
            f"utterance #{event.utterance_id} · {event.start:.1f}–{event.end:.1f} s</span></div>"
            f'{bars}<div style="display:flex;gap:6px;margin-top:4px">{"".join(cells)}</div></div>')


def probabilities(snap: Snapshot) -> dict[str, float] | None:
    """For gr.Label: the latest utterance's probabilities."""
    return dict(snap.current.probabilities) if snap.current else None
