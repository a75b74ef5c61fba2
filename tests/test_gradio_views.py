"""The Gradio page's HTML/SVG views, as pure functions of folded events (no browser)."""

from momke.realtime import gradio_views as views
from momke.realtime.events import EmotionEvent, StatusEvent
from momke.realtime.live_state import LiveState


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
