"""Transcript confidence, the gate that sets unsure words aside, and the spoken language (issue 19).

Real audio through the real models where the claim is about them (tiny.en hears a clear English
clip as sure and espeak German as unsure; base detects German); a scripted backend where the
claim is about the pipeline (the event says why the words were set aside; the language is
detected once and reported)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from momke.extractors.media import SAMPLE_RATE
from momke.extractors.served import speech_segments_of
from momke.realtime import EmotionEvent, LanguageEvent
from momke.realtime.asr import ASRBackend, Transcript, WhisperASR, make_asr
from momke.realtime.transcript_gate import (
    DEFAULT_MIN_TRANSCRIPT_CONFIDENCE,
    check_confidence_threshold,
    gate_reason,
)
from realtime_support import all_events as run
from realtime_support import replay_session
from synth_speech import data_dir, espeak, ravdess_clips


def served(samples: np.ndarray) -> np.ndarray:
    """The one utterance the app cuts from a clip (as it would hear it live)."""
    segments = speech_segments_of(samples, SAMPLE_RATE)
    assert len(segments) == 1, [(s.start, s.end) for s in segments]
    return segments[0].audio


def padded(samples: np.ndarray) -> np.ndarray:
    pause = np.zeros(SAMPLE_RATE, np.float32)
    return np.concatenate([pause, samples, pause])


@pytest.fixture(scope="module")
def tiny():
    return make_asr("whisper-tiny", language="en", device="cpu")


def test_clear_english_is_sure_and_german_heard_as_english_is_not(tiny):
    from momke.extractors.media import load_audio, resample_to_target

    folder = data_dir() / "commonvoice_en_dev50"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    item = json.loads((folder / "transcripts.jsonl").read_text().splitlines()[0])
    clip, rate = load_audio(str(folder / item["file"]))
    common_voice = tiny.transcribe_scored(served(resample_to_target(clip, rate).numpy()))
    ravdess, rate = load_audio(str(ravdess_clips(1)[0]))
    acted = tiny.transcribe_scored(served(resample_to_target(ravdess, rate).numpy()))
    german = tiny.transcribe_scored(served(padded(espeak("Ich habe heute keine Zeit, ich muss zur Arbeit.", "de"))))
    for heard in (common_voice, acted):
        assert heard.text and heard.confidence >= 0.7, heard  # measured 0.81 (Common Voice), RAVDESS higher
    assert german.text, german  # English-sounding words for German speech ...
    assert german.confidence < DEFAULT_MIN_TRANSCRIPT_CONFIDENCE, german  # ... which the gate sets aside
    assert 0.0 <= german.confidence <= 1.0


def test_threshold_is_checked_and_the_reason_names_both_numbers():
    assert check_confidence_threshold("0.25") == 0.25 and check_confidence_threshold(0) == 0.0
    for bad in ("-0.1", "1.5", "nan", "inf", "high", None):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            check_confidence_threshold(bad)
    assert gate_reason(0.234, 0.5) == "low transcript confidence 0.23 < 0.50"
    assert gate_reason(0.5, 0.5) is None and gate_reason(None, 0.9) is None  # None: given words, trusted


def test_cli_refuses_a_threshold_outside_0_to_1_with_one_usage_line(capsys):
    from momke.realtime.ui.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--demo", "--min-transcript-confidence", "1.5"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-transcript-confidence" in err[0] and "from 0 to 1" in err[0], err


class ScriptedASR(ASRBackend):
    """Gives the scripted transcripts in turn (the last one again when they run out)."""

    name = "scripted"

    def __init__(self, *transcripts: Transcript) -> None:
        self.transcripts, self.calls, self.resets = list(transcripts), 0, 0

    def transcribe(self, audio):
        return self.transcribe_scored(audio).text

    def transcribe_scored(self, audio):
        self.calls += 1
        return self.transcripts[min(self.calls, len(self.transcripts)) - 1]

    def reset(self):
        self.resets += 1


@pytest.fixture(scope="module")
def conversation(recorded_conversation):
    return recorded_conversation(3)


def test_unsure_words_are_shown_but_not_used_and_the_event_says_why(conversation):
    asr = ScriptedASR(Transcript("The schwats are blood puppy buffinets.", 0.12),
                      Transcript("Kids are talking by the door.", 0.93),
                      Transcript("Dogs are sitting by the door.", None))  # no confidence: trusted
    events = [e for e in run(replay_session(conversation, asr=asr, min_transcript_confidence=0.5))
              if isinstance(e, EmotionEvent)]
    assert len(events) == 3
    first = json.loads(events[0].to_json())
    assert "text" not in first["modalities"] and "audio" in first["modalities"]
    assert first["transcript"] == "The schwats are blood puppy buffinets."  # still shown
    assert first["transcript_confidence"] == 0.12
    assert first["text_set_aside"] == "low transcript confidence 0.12 < 0.50"
    assert "text" in events[1].modalities and events[1].text_set_aside is None and events[1].transcript_confidence == 0.93
    assert "text" in events[2].modalities and events[2].transcript_confidence is None
    from momke.realtime.ui.live_state import transcript_label
    from momke.realtime.ui.terminal_view import event_line

    assert transcript_label(events[0]).startswith("(unsure 0.12) ") and "(unsure" in event_line(events[0])
    assert transcript_label(events[1]) == "Kids are talking by the door."
    # Threshold 0: every transcript is used (the behaviour before the gate).
    asr = ScriptedASR(Transcript("The schwats are blood puppy buffinets.", 0.12))
    events = [e for e in run(replay_session(conversation, asr=asr, min_transcript_confidence=0.0))
              if isinstance(e, EmotionEvent)]
    assert all("text" in e.modalities and e.text_set_aside is None for e in events)


def test_a_given_transcript_is_never_gated(conversation):
    events = [e for e in run(replay_session(conversation, read_transcript=True, min_transcript_confidence=1.0))
              if isinstance(e, EmotionEvent)]
    assert events and all("text" in e.modalities and e.transcript_confidence is None for e in events)


def test_language_found_once_is_reported_before_the_utterance_it_was_found_on(conversation):
    asr = ScriptedASR(Transcript("Hallo.", 0.9, "de", detected=("de", 0.97)), Transcript("Ja.", 0.9, "de"))
    events = run(replay_session(conversation, asr=asr))
    found = [e for e in events if isinstance(e, LanguageEvent)]
    assert [(e.language, e.probability) for e in found] == [("de", 0.97)] and asr.resets == 1
    first = next(i for i, e in enumerate(events) if isinstance(e, EmotionEvent))
    assert events.index(found[0]) < first
    assert json.loads(found[0].to_json())["type"] == "language"
    from momke.realtime.ui.gradio_views import transcript_html
    from momke.realtime.ui.live_state import LiveState

    state = LiveState()
    for event in events:
        state.update(event)
    assert 'data-language="de"' in transcript_html(state.snapshot())


def test_another_language_loads_the_multilingual_model(caplog):
    with caplog.at_level(logging.WARNING, logger="momke.realtime.asr"):
        asr = make_asr("whisper-tiny", language="de", device="cpu")
    assert isinstance(asr, WhisperASR) and asr.engine.multilingual and asr.name == "whisper-base"
    assert asr.language == "de"
    assert any("multilingual" in r.getMessage() for r in caplog.records)
    assert make_asr("whisper", language="auto", device="cpu").engine.multilingual  # the default follows suit
    assert not make_asr("whisper", language="en", device="cpu").engine.multilingual  # tiny.en on a CPU
    with pytest.raises(ValueError, match="English"):
        make_asr("pocketsphinx", language="fr")


@pytest.mark.slow  # about 30 s: Whisper base decodes three German utterances
def test_auto_detects_the_language_once_per_session_on_enough_speech():
    asr = make_asr("whisper-base", language="auto", device="cpu")
    calls = []
    real = asr.engine.detect_language
    asr.engine.detect_language = lambda samples: calls.append(len(samples)) or real(samples)
    try:
        short = asr.transcribe_scored(espeak("Ja.", "de"))
        assert short.text == "" and "not detected yet" in short.note and calls == []  # under 1.5 s
        first = asr.transcribe_scored(padded(espeak("Guten Morgen, wie geht es dir heute? Ich bin sehr müde.", "de")))
        second = asr.transcribe_scored(padded(espeak("Das Wetter ist heute schrecklich kalt.", "de")))
        assert len(calls) == 1 and first.detected[0] == "de" and second.detected is None
        assert first.language == second.language == "de" and asr.detected[0] == "de"
        asr.reset()  # a new session detects again
        asr.transcribe_scored(padded(espeak("Das Wetter ist heute schrecklich kalt.", "de")))
        assert len(calls) == 2
    finally:
        del asr.engine.detect_language
