"""Fault injection: sensors die, freeze or lie, ASR fails or hangs, extraction yields NaN.
Every utterance is still accounted for, masks follow what was usable, and threads end."""

from __future__ import annotations

import time

import numpy as np
import pytest
from momke.realtime import DroppedUtteranceEvent, EmotionEvent, LiveSession, StatusEvent
from momke.realtime import session as session_module
from momke.realtime.asr import ASRBackend
from momke.realtime.sources import FileVideoDevice
from realtime_support import (
    FakeMicrophone,
    ravdess_clips,
    session_threads,
    spy_model,
    spy_profile,
    wait_for,
)
from realtime_support import replay_session as replay  # words from ASR only: no transcript


@pytest.fixture(scope="module")
def conversation(recorded_conversation):
    return recorded_conversation(4)


def run(session):
    with session:
        events = list(session.events())
    assert wait_for(lambda: session_threads() == [], 5), session_threads()
    return events


def by_type(events, kind):
    return [e for e in events if isinstance(e, kind)]


def accounted(events, expected: int) -> list:
    """One emotion or dropped event per utterance, in order; returns them."""
    outcomes = [e for e in events if isinstance(e, (EmotionEvent, DroppedUtteranceEvent))]
    assert len(outcomes) == expected, [(type(e).__name__, e.start, e.end) for e in outcomes]
    assert [e.utterance_id for e in outcomes] == list(range(expected))
    return outcomes


def test_camera_dying_mid_utterance_drops_visual_from_then_on(conversation, monkeypatch):
    second_start, second_end, _ = conversation["utterances"][1]
    death = (second_start + second_end) / 2

    class DyingVideo(FileVideoDevice):
        def read(self, decode=True):
            frame, t = super().read(decode)
            if t >= death:
                raise OSError("injected: camera unplugged")
            return frame, t

    monkeypatch.setattr(session_module, "FileVideoDevice", DyingVideo)
    events = run(replay(conversation))
    outcomes = accounted(events, 4)
    assert all(isinstance(e, EmotionEvent) for e in outcomes)
    assert outcomes[0].modalities == ["audio", "visual"]
    assert outcomes[1].modalities == ["audio", "visual"]  # it has the frames before the camera died
    assert [e.modalities for e in outcomes[2:]] == [["audio"], ["audio"]]
    lost = [e for e in by_type(events, StatusEvent) if e.modality == "visual" and e.state == "missing"]
    assert lost and "camera unplugged" in lost[-1].reason
    assert abs(lost[-1].time - death) < 0.6


def test_corrupt_and_frozen_frames_are_kept_out(conversation, monkeypatch):
    utterances = conversation["utterances"]
    corrupt = (utterances[1][0] - 0.5, utterances[1][1] + 0.5)
    frozen_from = utterances[2][0] - 3.0

    class BadVideo(FileVideoDevice):
        frozen = None

        def read(self, decode=True):
            frame, t = super().read(decode)
            if frame is None:
                return frame, t
            if corrupt[0] <= t <= corrupt[1]:
                return frame[:, :, 0], t  # one channel: a corrupt frame
            if t >= frozen_from:
                BadVideo.frozen = frame if BadVideo.frozen is None else BadVideo.frozen
                return BadVideo.frozen.copy(), t
            return frame, t

    monkeypatch.setattr(session_module, "FileVideoDevice", BadVideo)
    events = run(replay(conversation))
    outcomes = accounted(events, 4)
    assert [e.modalities for e in outcomes] == [["audio", "visual"], ["audio"], ["audio"], ["audio"]]
    reasons = [e.reason for e in by_type(events, StatusEvent) if e.modality == "visual" and e.state == "missing"]
    assert any("corrupt frame" in r for r in reasons), reasons
    assert any("frozen frames" in r for r in reasons), reasons


class FailingASR(ASRBackend):
    name = "failing"

    def __init__(self, mode: str) -> None:
        self.mode, self.calls = mode, 0

    def transcribe(self, audio):
        self.calls += 1
        if self.calls == 2:
            if self.mode == "raise":
                raise RuntimeError("injected ASR crash")
            time.sleep(1.5)  # hangs past the session's ASR timeout
        return "hello there"


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_asr_failure_makes_text_missing_for_that_utterance_only(conversation, mode):
    backend = FailingASR(mode)
    events = run(replay(conversation, asr=backend, asr_timeout_s=0.5, asr_timeout_factor=0.0))
    outcomes = accounted(events, 4)
    assert outcomes[0].modalities == ["audio", "text", "visual"] and outcomes[0].transcript == "hello there"
    assert outcomes[1].modalities == ["audio", "visual"] and outcomes[1].transcript is None
    assert outcomes[1].latency_ms["asr"] < 1000  # the pipeline waited no longer than the timeout
    text_states = [(e.state, e.reason) for e in by_type(events, StatusEvent) if e.modality == "text"]
    assert ("missing", "ASR failed or timed out") in text_states
    if mode == "raise":  # after a hang the worker stays busy until the backend returns
        assert "text" in outcomes[-1].modalities


