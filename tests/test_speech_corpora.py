"""The voice path's training data: speech corpora served as the app serves them, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from momke.extractors.media import SAMPLE_RATE
from momke.extractors.served import served_utterances, speech_segments_of
from momke.models.commands.extract_corpus import FeatureCache
from momke.models.commands.speech_corpora import Clip, ServedVoice, read_clips
from momke.models.training.augment import augment
from synth_speech import data_dir, ravdess_clips
from synth_speech import read_clips as read_samples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_augment_is_seeded_bounded_and_keeps_the_speech():
    clip = read_samples(ravdess_clips(1))[0]
    variants = [augment(clip, np.random.default_rng(seed)) for seed in range(6)]
    again = augment(clip, np.random.default_rng(0))
    assert np.array_equal(variants[0], again)  # the same seed, the same variant
    assert len({len(v) for v in variants}) > 1  # speed and silence change the length
    for variant in variants:
        assert variant.dtype == np.float32 and np.isfinite(variant).all() and np.abs(variant).max() <= 1.0
        # The segmenter still hears the sentence in every variant (noise is 5 dB SNR or more).
        segments = speech_segments_of(variant, SAMPLE_RATE)
        assert segments and max(s.end - s.start for s in segments) > 0.8
    with pytest.raises(ValueError, match="finite"):
        augment(np.array([0.0, np.nan], np.float32), np.random.default_rng(0))


def test_clips_are_split_by_speaker():
    folder = data_dir() / "emotional_speech" / "nemo"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"nEMO not found in {folder} (set MOMKE_DATA_DIR)")
    labels = {"happy": "happy", "sad": "sad", "neutral": "neutral", "angry": "angry"}
    clips = read_clips("nemo", folder, {"valid_speakers": ["KS0"], "test_speakers": ["EB0", "TP0"]}, labels)
    splits = {}
    for clip in clips:
        splits.setdefault(clip.speaker, set()).add(clip.split)
    assert all(len(s) == 1 for s in splits.values())
    assert splits["nemo-KS0"] == {"valid"} and splits["nemo-EB0"] == {"test"} and splits["nemo-WR0"] == {"train"}
    assert {c.label for c in clips} == set(labels)


def test_served_voice_reads_the_cut_the_app_hears(tmp_path):
    from realtime_support import lite_profile

    extractor = lite_profile().audio
    voice = ServedVoice(extractor, FeatureCache(tmp_path, "lite-test"))
    for path in ravdess_clips(3):
        clip = Clip(path, "angry", "ravdess-01", "train")
        served = max(served_utterances(path, modalities=("audio",)), key=lambda u: u.end - u.start)
        assert np.allclose(voice.features(clip, 0), extractor.extract(served), atol=1e-6)
        augmented = voice.features(clip, 1)
        assert augmented is not None and not np.allclose(augmented, voice.features(clip, 0))
        assert np.array_equal(voice.features(clip, 1), augmented)  # the cache gives the same variant back
