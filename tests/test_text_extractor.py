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


def _real_lines() -> list[str]:
    """The demo's transcript, and MELD dev lines (real, varied conversation) when the data is here."""
    import csv
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    lines = [entry["text"] for entry in json.loads((root / "assets/demo/transcript.json").read_text())]
    meld = root.parent / "shared/data/meld/dev_sent_emo.csv"
    if meld.is_file():
        with meld.open(encoding="utf-8") as file:
            lines += [row["Utterance"] for row, _ in zip(csv.DictReader(file), range(300))]
    return lines + ["word " * 400]  # longer than the model's 256 tokens: cut the same way


def test_the_project_encoder_equals_sentence_transformers(extractor):
    """The live path's own MiniLM gives the published model's embeddings (same checkpoint, read
    by sentence-transformers), so features and trained checkpoints stay valid."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from momke.extractors.text_lite import offline_quiet_loading

    lines = [" ".join(line.split()) for line in _real_lines()]
    with offline_quiet_loading():
        reference = sentence_transformers.SentenceTransformer(str(bundled_model_dir()), device="cpu",
                                                              local_files_only=True)
    expected = reference.encode(lines, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    ours = np.stack(extractor.embed(lines))
    assert len(lines) >= 8  # the demo's seven lines and the long one at least (MELD when the data is here)
    np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_the_live_text_path_does_not_import_transformers():
    """The reason for the project's own encoder: a live start does not wait for that import."""
    import subprocess
    import sys

    code = ("import sys; from momke.extractors.text_lite import LiteTextExtractor; "
            "e = LiteTextExtractor(device='cpu'); e.embed(['hello there']); "
            "print(sorted(m for m in ('transformers', 'sentence_transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