def test_nan_or_failing_extractors_mask_that_modality_and_empty_utterances_are_dropped(conversation):
    profile = spy_profile()
    profile.visual.fail_on = {0: "nan", 2: "raise"}
    profile.audio.fail_on = {3: "raise"}
    events = run(replay(conversation, profile=profile, disabled=("text",)))
    outcomes = accounted(events, 4)
    assert outcomes[0].modalities == ["audio"]
    assert outcomes[1].modalities == ["audio", "visual"]
    assert outcomes[2].modalities == ["audio"]
    assert outcomes[3].modalities == ["visual"]
    # Now with every modality failing on one utterance: an explicit dropped event, with why.
    profile = spy_profile()
    profile.audio.fail_on = {1: "nan"}
    profile.visual.fail_on = {1: "none"}
    events = run(replay(conversation, profile=profile, disabled=("text",)))
    outcomes = accounted(events, 4)
    dropped = outcomes[1]
    assert isinstance(dropped, DroppedUtteranceEvent)
    assert "audio: audio features were not finite" in dropped.reason
    assert "visual: no face found" in dropped.reason and "text: disabled" in dropped.reason
    assert all(isinstance(e, EmotionEvent) for e in outcomes[:1] + outcomes[2:])


def live_audio(clips=1, pause_s=1.0):
    import soundfile as sf

    pieces = [np.zeros(int(0.3 * 16000), np.float32)]
    for clip in ravdess_clips(clips):
        audio, _ = sf.read(str(clip), dtype="float32")
        pieces += [audio, np.zeros(int(pause_s * 16000), np.float32)]
    return np.concatenate(pieces)


def test_microphone_that_raises_is_reopened_with_backoff_and_recovers():
    audio = live_audio(1)
    block_s = 0.032
    mic = FakeMicrophone(audio, rate=48_000, block_s=block_s, raise_at={5, 6})
    session = LiveSession(microphone=mic, asr="none", checkpoint=spy_model(), profile=spy_profile())
    with session:
        assert wait_for(lambda: mic.index * block_s > len(audio) / 16000 + 0.6, 20)
        session.stop()
        events = list(session.events())
    assert wait_for(lambda: session_threads() == [], 5), session_threads()
    audio_states = [(e.state, e.reason) for e in by_type(events, StatusEvent) if e.modality == "audio"]
    assert any(s == "missing" and "device unplugged" in r for s, r in audio_states), audio_states
    failed = max(i for i, (s, r) in enumerate(audio_states) if "device unplugged" in r)
    assert ("active", "") in audio_states[failed:]
    assert mic.opens >= 3  # opened, then reopened after each failure
    emotions = by_type(events, EmotionEvent)
    assert len(emotions) == 1 and emotions[0].modalities == ["audio"]
    # Live: latency includes the VAD's endpointing wait, measured on the session clock.
    assert all(e.latency_ms["endpoint"] > 0 for e in emotions)


def test_stalled_microphone_read_times_out_and_stop_still_ends_every_thread():
    audio = live_audio(1)
    mic = FakeMicrophone(audio, rate=16_000, stall_at=10)
    session = LiveSession(microphone=mic, asr="none", checkpoint=spy_model(), profile=spy_profile())
    events = []
    session.on_event(events.append)
    with session:
        assert wait_for(lambda: any(isinstance(e, StatusEvent) and "read timeout" in e.reason for e in events), 5)
    assert wait_for(lambda: session_threads() == [], 5), session_threads()


def test_microphone_delivering_zeros_is_reported_missing():
    mic = FakeMicrophone(np.zeros(16000 * 3, np.float32), rate=16_000)
    events = []
    session = LiveSession(microphone=mic, asr="none", checkpoint=spy_model(), profile=spy_profile())
    session.on_event(events.append)
    with session:
        assert wait_for(lambda: any(isinstance(e, StatusEvent) and "zeros" in e.reason for e in events), 4)
        assert session.status()["audio"] == "missing"
        session.push_text("can you hear me")  # with the microphone mute, text carries the utterances
        assert wait_for(lambda: by_type(events, EmotionEvent), 4)
    states = [(e.state, e.reason) for e in by_type(events, StatusEvent) if e.modality == "audio" and e.state != "loading"]
    assert states[0] == ("active", "")  # the microphone worked (its extractor loaded), then delivered only zeros
    emotions = by_type(events, EmotionEvent)
    assert len(emotions) == 1 and emotions[0].modalities == ["text"] and emotions[0].transcript == "can you hear me"


