"""One options object for a live session: LiveOptions, built by keyword arguments, the CLI and Gradio."""

import dataclasses

import pytest
from momke.extractors.served import ServingOptions
from momke.realtime import LiveOptions, LiveSession
from momke.realtime.session import DEMO_DIR
from realtime_support import spy_model, spy_profile

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_live_settings_are_the_served_ones_and_keyword_names_change_them():
    assert LiveOptions().serving == ServingOptions()  # one place for how speech is cut and frames kept
    changed = LiveOptions.of(camera_fps=2.0, max_frames=1, window_s=3.0)
    assert changed.serving == dataclasses.replace(ServingOptions(), camera_fps=2.0, max_frames=1)
    assert changed.window_s == 3.0 and changed.asr == LiveOptions().asr
    assert LiveOptions.of(changed, camera_fps=4.0).serving.max_frames == 1  # a change keeps the rest


@pytest.mark.parametrize("settings, message", [
    ({"disabled": ("smell",)}, "disabled must be a subset"),
    ({"max_frames": 0}, "max_frames must be at least 1"),
    ({"window_s": 0}, "window_s must be positive"),
    ({"max_context": 0}, "max_context must be at least 1"),
    ({"transcript": "words.json"}, "transcript goes with input_file"),
    ({"input_file": "/nowhere/talk.mp4"}, "does not exist"),
    ({"min_transcript_confidence": 2.0}, "confidence"),
])
def test_bad_settings_are_refused_before_anything_loads(settings, message):
    with pytest.raises(ValueError, match=message):
        LiveOptions.of(**settings)


def test_demo_options_keep_an_explicit_no_transcript():
    assert LiveOptions.demo().transcript == DEMO_DIR / "transcript.json"
    assert LiveOptions.demo(transcript=None).transcript is None  # the ASR gives the words


def test_a_session_runs_on_its_options_and_keywords_change_them():
    base = LiveOptions.demo(realtime=False, asr=None, checkpoint=spy_model(), profile=spy_profile(), device="cpu")
    session = LiveSession(options=base, camera_fps=2.0, max_frames=1)
    assert session.options.serving.camera_fps == 2.0 and session.options.input_file == base.input_file
    with session:
        video = next(c for c in session._captures if c.modality == "visual")
        assert video.frame_gate.min_interval == pytest.approx(0.5)  # the camera kept 2 frames a second
        assert session.segmentation.max_frames == 1
        events = [e for e in session.events() if type(e).__name__ == "EmotionEvent"]
    assert events and all(len(call.frames) <= 1 for call in session.profile.extractor("visual").calls)
