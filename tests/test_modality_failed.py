"""A modality whose extractor fails on every utterance (here: out of memory) is reported "failed"
with the reason, not left "active"; a command-line replay then ends with exit 1 and says so."""

from __future__ import annotations

from momke.realtime import StatusEvent
from momke.realtime.health import FAILURE_LIMIT
from realtime_support import SpyExtractor, replay_session, spy_profile


class OutOfMemory(SpyExtractor):
    def extract(self, utterance):
        if utterance.id == "warm-up":
            return None
        raise MemoryError("cannot allocate 2.1 GiB")


def failing_audio_profile():
    profile = spy_profile()
    profile.audio = OutOfMemory("audio", profile.audio.dim)
    return profile


def test_an_extractor_failing_on_every_utterance_marks_its_modality_failed(recorded_conversation):
    conversation = recorded_conversation(4)
    session = replay_session(conversation, profile=failing_audio_profile(), read_transcript=True)
    with session:
        events = list(session.events())
    audio = [(e.state, e.reason) for e in events if isinstance(e, StatusEvent) and e.modality == "audio"]
    failed = [r for s, r in audio if s == "failed"]
    assert failed and "MemoryError" in failed[0] and f"{FAILURE_LIMIT} utterances in a row" in failed[0], audio
    assert audio[-1][0] == "failed"  # never "active" again: no utterance extracted since
    assert "audio" in session.failures and set(session.failures) == {"audio"}
    emotions = [e for e in events if e.type == "emotion"]
    assert emotions and all("audio" not in e.modalities for e in emotions)  # text and face still scored


def test_a_failed_modality_makes_the_replay_exit_1(recorded_conversation, monkeypatch, capsys):
    from momke.realtime.ui import cli

    conversation = recorded_conversation(4)
    monkeypatch.setattr(cli, "make_session", lambda args, source, disabled: replay_session(
        conversation, profile=failing_audio_profile(), read_transcript=True))
    assert cli.main(["--input", str(conversation["path"]), "--fast", "--json"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "the audio modality failed" in err and "MemoryError" in err


def test_one_failure_then_success_is_no_failure(recorded_conversation):
    profile = spy_profile()
    profile.audio.fail_on = {0: "raise", 1: "raise", 3: "raise"}  # never FAILURE_LIMIT in a row
    session = replay_session(recorded_conversation(4), profile=profile, read_transcript=True)
    with session:
        events = list(session.events())
    assert not [e for e in events if isinstance(e, StatusEvent) and e.state == "failed"]
    assert session.failures == {}
