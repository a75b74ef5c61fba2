"""The lite text extractor: all-MiniLM-L6-v2 from the installed package, offline."""

import numpy as np
import pytest
from momke.extractors.base import Utterance
from momke.extractors.text_lite import DIM, LiteTextExtractor, bundled_model_dir


@pytest.fixture(scope="module")
def extractor():
    return LiteTextExtractor(device="cpu")


def test_model_files_ship_in_the_package():
    folder = bundled_model_dir()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def test_building_loads_nothing():
    assert LiteTextExtractor()._model is None


def test_embeddings_are_384_d_unit_vectors(extractor):
    vector = extractor.extract(Utterance(transcript="I can't believe you did that to me!"))
    assert vector.shape == (DIM,) and vector.dtype == np.float32
    assert np.isfinite(vector).all()
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_empty_or_whitespace_transcript_is_missing(extractor):
    for transcript in ("", "   \n\t", None):
        assert extractor.extract(Utterance(transcript=transcript)) is None


def test_similar_sentences_are_closer_than_unrelated_ones(extractor):
    happy, glad, train = extractor.embed(["I am so happy today.", "Today I feel really glad.",
                                          "The train to Boston leaves at nine."])
    assert happy @ glad > happy @ train + 0.3


def test_batch_matches_single_and_keeps_missing_in_place(extractor):
    texts = ["Hello there.", "", "Why are you shouting at me?", "   "]
    batch = extractor.extract_batch([Utterance(transcript=t) for t in texts])
    assert batch[1] is None and batch[3] is None
    single = extractor.extract(Utterance(transcript=texts[2]))
    np.testing.assert_allclose(batch[2], single, atol=1e-5)
