"""The shipped default checkpoint: it loads, describes itself, and gets clear real cases right;
and its training recipe runs end to end on a tiny slice of the real corpora."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from momke.extractors.base import Utterance
from momke.models.checkpoint import DEFAULT_CHECKPOINT, check_features, load_checkpoint, load_config
from momke.models.commands.default_recipe import DEFAULT_RECIPE, load_recipe
from momke.models.config import MODALITIES

DATA = Path(os.environ.get("MOMKE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real corpora not found at {DATA} (set MOMKE_DATA_DIR)")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(DEFAULT_CHECKPOINT, device="cpu")


@pytest.fixture(scope="module")
def profile():
    from momke.extractors.profiles import load_profile

    return load_profile(load_config(DEFAULT_CHECKPOINT).feature_profile, device="cpu")


def predict_one(model, modality: str, vector: np.ndarray) -> str:
    """The label of one utterance that has only `modality` (a one-utterance conversation)."""
    index = MODALITIES.index(modality)
    mask = torch.zeros(1, 1, 3, dtype=torch.bool)
    mask[0, 0, index] = True
    features = {modality: torch.from_numpy(np.asarray(vector, dtype=np.float32))[None, None]}
    with torch.no_grad():
        logits = model(features, mask).logits[0, 0]
    return model.config.labels[int(logits.argmax())]


def test_checkpoint_matches_its_recipe_and_profile(model):
    from momke.extractors.profiles import profile_dims

    recipe = load_recipe(DEFAULT_RECIPE)
    config = load_config(DEFAULT_CHECKPOINT)
    assert config.feature_profile == recipe["feature_profile"] == "whisper-prosody-conv"
    assert list(config.labels) == recipe["labels"] == ["happy", "sad", "neutral", "angry"]
    assert config.context_mode == "causal"
    assert config.hidden_dim == recipe["model"]["hidden_dim"] and config.num_blocks == recipe["model"]["num_blocks"]
    check_features(config, "whisper-prosody-conv", profile_dims("whisper-prosody-conv"))  # raises ValueError on any mismatch
    # whisper-prosody has the same dimensions but other text vectors (no delta): refused by name.
    for other in ("lite", "whisper", "whisper-prosody"):
        with pytest.raises(ValueError):
            check_features(config, other, profile_dims(other))
    # It knows the context it was trained for and carries a temperature for every path and condition.
    assert config.max_context == recipe["model"]["max_context"] == recipe["label_matched"]["length_range"][1]
    assert set(config.calibration["modalities"]) == set(MODALITIES)
    assert set(config.calibration["fused"]) == {"a", "t", "v", "at", "av", "tv", "atv"}
    meta = config.metadata
    assert meta["protocol"] == "random" and meta["data"]["limit"] is None
    assert set(meta["data"]["sources"]) == {"ravdess", "nemo", "kor_emotiontts", "meld", "emorynlp", "fer2013"}
    assert "non-commercial" in meta["licences"]["checkpoint"]
    assert (DEFAULT_CHECKPOINT / "MODEL_CARD.md").is_file()
    # One member per seed of the recipe, stored as float16 so three fit in ~4 MB.
    assert config.ensemble_size == len(recipe["training"]["ensemble_seeds"]) == len(meta["selected"])
    assert (DEFAULT_CHECKPOINT / "model.safetensors").stat().st_size < 4_500_000
    assert not model.training


@needs_data
def test_strongly_angry_ravdess_clip_is_angry(model, profile):
    from momke.extractors.served import served_utterances

    # Actor 18 (held out: never trained on), emotion 05 angry, intensity 02 strong; served as the
    # app serves it (the segmenter's cut, not the whole file).
    served = served_utterances(DATA / "ravdess_speech_16k" / "Actor_18" / "03-01-05-02-01-01-18.flac", modalities=("audio",))
    utterance = max(served, key=lambda u: u.end - u.start)
    assert predict_one(model, "audio", profile.extractor("audio").extract(utterance)) == "angry"


@needs_data
def test_happy_fer2013_face_is_happy(model, profile):
    arrays = np.load(DATA / "fer2013_48x48.npz", allow_pickle=False)
    happy = np.flatnonzero(arrays["public_test_labels"] == 3)  # class 3 = happy; never trained on (public_test validates or tests)
    face = arrays["public_test_images"][happy[:1]]
    features = profile.extractor("visual").features_from_faces(face)[0]
    assert predict_one(model, "visual", features) == "happy"


def test_obviously_sad_sentence_is_sad(model, profile):
    sentence = "I miss her so much, I can't stop crying since she died."
    vector = profile.extractor("text").extract(Utterance(transcript=sentence))
    assert predict_one(model, "text", vector) == "sad"


@needs_data
@pytest.mark.slow  # about 80 s on the shared 2-core CPU (a fresh cache: every slice is extracted)
def test_recipe_trains_end_to_end_on_a_tiny_slice(tmp_path):
    from momke.models.commands.default_recipe import CONVERSATION_RECIPE, main

    out = tmp_path / "checkpoint"
    # The conversation recipe: the default one plus DailyDialog and the noisy text copies.
    code = main(["--recipe", str(CONVERSATION_RECIPE), "--limit", "2", "--cache", str(tmp_path / "cache"), "--out", str(out),
                 "--stage1-epochs", "1", "--stage2-epochs", "1", "--quiet"])
    assert code == 0
    trained = load_checkpoint(out, device="cpu")
    assert trained.config.context_mode == "causal" and list(trained.config.labels) == load_recipe(CONVERSATION_RECIPE)["labels"]
    sources = trained.config.metadata["data"]["sources"]
    for source, modality in (("ravdess", "audio"), ("nemo", "audio"), ("kor_emotiontts", "audio"), ("meld", "text"),
                             ("emorynlp", "text"), ("dailydialog", "text"), ("fer2013", "visual")):
        assert sources[source]["modality"] == modality
        assert sources[source]["labelled_utterances"]["train"] > 0
    for source in ("meld", "emorynlp", "dailydialog"):  # each text source's noisy copy validates (and trains: 40 %)
        assert sources[f"{source}+asr"]["modality"] == "text"
        assert sources[f"{source}+asr"]["labelled_utterances"]["valid"] > 0
