"""Utterance segmentation on real speech (espeak-ng made here, RAVDESS from the shared data)."""

import itertools

import numpy as np
import pytest
import torch
from momke.extractors.segmentation import SpeechSegment, UtteranceSegmenter
from synth_speech import SR, espeak, ravdess_clips, read_clips, silence, with_pauses

# The segmenter runs on one torch thread in the session (its ops are tiny); so do these tests.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENTENCES = (
    "Hello there, how are you doing today",
    "I am feeling rather good, thank you",
    "Let us go for a walk in the park",
)
T0 = 1000.0  # the caller's clock does not start at zero


def run(segmenter, audio, chunk, t0=T0):
    out = []
    for i in range(0, len(audio), chunk):
        out += segmenter.push(audio[i : i + chunk], t0 + i / SR)
    return out + segmenter.flush()


def assert_matches(segments, spans, tol=0.3, t0=T0, jitter=False):
    assert len(segments) == len(spans), [(s.start - t0, s.end - t0) for s in segments]
    for seg, (a, b) in zip(segments, spans):
        assert abs(seg.start - t0 - a) < tol and abs(seg.end - t0 - b) < tol, (seg, a, b)
        assert seg.audio.dtype == np.float32 and seg.audio.ndim == 1
        if not jitter:  # with clock jitter, times follow the caller's stamps, audio the samples
            assert abs(len(seg.audio) / SR - seg.duration) < 1e-3


@pytest.fixture(scope="module")
def three_utterances():
    return with_pauses([espeak(s) for s in SENTENCES], pause_s=1.0)


def test_three_espeak_utterances_found_with_right_times(three_utterances):
    audio, spans = three_utterances
    segments = run(UtteranceSegmenter(), audio, 4000)
    assert_matches(segments, spans)
    assert all(isinstance(s, SpeechSegment) and s.ended_by == "silence" for s in segments)


def test_three_ravdess_utterances_found_with_right_times():
    audio, spans = with_pauses(read_clips(ravdess_clips(3, actor="Actor_01")), pause_s=1.0)
    assert_matches(run(UtteranceSegmenter(), audio, 1600), spans)


def test_chunk_size_does_not_change_the_result(three_utterances):
    audio, _ = three_utterances
    small = run(UtteranceSegmenter(), audio, 160)
    large = run(UtteranceSegmenter(), audio, 4000)
    odd = run(UtteranceSegmenter(), audio, 997)
    assert len(small) == len(large) == len(odd) == 3
    for a, b, c in zip(small, large, odd):
        assert a.start == pytest.approx(b.start) == pytest.approx(c.start)
        assert a.end == pytest.approx(b.end) == pytest.approx(c.end)
        assert np.array_equal(a.audio, b.audio) and np.array_equal(a.audio, c.audio)


def test_padding_adds_audio_around_the_speech(three_utterances):
    audio, _ = three_utterances
    bare = run(UtteranceSegmenter(pad_s=0.0), audio, 4000)
    padded = run(UtteranceSegmenter(pad_s=0.2), audio, 4000)
    for b, p in zip(bare, padded):
        assert p.start == pytest.approx(b.start - 0.2, abs=1e-6)
        assert p.end == pytest.approx(b.end + 0.2, abs=1e-6)


def test_speech_that_never_pauses_is_cut_and_the_next_utterance_follows():
    speech = np.concatenate([espeak(s) for s in SENTENCES * 2])  # ~12 s without a pause
    audio = np.concatenate([silence(0.5), speech, silence(1.0)])
    segments = run(UtteranceSegmenter(max_utterance_s=3.0, min_silence_s=1.0), audio, 1600)
    cuts = [s for s in segments if s.ended_by == "max_length"]
    assert len(cuts) >= 3
    assert all(s.duration <= 3.0 + 0.1 + 1e-6 for s in segments)
    for prev, nxt in itertools.pairwise(segments):  # pieces tile the speech: no gap, no overlap
        if prev.ended_by == "max_length":
            assert nxt.start == pytest.approx(prev.end, abs=1e-6)
    covered = sum(len(s.audio) for s in segments) / SR
    assert covered >= 0.9 * len(speech) / SR


def test_silence_and_noise_give_no_segment():
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(SR * 4)).astype(np.float32)
    hum = (0.1 * np.sin(2 * np.pi * 50 * np.arange(SR * 4) / SR)).astype(np.float32)
    for audio in (silence(4.0), noise, hum):
        assert run(UtteranceSegmenter(), audio, 512) == []


def test_short_blips_are_dropped():
    blip = espeak("hello there my friend")[2000 : 2000 + int(0.15 * SR)]
    audio = np.concatenate([silence(1.0), blip, silence(1.0)])
    assert len(run(UtteranceSegmenter(min_speech_s=0.05), audio, 512)) == 1  # it is speech
    assert run(UtteranceSegmenter(min_speech_s=0.25), audio, 512) == []


def test_flush_closes_an_utterance_cut_by_the_end_of_stream():
    speech = espeak(SENTENCES[0])
    audio = np.concatenate([silence(1.0), speech])
    seg = UtteranceSegmenter()
    pushed = []
    for i in range(0, len(audio), 1600):
        pushed += seg.push(audio[i : i + 1600], i / SR)
    assert pushed == [] and seg.in_speech
    (last,) = seg.flush()
    assert last.ended_by == "flush"
    assert last.end == pytest.approx(len(audio) / SR, abs=0.05)
    assert seg.flush() == []


