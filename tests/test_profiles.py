"""Feature profiles: lite dims without loading networks; research encoders from local folders.

The research tests save tiny randomly initialised transformers models to tmp_path, so the real
offline loading code runs without any download.
"""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from momke.extractors.base import Utterance
from momke.extractors.profiles import load_profile, profile_dims
from momke.extractors.research import ResearchAudioExtractor, ResearchTextExtractor
from momke.extractors.text_lite import bundled_model_dir


def test_lite_profile_builds_without_loading_networks():
    profile = load_profile("lite", device="cpu")
    assert profile.name == "lite"
    assert profile.dims[:2] == (166, 384)
    assert profile.dims[2] > 7  # pooled mini-Xception features + 7 expression probabilities
    assert profile.text._model is None
    assert profile_dims("lite") == profile.dims


def test_unknown_profile_or_option_is_refused():
    with pytest.raises(ValueError, match="unknown feature profile"):
        load_profile("huge")
    with pytest.raises(ValueError, match="unknown options"):
        load_profile("lite", audio_path="/somewhere")


def test_research_profile_needs_existing_local_folders(tmp_path):
    with pytest.raises(ValueError, match="needs a local audio"):
        load_profile("research")
    with pytest.raises(ValueError, match="not found"):
        load_profile("research", audio_path=tmp_path / "missing", text_path=tmp_path)
    with pytest.raises(ValueError, match="config.json is missing"):
        ResearchTextExtractor(tmp_path)


@pytest.fixture(scope="module")
def tiny_wav2vec(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                            conv_dim=(24, 24), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2)
    folder = tmp_path_factory.mktemp("wav2vec")
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_text_encoder(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()), local_files_only=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=48, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Where did you put my keys?"], check=True)
    return soundfile.read(path, dtype="float32")


def test_research_audio_layers_and_pooling(tiny_wav2vec, speech):
    samples, rate = speech
    utterance = Utterance(audio=samples, sample_rate=rate)
    last = ResearchAudioExtractor(tiny_wav2vec, device="cpu")
    assert last.dim == 32 and last._model is None
    vector = last.extract(utterance)
    assert vector.shape == (32,) and vector.dtype == np.float32 and np.isfinite(vector).all()
    cnn = ResearchAudioExtractor(tiny_wav2vec, layer="features", pooling="mean_std", device="cpu")
    assert cnn.dim == 48 and cnn.extract(utterance).shape == (48,)
    first = ResearchAudioExtractor(tiny_wav2vec, layer=0, device="cpu").extract(utterance)
    assert not np.allclose(first, vector)
    assert last.extract(Utterance(audio=np.zeros(16000, np.float32), sample_rate=16000)) is None
    with pytest.raises(ValueError, match="outside"):
        ResearchAudioExtractor(tiny_wav2vec, layer=7)
    with pytest.raises(ValueError, match="pooling"):
        ResearchAudioExtractor(tiny_wav2vec, pooling="attention")


def test_research_text_batches_and_pools(tiny_text_encoder):
    extractor = ResearchTextExtractor(tiny_text_encoder, batch_size=2, device="cpu")
    assert extractor.dim == 48
    texts = ["Hi.", "", "I told you a thousand times, no!", "Fine, whatever you say."]
    batch = extractor.extract_batch([Utterance(transcript=t) for t in texts])
    assert batch[1] is None
    assert all(v.shape == (48,) and np.isfinite(v).all() for v in (batch[0], batch[2], batch[3]))
    # Padding inside a batch must not change a sentence's vector.
    alone = extractor.extract(Utterance(transcript=texts[0]))
    np.testing.assert_allclose(batch[0], alone, atol=1e-4)
    cls = ResearchTextExtractor(tiny_text_encoder, layers=-1, pooling="cls", device="cpu").extract(
        Utterance(transcript=texts[0]))
    assert not np.allclose(cls, alone)
    with pytest.raises(ValueError, match="layers"):
        ResearchTextExtractor(tiny_text_encoder, layers=(9,))


def test_research_profile_reports_checkpoint_dims(tiny_wav2vec, tiny_text_encoder):
    profile = load_profile("research", audio_path=tiny_wav2vec, text_path=tiny_text_encoder,
                           audio_layer="features", text_layers=(-1,))
    assert profile.name == "research"
    assert profile.dims[:2] == (24, 48)
    assert profile.audio._model is None and profile.text._model is None


def test_lite_visual_dim_constant_matches_the_visual_extractor():
    from momke.extractors.profiles import LITE_VISUAL_DIM

    assert load_profile("lite").visual.dim == LITE_VISUAL_DIM