def test_overloaded_live_pipeline_drops_the_oldest_waiting_utterance_and_says_so(monkeypatch):
    from momke.realtime import runner

    profile = spy_profile()
    profile.text.extract_s = 0.3
    session = LiveSession(asr="none", checkpoint=spy_model(), profile=profile)
    monkeypatch.setattr(runner, "UTTERANCES_WAITING", 1)  # a tiny queue, so a burst overflows it
    events = []
    session.on_event(events.append)
    with session:
        for i in range(5):
            session.push_text(f"sentence number {i}")
        assert wait_for(lambda: len(by_type(events, EmotionEvent) + by_type(events, DroppedUtteranceEvent)) == 5, 10)
    outcomes = sorted(by_type(events, EmotionEvent) + by_type(events, DroppedUtteranceEvent), key=lambda e: e.utterance_id)
    assert [e.utterance_id for e in outcomes] == [0, 1, 2, 3, 4]
    dropped = by_type(events, DroppedUtteranceEvent)
    assert dropped and all("overloaded" in e.reason for e in dropped)
    assert by_type(events, EmotionEvent)[-1].transcript == "sentence number 4"  # the newest is kept


def test_frozen_camera_gives_a_bounded_number_of_status_events_and_never_flickers_active(conversation, monkeypatch):
    assert conversation["duration"] > 20  # 20 s of replay time with a frozen camera

    class FrozenVideo(FileVideoDevice):
        first = None

        def read(self, decode=True):
            frame, t = super().read(decode)
            if frame is not None:
                FrozenVideo.first = frame if FrozenVideo.first is None else FrozenVideo.first
                frame = FrozenVideo.first.copy()
            return frame, t

    monkeypatch.setattr(session_module, "FileVideoDevice", FrozenVideo)
    events = run(replay(conversation))
    visual = [(e.state, e.reason) for e in by_type(events, StatusEvent) if e.modality == "visual"]
    assert all(state == "loading" for state, _ in visual[: next(i for i, v in enumerate(visual) if v[0] != "loading")])
    visual = [v for v in visual if v[0] != "loading"]  # (while its extractor loads and its capture starts)
    assert len(visual) <= 2, visual  # active -> frozen, and no more
    frozen = visual.index(("missing", "frozen frames (unchanged for over 2 s)"))
    # An older utterance's face check (its frames came before the freeze was noticed) must not
    # make the frozen camera "active" again.
    assert all(state != "active" for state, _ in visual[frozen:]), visual
    assert any("visual" in e.modalities for e in by_type(events, EmotionEvent))  # the first utterance had frames


def damaged_copy(source, directory, regions=(0.3, 0.5, 0.7), size=4000):
    """The file with `size` random bytes written over it at each fraction of its length."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(0)
    for fraction in regions:
        at = int(len(data) * fraction)
        data[at: at + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path = directory / f"damaged-{source.name}"
    path.write_bytes(data)
    return path


def test_corrupt_mp4_is_decoded_past_the_damage_and_reported(tmp_path):
    import subprocess

    from momke.realtime.session import DEMO_DIR

    source = DEMO_DIR / "conversation.mp4"
    bad = damaged_copy(source, tmp_path)
    check = subprocess.run(["ffmpeg", "-v", "error", "-i", str(bad), "-f", "null", "-"], capture_output=True, text=True,
                           check=False)
    assert "Invalid data" in check.stderr or "error" in check.stderr.lower()  # ffmpeg sees damage too
    transcript = DEMO_DIR / "transcript.json"
    good = replay({"path": source}, transcript=transcript)
    good_events = run(good)
    assert good.replay_complete is True and good.replay_errors == 0 and good.replay_problems == []
    session = replay({"path": bad}, transcript=transcript)
    events = run(session)
    assert session.replay_complete is False and session.replay_errors > 0
    assert any("damaged packet" in p for p in session.replay_problems), session.replay_problems
    reasons = [e.reason for e in by_type(events, StatusEvent)]
    assert "damaged data in the file (skipped)" in reasons
    # The rest of the file was decoded: utterances to the end, in step with the transcript
    # (lost audio was replaced by silence, so later times did not shift).
    emotions, good_emotions = by_type(events, EmotionEvent), by_type(good_events, EmotionEvent)
    assert emotions[-1].end > 30 and len(emotions) >= len(good_emotions) - 2
    # (Silence where audio was lost may split a line: a piece without its words is left out.)
    late = [e for e in emotions if e.start > 25 and e.transcript]
    assert late and all(any(abs(e.start - g.start) < 0.5 for g in good_emotions) for e in late)
    assert all("visual" in e.modalities for e in late)  # the video track went on too
