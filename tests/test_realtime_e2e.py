"""End to end: a real recording (RAVDESS speech + a face video) replayed through LiveSession."""

from __future__ import annotations

import json

import pytest
from momke.models.checkpoint import save_checkpoint
from momke.realtime import DroppedUtteranceEvent, EmotionEvent, LiveSession, StatusEvent
from realtime_support import (
    lite_profile,
    make_conversation,
    ravdess_clips,
    session_threads,
    small_model,
)

DEMO_FACE_LINES = {1, 6}  # lines 2 and 7 of the bundled demo show the smiling face


@pytest.fixture(scope="module")
def conversation(recorded_conversation):
    return recorded_conversation(4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(small_model(), tmp_path_factory.mktemp("checkpoint"))


def test_replay_gives_one_event_per_utterance_with_times_transcript_and_modalities(conversation, checkpoint, tmp_path):
    log = tmp_path / "events.jsonl"
    seen = []
    session = LiveSession(
        input_file=conversation["path"], transcript=conversation["transcript"], realtime=False, asr="none",
        checkpoint=checkpoint, profile=lite_profile(), log_path=log,
    )
    session.on_event(seen.append)
    with session:
        events = list(session.events())
        assert session.wait(timeout=1)
    assert session_threads() == []
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert not [e for e in events if isinstance(e, DroppedUtteranceEvent)]
    expected = conversation["utterances"]
    assert len(emotions) == len(expected), [(e.start, e.end) for e in emotions]
    for event, (start, end, text) in zip(emotions, expected):
        # The VAD pads by 0.1 s and closes after a short silence: times within a few tenths.
        assert abs(event.start - start) < 0.35, (event.start, start)
        assert abs(event.end - end) < 0.5, (event.end, end)
        assert event.transcript == text
        assert event.modalities == ["audio", "text", "visual"]
        assert set(event.probabilities) == {"happy", "sad", "neutral", "angry"}
        assert abs(sum(event.probabilities.values()) - 1) < 1e-3
        assert event.label == max(event.probabilities, key=event.probabilities.get)
        for modality in event.modalities:
            assert abs(sum(event.expert_loads[modality].values()) - 1) < 1e-3
        assert event.latency_ms["total"] >= event.latency_ms["model"] > 0
    assert [e.utterance_id for e in emotions] == sorted({e.utterance_id for e in emotions})
    # Callbacks, the iterator and the JSON-lines log all saw the same events.
    assert [e.to_dict() for e in seen] == [e.to_dict() for e in events]
    header, *logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert header["type"] == "session" and header["session"] == session.session_id
    assert all(line.pop("session") == session.session_id and line.pop("wall_time") for line in logged)
    assert logged == [e.to_dict() for e in events]
    states = {(e.modality, e.state) for e in events if isinstance(e, StatusEvent)}
    assert {("audio", "active"), ("visual", "active"), ("text", "active")} <= states


def test_audio_file_replay_without_text_uses_audio_only(conversation, checkpoint, tmp_path):
    wav = conversation["path"].with_suffix(".wav")
    with LiveSession(input_file=wav, realtime=False, asr="none", checkpoint=checkpoint, profile=lite_profile()) as session:
        events = list(session.events())
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    assert len(emotions) == len(conversation["utterances"])
    assert all(e.modalities == ["audio"] and e.transcript is None for e in emotions)
    status = {e.modality: e for e in events if isinstance(e, StatusEvent) and e.modality == "visual"}
    assert status["visual"].state == "missing"


def test_checkpoint_for_other_features_is_refused(conversation, tmp_path):
    other = save_checkpoint(small_model(dims=(10, 20, 30)), tmp_path / "other")
    with pytest.raises(ValueError, match="does not match the features"):
        LiveSession(input_file=conversation["path"], asr="none", checkpoint=other, profile=lite_profile())


def test_bad_arguments_are_clear_errors(conversation, checkpoint, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        LiveSession(input_file=tmp_path / "nope.mp4", checkpoint=checkpoint, profile=lite_profile())
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(ValueError, match="cannot replay"):
        LiveSession(input_file=garbage, checkpoint=checkpoint, profile=lite_profile())
    with pytest.raises(ValueError, match="subset"):
        LiveSession(input_file=conversation["path"], disabled=("smell",), checkpoint=checkpoint, profile=lite_profile())
    with pytest.raises(ValueError, match="not both"):
        LiveSession(input_file=conversation["path"], microphone="default", checkpoint=checkpoint, profile=lite_profile())


def demo_lines():
    from momke.realtime.session import DEMO_DIR

    path = DEMO_DIR / "transcript.json"
    if not path.is_file():
        pytest.skip("the bundled demo (assets/demo) is missing")
    return json.loads(path.read_text())


def test_bundled_demo_replays_one_event_per_line(checkpoint):
    lines = demo_lines()
    with LiveSession.demo(realtime=False, asr="none", checkpoint=checkpoint, profile=lite_profile()) as session:
        emotions = [e for e in session.events() if isinstance(e, EmotionEvent)]
    assert len(emotions) == len(lines)
    for index, (event, line) in enumerate(zip(emotions, lines)):
        assert abs(event.start - line["start"]) < 0.35 and abs(event.end - line["end"]) < 0.5
        # The face is on camera during the happy lines only (assets/demo/SOURCE.md); a slide otherwise.
        expected = ["audio", "text", "visual"] if index in DEMO_FACE_LINES else ["audio", "text"]
        assert event.transcript == line["text"] and event.modalities == expected


def test_bundled_demo_with_the_default_asr(checkpoint):
    lines = demo_lines()
    with LiveSession.demo(transcript=None, realtime=False, asr="pocketsphinx", checkpoint=checkpoint,
                          profile=lite_profile(), asr_timeout_s=30) as session:
        emotions = [e for e in session.events() if isinstance(e, EmotionEvent)]
    assert len(emotions) == len(lines)
    with_text = [e for e in emotions if "text" in e.modalities]
    assert len(with_text) >= len(lines) - 1
    # Synthetic speech through a small offline recogniser: some words, not all, come out right.
    said = " ".join(line["text"].lower() for line in lines)
    heard = " ".join(e.transcript for e in with_text).split()
    assert sum(word in said for word in heard) >= len(heard) // 2


def test_readme_replay_example_runs_as_written(checkpoint, monkeypatch, capsys):
    import re
    from pathlib import Path

    import momke.models.checkpoint as checkpoints

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "LiveSession.demo(realtime=False" in b]
    assert blocks, "the README's replay example is gone"
    demo_lines()
    if not (checkpoints.DEFAULT_CHECKPOINT / "model.safetensors").is_file():  # not shipped yet
        monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", checkpoint)
    exec(compile(blocks[0], "README.md", "exec"), {})
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(e["type"] == "emotion" for e in printed) == len(demo_lines())


def test_real_time_replay_is_paced_by_the_session_clock(tmp_path):
    from realtime_support import spy_model, spy_profile

    talk = make_conversation(tmp_path, ravdess_clips(1), pause_s=0.8, video=False, transcript=False)
    arrivals = []
    session = LiveSession(input_file=talk["path"], realtime=True, asr="none", checkpoint=spy_model(), profile=spy_profile())
    session.on_event(lambda e: arrivals.append((e, session.clock.now())))
    with session:
        assert session.wait(timeout=talk["duration"] + 5)
    emotions = [(e, t) for e, t in arrivals if isinstance(e, EmotionEvent)]
    assert len(emotions) == 1
    event, arrived = emotions[0]
    # Not before the speech ended (real-time pacing), and soon after the VAD closed it.
    assert event.end <= arrived < event.end + 1.5
    assert 0 < event.latency_ms["endpoint"] < 800
    assert session.clock.now() >= talk["duration"] - 0.2
