"""The lite audio extractor on real speech (espeak-ng, made here), silence and awkward inputs."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from momke.extractors.audio_lite import DIM, SILENCE_DBFS, LiteAudioExtractor, feature_names
from momke.extractors.base import Utterance
from momke.extractors.media import load_audio

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """About 3 s of synthetic English speech at espeak-ng's 22.05 kHz."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "The quick brown fox jumps over the lazy dog, twice."], check=True)
    samples, rate = soundfile.read(path, dtype="float32")
    return samples, rate


def extract(samples, rate):
    return LiteAudioExtractor().extract(Utterance(audio=samples, sample_rate=rate))


def names_index(name):
    return feature_names().index(name)


def test_every_dimension_has_a_unique_name():
    names = feature_names()
    assert len(names) == DIM == LiteAudioExtractor.dim
    assert len(set(names)) == DIM


def test_speech_gives_finite_features_with_plausible_prosody(speech):
    samples, rate = speech
    vector = extract(samples, rate)
    assert vector.shape == (DIM,) and vector.dtype == np.float32
    assert np.isfinite(vector).all()
    f0_hz = 100 * 2 ** vector[names_index("f0_p50")]
    assert 60 < f0_hz < 250, f0_hz  # espeak's default voice speaks around 100-150 Hz
    assert 0.2 < vector[names_index("f0_voiced_ratio")] <= 1.0
    assert vector[names_index("voiced_onsets_per_second")] > 1.0


def test_pitch_of_a_pure_tone_is_measured():
    t = np.arange(16000) / 16000
    vector = extract((0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    assert 100 * 2 ** vector[names_index("f0_mean")] == pytest.approx(220, rel=0.01)


def test_silence_and_near_silence_are_missing():
    assert extract(np.zeros(32000, np.float32), 16000) is None
    quiet = np.random.default_rng(0).normal(0, 10 ** ((SILENCE_DBFS - 10) / 20), 32000).astype(np.float32)
    assert extract(quiet, 16000) is None
    assert LiteAudioExtractor().extract(Utterance(audio=None)) is None
    assert extract(np.full(32000, 0.3, np.float32), 16000) is None  # a DC offset alone is no sound


def test_rate_and_channels_do_not_change_the_features_much(speech, tmp_path):
    """A 44.1 kHz stereo file of the same speech gives nearly the same vector as the original."""
    samples, rate = speech
    path = tmp_path / "stereo.wav"
    subprocess.run(["sox", "-q", "-D", "-r", str(rate), "-e", "floating-point", "-b", "32", "-c", "1", "-t", "raw", "-",
                    "-r", "44100", "-c", "2", str(path)], input=samples.tobytes(), check=True)
    stereo, stereo_rate = soundfile.read(path, dtype="float32")
    assert stereo.ndim == 2 and stereo.shape[1] == 2 and stereo_rate == 44100
    two_seconds = stereo[: 2 * 44100]
    vector = extract(two_seconds, 44100)
    assert vector.shape == (DIM,) and np.isfinite(vector).all()
    reference = extract(samples[: 2 * rate], rate)
    mel = slice(0, 40)
    assert np.abs(vector[mel] - reference[mel]).max() < 0.3  # log10 power: within a factor of 2
    assert abs(vector[names_index("f0_p50")] - reference[names_index("f0_p50")]) < 0.05


def test_file_loader_reads_any_rate_and_channel_count(speech, tmp_path):
    samples, rate = speech
    path = tmp_path / "speech.flac"
    soundfile.write(path, np.stack([samples, samples], axis=1), rate)
    loaded, loaded_rate = load_audio(path)
    assert loaded_rate == rate and loaded.shape == samples.shape
    with pytest.raises(ValueError, match="not found"):
        load_audio(tmp_path / "nothing.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(ValueError, match="cannot decode"):
        load_audio(broken)


def test_very_short_input_still_gives_features(speech):
    samples, rate = speech
    loudest = int(np.argmax(np.abs(samples)))
    short = samples[max(0, loudest - rate // 40): loudest + rate // 40]  # 50 ms around the loudest sample
    vector = extract(short, rate)
    assert vector.shape == (DIM,) and np.isfinite(vector).all()
    assert extract(samples[:100], rate) is None  # under 10 ms: nothing to measure


def test_clipped_and_int16_input(speech):
    samples, rate = speech
    clipped = np.clip(samples * 20, -1, 1)
    vector = extract(clipped, rate)
    assert np.isfinite(vector).all()
    as_int16 = (samples * 32767).astype(np.int16)
    np.testing.assert_allclose(extract(as_int16, rate), extract(samples, rate), atol=1e-2)
    over_range = extract(samples * 50, rate)  # floats beyond [-1, 1] behave as clipped
    np.testing.assert_allclose(over_range, extract(np.clip(samples * 50, -1, 1), rate), atol=1e-5)


def test_long_input_is_duration_independent(speech):
    samples, rate = speech
    pause = np.zeros(rate // 2, np.float32)
    long = np.tile(np.concatenate([samples, pause]), 40)  # about 2.5 minutes
    once = extract(np.concatenate([samples, pause]), rate)
    many = extract(long, rate)
    assert np.isfinite(many).all()
    mel = slice(0, 40)
    assert np.abs(many[mel] - once[mel]).max() < 0.1


def test_bad_input_raises_clear_errors(speech):
    samples, rate = speech
    broken = samples.copy()
    broken[100] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        extract(broken, rate)
    broken[100] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        extract(broken, rate)
    with pytest.raises(ValueError, match="sample_rate"):
        extract(samples, None)
    with pytest.raises(ValueError, match=r"\[samples, channels\]"):
        extract(np.stack([samples, samples]), rate)
