"""The MiniLM low-rank delta: stored small, merged at load equal to the adapted forward, and the
whisper-prosody-conv profile that reads it."""

import numpy as np
import pytest
import torch
from momke.extractors.base import Utterance
from momke.extractors.minilm import MAX_TOKENS, load_minilm
from momke.extractors.minilm_delta import (
    add_low_rank,
    merge_delta,
    merged_copy,
    read_delta,
    save_delta,
)
from momke.extractors.profiles import CONVERSATION_DELTA, feature_source, load_profile, profile_dims
from momke.extractors.runtime import bundled
from momke.extractors.text_lite import LiteTextExtractor, bundled_model_dir
from momke.models.training.text_encoder import embed, token_ids

LINES = ["Hey, you wanna see a movie tomorrow?", "I can't believe you did that to me!", "Oh. Okay.",
         "My grandmother passed away last week and I still can't sleep.", "Whatever."]


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """An adapted encoder with non-zero low-rank factors (a trained delta is never zero) and its file."""
    encoder, tokenizer = load_minilm(bundled_model_dir())
    add_low_rank(encoder, rank=4, alpha=8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith(".up"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    path = tmp_path_factory.mktemp("delta") / "delta.safetensors"
    save_delta(encoder, path, note="test")
    tokenizer.no_padding()
    return encoder, tokenizer, path


def test_only_the_low_rank_factors_train(adapted):
    encoder, _, _ = adapted
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith((".up", ".down")) for name in trainable)
    assert len(trainable) == 6 * 6 * 2  # six linears in each of six layers, two factors each


def test_merged_encoder_equals_the_adapted_forward(adapted):
    encoder, tokenizer, path = adapted
    ids = token_ids(tokenizer, LINES, MAX_TOKENS)
    expected = embed(encoder, ids)
    merged = merge_delta(load_minilm(bundled_model_dir())[0], path)
    plain = load_minilm(bundled_model_dir())[0]
    assert torch.allclose(embed(merged, ids), expected, atol=1e-5)
    assert (embed(plain, ids) - expected).abs().max() > 1e-3  # the delta does change the vectors
    # Folding the factors in place gives the same encoder as merging the file.
    assert torch.allclose(embed(merged_copy(encoder), ids), expected, atol=1e-5)


def test_delta_file_is_small_and_says_what_it_is(adapted):
    _, _, path = adapted
    factors, scale = read_delta(path)
    assert len(factors) == 36 and scale == pytest.approx(2.0)
    assert path.stat().st_size < 700_000  # rank 4: 165,888 float32 numbers (0.66 MB); the encoder is 90 MB


def test_a_file_that_is_not_a_delta_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a MiniLM low-rank delta"):
        read_delta(bundled("weights", "fer_mini_xception.safetensors"))
    with pytest.raises(FileNotFoundError):
        LiteTextExtractor(delta=tmp_path / "missing.safetensors")


def test_a_delta_of_another_shape_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "wrong.safetensors"
    save_file({"layers.0.query.down": torch.zeros(4, 100), "layers.0.query.up": torch.zeros(384, 4)}, str(path),
              metadata={"format": "minilm-lora-1", "rank": "4", "scale": "1.0"})
    with pytest.raises(ValueError, match="does not fit"):
        merge_delta(load_minilm(bundled_model_dir())[0], path)


def test_conversation_profile_reads_the_shipped_delta():
    assert bundled("weights", CONVERSATION_DELTA).is_file()
    assert bundled("weights", CONVERSATION_DELTA).stat().st_size < 2_500_000
    assert profile_dims("whisper-prosody-conv") == profile_dims("whisper-prosody")
    assert profile_dims("whisper-prosody-conv")[1] == 384
    assert feature_source("whisper-prosody-conv", "audio") == "whisper-prosody"
    assert feature_source("whisper-prosody-conv", "text") == "whisper-prosody-conv"
    assert feature_source("whisper-prosody", "audio") == "whisper-prosody"
    conv = load_profile("whisper-prosody-conv", device="cpu").extractor("text")
    plain = load_profile("whisper-prosody", device="cpu").extractor("text")
    a, b = (e.extract(Utterance(transcript=LINES[1])) for e in (conv, plain))
    assert a.shape == b.shape == (384,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-4)
    assert float(a @ b) < 0.999  # other vectors: the delta is merged in


def test_checkpoint_of_the_other_profile_is_refused():
    from momke.models.checkpoint import check_features
    from momke.models.config import MoMKEConfig

    dims = profile_dims("whisper-prosody")
    config = MoMKEConfig(feature_dims=dims, feature_profile="whisper-prosody")
    with pytest.raises(ValueError, match="'whisper-prosody' feature profile, not 'whisper-prosody-conv'"):
        check_features(config, "whisper-prosody-conv", dims)
    check_features(MoMKEConfig(feature_dims=dims, feature_profile="whisper-prosody-conv"), "whisper-prosody-conv", dims)
