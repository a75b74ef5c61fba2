"""benchmarks/mpnet_text.py and the probe's cached embedding: the stronger encoder's files are
checked before use, and vectors cached in length-sorted chunks come back in the lines' order."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mpnet_text import PUBLISHED, verify
from text_encoder_probe import cached_vectors

LINES = ["Hey, you wanna see a movie tomorrow?", "I can't believe you did that to me!", "Oh. Okay.",
         "My grandmother passed away last week and I still can't sleep.", "Whatever.", "No way!"]


def test_a_file_that_differs_from_the_published_one_is_refused(tmp_path):
    for name in PUBLISHED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    with pytest.raises(ValueError, match=r"all-mpnet-base-v2 model\.safetensors: sha256 [0-9a-f]{64}, the published file has 78c0197b"):
        verify(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="sha256 missing"):
        verify(tmp_path)


def test_cached_chunks_come_back_in_the_lines_order(tmp_path):
    from momke.extractors.minilm import MAX_TOKENS, load_minilm
    from momke.extractors.text_lite import bundled_model_dir
    from momke.models.training.text_encoder import embed, token_ids

    encoder, tokenizer = load_minilm(bundled_model_dir())
    tokenizer.no_padding()
    ids = token_ids(tokenizer, LINES, MAX_TOKENS)
    expected = embed(encoder, ids)
    first = cached_vectors(encoder, ids, tmp_path / "set", chunk=4)
    assert len(list((tmp_path / "set").glob("*.npy"))) == 2  # 6 lines in chunks of 4
    assert torch.allclose(first, expected, atol=1e-5)
    # A second run reads the chunks (the encoder is not called) and gives the same vectors.
    again = cached_vectors(lambda *_: pytest.fail("embedded again"), ids, tmp_path / "set", chunk=4)
    assert torch.equal(again, first)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers absent")
def test_mpnet_encoder_equals_sentence_transformers(monkeypatch):
    from mpnet_text import load_mpnet, model_dir

    try:
        folder = model_dir()  # joined and checked against the published hashes
    except FileNotFoundError as missing:
        pytest.skip(str(missing))  # the five all-mpnet-base-v2 packages (420 MB) are optional
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder, tokenizer = load_mpnet(folder)
    encoded = tokenizer.encode_batch(LINES)
    with torch.inference_mode():
        ours = encoder(torch.tensor([e.ids for e in encoded]), torch.tensor([e.attention_mask for e in encoded]))
    reference = torch.tensor(SentenceTransformer(str(folder), device="cpu").encode(LINES))
    assert ours.shape == (len(LINES), 768)
    assert torch.allclose(ours, reference, atol=1e-5)
