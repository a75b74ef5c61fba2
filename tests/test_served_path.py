"""Train as you serve: the served-media path (extractors/served.py), which builds training corpora,
gives the same per-utterance features as a LiveSession replay of the same file."""

from __future__ import annotations

import numpy as np
import pytest
from momke.extractors.base import FeatureProfile, ModalityExtractor
from momke.extractors.served import FrameGate, ServingOptions, pick_frames, served_utterances

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recording(ModalityExtractor):
    """Wraps a real extractor and keeps (start, end, vector) of every call."""

    def __init__(self, inner: ModalityExtractor) -> None:
        self.inner, self.modality, self.dim = inner, inner.modality, inner.dim
        self.calls: list[tuple[float, float, np.ndarray | None]] = []

    def extract(self, utterance):
        vector = self.inner.extract(utterance)
        if utterance.id != "warm-up":  # the session warms each extractor up on a dummy utterance
            self.calls.append((utterance.start, utterance.end, vector))
        return vector


@pytest.fixture(scope="module")
def whisper_profile():
    """The default checkpoint's own profile (Whisper's states and the prosodic functionals)."""
    from momke.extractors.profiles import load_profile
    from momke.models.checkpoint import DEFAULT_CHECKPOINT, load_config

    return load_profile(load_config(DEFAULT_CHECKPOINT).feature_profile, device="cpu")


def replayed_features(path, profile: FeatureProfile, disabled=("text",)):
    """{modality: [(start, end, vector)]} that a fast LiveSession replay computed from `path`."""
    from momke.models.checkpoint import load_checkpoint
    from momke.realtime import LiveSession

    recording = FeatureProfile(profile.name, Recording(profile.audio), Recording(profile.text),
                               Recording(profile.visual))
    model = load_checkpoint(device="cpu")
    with LiveSession(input_file=path, realtime=False, asr="none", checkpoint=model, profile=recording,
                     disabled=disabled) as session:
        assert session.wait(timeout=120)
    return {m: recording.extractor(m).calls for m in ("audio", "visual")}


def assert_same_features(served, replayed, profile, modality):
    expected = [(u.start, u.end, profile.extractor(modality).extract(u)) for u in served]
    assert len(replayed) == len(expected) > 0
    for (t0, t1, vector), (s0, s1, served_vector) in zip(replayed, expected):
        assert abs(t0 - s0) < 2e-3 and abs(t1 - s1) < 2e-3  # events round times to the millisecond
        assert (vector is None) == (served_vector is None)
        if vector is not None:
            assert np.abs(vector - served_vector).max() <= 1e-5


def test_served_audio_features_equal_a_live_replay(whisper_profile):
    from synth_speech import ravdess_clips

    # Three actors and emotions, one a shouted (strong-intensity angry) clip.
    for clip in ravdess_clips(3):
        served = served_utterances(clip, modalities=("audio",))
        replayed = replayed_features(clip, whisper_profile, disabled=("text", "visual"))
        assert_same_features(served, replayed["audio"], whisper_profile, "audio")
        # The extractor heard the cut, not the whole file: a RAVDESS clip is about half silence.
        import soundfile as sf

        assert sum(len(u.audio) for u in served) < 0.85 * sf.info(str(clip)).frames


def test_served_video_features_equal_a_live_replay(whisper_profile, recorded_conversation):
    conversation = recorded_conversation(2)  # two clips with a moving face, as an mp4
    served = served_utterances(conversation["path"])
    assert len(served) == 2 and all(1 <= len(u.frames) <= ServingOptions().max_frames for u in served)
    replayed = replayed_features(conversation["path"], whisper_profile)
    assert_same_features(served, replayed["audio"], whisper_profile, "audio")
    assert_same_features(served, replayed["visual"], whisper_profile, "visual")


def test_frame_gate_keeps_the_camera_rate_and_refuses_frozen_and_black_frames():
    gate = FrameGate(fps=5.0, frozen_s=1.0)
    rng = np.random.default_rng(0)
    lively = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(30)]
    kept = [t for i, frame in enumerate(lively) for t in [i / 25] if gate.admit(frame, t)[0]]
    assert np.allclose(np.diff(kept), 0.2)  # 25 fps in, 5 fps kept
    gate.reset()
    still = lively[0]
    verdicts = [gate.admit(still, i * 0.2) for i in range(10)]
    assert all(keep for keep, _ in verdicts[:5]) and verdicts[-1] == (False, "frozen frames (unchanged for over 1 s)")
    assert gate.admit(np.zeros((32, 32, 3), np.uint8), 5.0)[1].startswith("black frames")


def test_pick_frames_spreads_over_the_utterance():
    frames = [(t / 10, None) for t in range(11)]
    assert [t for t, _ in pick_frames(frames, 3)] == [0.0, 0.5, 1.0]
    assert pick_frames(frames[:2], 3) == frames[:2]


def test_segments_of_samples_in_memory_equal_those_of_the_file():
    import soundfile as sf
    from momke.extractors.served import speech_segments, speech_segments_of
    from synth_speech import ravdess_clips

    clip = ravdess_clips(1)[0]
    from_file = speech_segments(clip)
    from_memory = speech_segments_of(*sf.read(str(clip), dtype="float32"))
    assert len(from_file) == len(from_memory) >= 1
    for a, b in zip(from_file, from_memory):
        assert (a.start, a.end) == (b.start, b.end) and np.array_equal(a.audio, b.audio)


def test_silence_around_speech_hardly_moves_the_served_voice_features():
    """The voice path reads the voice, not the room: the served cut drops the silence a whole
    studio file carries, so padding a clip with 0.5-2 s of silence moves the served features a
    little (the VAD's 32 ms grid shifts the cut) and whole-file features a lot."""
    import soundfile as sf
    from momke.extractors.base import Utterance
    from momke.extractors.profiles import load_profile
    from momke.extractors.served import speech_segments_of
    from synth_speech import ravdess_clips

    extractor = load_profile("whisper-prosody", device="cpu").audio
    clip, rate = sf.read(str(ravdess_clips(1)[0]), dtype="float32")
    loud = np.flatnonzero(np.abs(clip) > 0.02 * np.abs(clip).max())
    speech = clip[max(0, loud[0] - 800): loud[-1] + 800]

    def padded(seconds):
        silence = np.zeros(int(seconds * rate), np.float32)
        return np.concatenate([silence, speech, silence])

    def served(samples):
        cut = max(speech_segments_of(samples, rate), key=lambda s: s.end - s.start)
        return extractor.extract(Utterance(audio=cut.audio, sample_rate=rate))

    def change(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(a))

    reference = served(padded(0.0))
    assert max(change(reference, served(padded(s))) for s in (0.5, 1.0, 2.0)) < 0.15
    whole = [extractor.extract(Utterance(audio=padded(s), sample_rate=rate)) for s in (0.0, 2.0)]
    assert change(*whole) > 0.25