def test_reset_forgets_the_utterance_in_progress(three_utterances):
    audio, spans = three_utterances
    seg = UtteranceSegmenter()
    half = int((spans[0][0] + 0.8) * SR)  # stop in the middle of the first utterance
    seg.push(audio[:half], 0.0)
    assert seg.in_speech
    seg.reset()
    assert not seg.in_speech and seg.flush() == []
    again = run(seg, audio, 4000)
    fresh = run(UtteranceSegmenter(), audio, 4000)
    assert [(s.start, s.end) for s in again] == [(s.start, s.end) for s in fresh]


def test_a_gap_in_the_timestamps_ends_the_utterance_and_restarts_the_clock(three_utterances):
    audio, spans = three_utterances
    split = int((spans[0][0] + 0.8) * SR)  # inside the first utterance
    seg = UtteranceSegmenter()
    out = seg.push(audio[:split], 0.0)
    out += seg.push(audio[split:], split / SR + 5.0)  # 5 s of audio were lost
    out += seg.flush()
    assert out[0].ended_by == "discontinuity"
    assert out[0].end == pytest.approx(split / SR, abs=0.05)
    later = [s for s in out[1:] if s.end > split / SR + 5.0]
    assert len(later) >= 2 and all(s.start >= split / SR + 5.0 for s in later)
    assert later[-1].start == pytest.approx(spans[2][0] + 5.0, abs=0.3)


def test_small_clock_jitter_is_not_a_discontinuity(three_utterances):
    audio, spans = three_utterances
    rng = np.random.default_rng(1)
    seg, out = UtteranceSegmenter(), []
    for i in range(0, len(audio), 1600):
        out += seg.push(audio[i : i + 1600], T0 + i / SR + rng.uniform(-0.03, 0.03))
    out += seg.flush()
    assert_matches(out, spans, jitter=True)


def test_probabilities_match_silero_vads_own_streaming_wrapper(three_utterances):
    from silero_vad import load_silero_vad

    audio, _ = three_utterances
    reference = load_silero_vad()
    seg = UtteranceSegmenter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # only for speed; the numbers do not depend on it
    try:
        for i in range(0, 40 * 512, 512):
            window = audio[i : i + 512]
            ours = seg.speech_prob(window)
            theirs = float(reference(torch.from_numpy(window), SR).detach())
            assert ours == pytest.approx(theirs, abs=1e-5)
    finally:
        torch.set_num_threads(threads)


def test_push_leaves_the_callers_torch_thread_count_alone(three_utterances):
    audio, _ = three_utterances
    threads = torch.get_num_threads()
    seg = UtteranceSegmenter()
    seg.push(audio[:SR], 0.0)
    seg.flush()
    assert torch.get_num_threads() == threads


def test_bad_input_is_rejected_and_loses_nothing(three_utterances):
    audio, spans = three_utterances
    with pytest.raises(ValueError, match="16000"):
        UtteranceSegmenter(sample_rate=44100)
    seg = UtteranceSegmenter()
    with pytest.raises(ValueError, match="sample rate"):
        seg.push(audio[:1000], 0.0, sample_rate=48000)
    bad = audio[:1000].copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        seg.push(bad, 0.0)
    with pytest.raises(ValueError, match="mono"):
        seg.push(np.zeros((100, 2), np.float32), 0.0)
    with pytest.raises(ValueError, match="float"):
        seg.push(np.zeros(100, np.int16), 0.0)
    with pytest.raises(ValueError, match="finite"):
        seg.push(audio[:1000], float("inf"))
    # none of the rejected chunks entered the stream
    assert_matches(run(seg, audio, 4000), spans)


def test_the_vad_model_loads_from_the_package_without_network(monkeypatch):
    import socket

    from momke.extractors import segmentation

    def no_network(*args, **kwargs):
        raise AssertionError("the VAD tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(segmentation, "_model", None)  # force a fresh load
    threads = torch.get_num_threads()
    seg = UtteranceSegmenter()
    assert seg._net is segmentation._model is not None
    assert torch.get_num_threads() == threads  # silero_vad's import-time set_num_threads undone


def test_shouted_speech_is_speech():
    """Strong-intensity RAVDESS clips that silero-vad scores below 0.1 still give an utterance,
    and so does a clip scaled to full scale; broadband noise at the same level gives none."""
    from synth_speech import data_dir

    folder = data_dir() / "ravdess_speech_16k"
    names = ["Actor_18/03-01-05-02-01-02-18", "Actor_18/03-01-05-02-02-01-18", "Actor_06/03-01-06-02-01-01-06"]
    clips = [folder / f"{name}.flac" for name in names]
    if not all(c.is_file() for c in clips):
        pytest.skip(f"RAVDESS clips not found in {folder} (set MOMKE_DATA_DIR)")
    import soundfile as sf

    seg = UtteranceSegmenter()
    for clip in clips:
        audio = sf.read(str(clip), dtype="float32")[0]
        for scaled in (audio, audio / np.abs(audio).max()):
            segments = run(seg, scaled, 1024)
            assert len(segments) >= 1, f"{clip.name} (peak {np.abs(scaled).max():.2f}) gave no utterance"
            assert sum(s.duration for s in segments) > 0.8  # the sentence, not a blip
    noise = (0.3 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    assert run(seg, noise, 1024) == []
