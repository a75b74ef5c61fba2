"""The Gradio page's HTML/SVG views, as pure functions of folded events (no browser)."""

from momke.realtime.events import EmotionEvent, StatusEvent
from momke.realtime.ui import gradio_views as views
from momke.realtime.ui.live_state import LiveState


def event(uid, label, modalities, text):
    probs = {"happy": 0.1, "sad": 0.1, "neutral": 0.1, "angry": 0.1}
    probs[label] = 0.7
    loads = {m: {"audio": 0.5, "text": 0.25, "visual": 0.25} for m in modalities}
    return EmotionEvent(uid, float(uid), uid + 0.8, label, probs, list(modalities), text, loads, {"total": 50.0})


def test_views_show_the_conversation_and_escape_text():
    state = LiveState()
    assert 'data-count="0"' in views.timeline_svg(state.snapshot())
    assert views.probabilities(state.snapshot()) is None
    state.update(event(0, "happy", ("audio", "text", "visual"), "great news"))
    state.update(StatusEvent("visual", "disabled", "switched off", 1.0))
    state.update(event(1, "sad", ("audio", "text"), "<script>alert('x')</script> & more"))
    snap = state.snapshot()

    timeline = views.timeline_svg(snap)
    assert 'data-count="2"' in timeline and timeline.count('class="mk-utt"') == 2
    assert 'data-utterance="1" data-label="sad" data-modalities="audio,text"' in timeline
    assert "<script>" not in timeline and "&lt;script&gt;" in timeline

    loads = views.expert_loads_html(snap)
    assert 'data-modality="visual" data-used="false"' in loads
    assert loads.count('data-expert="audio" data-weight="0.500"') == 4  # audio + text rows, now + mean

    transcript = views.transcript_html(snap)
    assert "<script>" not in transcript and "&lt;script&gt;alert" in transcript and "&amp; more" in transcript
    assert 'class="mk-row" data-utterance="1" data-modalities="audio,text"' in transcript

    status = views.status_html(snap)
    assert 'data-modality="visual" data-state="disabled"' in status
    assert views.probabilities(snap)["sad"] == 0.7


def test_current_view_shows_the_fused_label_and_each_modalitys_own_reading():
    state = LiveState()
    assert "No utterance yet" in views.current_html(state.snapshot())
    latest = event(0, "sad", ("audio", "text", "visual"), "hello")
    latest.modality_probabilities = {"audio": {"happy": 0.1, "sad": 0.2, "neutral": 0.1, "angry": 0.6},
                                     "text": {"happy": 0.1, "sad": 0.8, "neutral": 0.05, "angry": 0.05}}
    state.update(latest)
    html = views.current_html(state.snapshot())
    assert 'class="mk-current" data-utterance="0" data-label="sad"' in html
    assert 'data-modality="audio" data-label="angry" data-used="true"' in html  # audio alone reads angry
    assert 'data-modality="text" data-label="sad"' in html
    assert 'data-modality="visual" data-label="" data-used="true"' in html  # used, no own reading in the event
    assert html.count('class="mk-prob"') == 4 and 'data-label="sad" data-p="0.700"' in html


def test_expert_loads_have_their_own_colours_readable_numbers_and_an_explanation():
    assert not set(views.EXPERT_COLOURS.values()) & set(views.COLOURS.values())
    state = LiveState()
    state.update(event(0, "happy", ("audio", "text"), "hi"))
    html = views.expert_loads_html(state.snapshot())
    assert views.LOADS_EXPLAINED in html
    # The numbers are written beside the bars (never inside a segment too narrow for them).
    assert html.count("■ audio 0.50") == 4 and html.count("■ visual 0.25") == 4
    assert 'data-expert="visual" data-weight="0.250"' in html and "></div>" in html


def test_status_chips_are_neutral_before_start():
    idle = LiveState(status={"audio": "idle", "text": "idle", "visual": "disabled"}).snapshot()
    html = views.status_html(idle)
    assert 'data-modality="audio" data-state="idle"' in html and "waiting for start" in html
    assert views.STATE_COLOURS["missing"] not in html  # no warning colour before anything started
