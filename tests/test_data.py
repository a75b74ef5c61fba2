"""The feature-corpus format: round trip, incremental writing, validation, batching."""

import json

import numpy as np
import pytest
import torch
from momke.models.training.data import (
    Conversation,
    CorpusMetadata,
    CorpusWriter,
    FeatureCorpus,
    collate_conversations,
    load_corpus,
    save_corpus,
    write_conversation,
)

DIMS = (3, 4, 2)


def make_conversation(dialogue_id, n, split="train", session=None, seed=0, drop_visual=False):
    rng = np.random.default_rng(seed)
    present = np.ones((n, 3), dtype=bool)
    present[0, 0] = False  # audio missing for the first utterance
    features = {
        "audio": rng.normal(size=(n, DIMS[0])).astype(np.float32),
        "text": rng.normal(size=(n, DIMS[1])).astype(np.float32),
    }
    if drop_visual:
        present[:, 2] = False
    else:
        features["visual"] = rng.normal(size=(n, DIMS[2])).astype(np.float32)
    return Conversation(
        dialogue_id=dialogue_id,
        utterance_ids=[f"{dialogue_id}_{i}" for i in range(n)],
        speakers=["A" if i % 2 else "B" for i in range(n)],
        features=features,
        present=present,
        labels=np.array([i % 3 for i in range(n - 1)] + [-1]),
        split=split,
        session=session,
    )


METADATA = CorpusMetadata("custom", DIMS, ("a", "b", "c"), description="unit test")


def test_round_trip_keeps_everything(tmp_path):
    corpus = FeatureCorpus(
        METADATA,
        [make_conversation("d/1 é", 4, "train", 1), make_conversation("d2", 2, "test", 2, seed=1, drop_visual=True)],
    )
    save_corpus(corpus, tmp_path / "c")
    loaded = load_corpus(tmp_path / "c")
    assert loaded.metadata == METADATA
    assert [c.dialogue_id for c in loaded.conversations] == ["d/1 é", "d2"]
    for original, back in zip(corpus.conversations, loaded.conversations):
        assert back.utterance_ids == original.utterance_ids
        assert back.speakers == original.speakers
        assert back.split == original.split and back.session == original.session
        np.testing.assert_array_equal(back.present, original.present)
        np.testing.assert_array_equal(back.labels, original.labels)
        assert set(back.features) == set(original.features)
        for m, x in original.features.items():
            index = ["audio", "text", "visual"].index(m)
            rows = original.present[:, index]
            np.testing.assert_array_equal(back.features[m][rows], x[rows])
            assert back.features[m].dtype == np.float32
    assert loaded.sessions() == [1, 2]
    assert [c.dialogue_id for c in loaded.split("test")] == ["d2"]
    index = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert index["feature_dims"] == {"audio": 3, "text": 4, "visual": 2}
    # Files open without pickle.
    for entry in index["dialogues"]:
        np.load(tmp_path / "c" / entry["file"], allow_pickle=False).close()


def test_regression_labels_round_trip(tmp_path):
    metadata = CorpusMetadata("custom", DIMS, (), task="regression")
    conversation = make_conversation("r", 3)
    conversation.labels = np.array([0.5, -2.0, np.nan], dtype=np.float32)
    save_corpus(FeatureCorpus(metadata, [conversation]), tmp_path)
    back = load_corpus(tmp_path).conversations[0]
    np.testing.assert_array_equal(back.labels[:2], [0.5, -2.0])
    assert np.isnan(back.labels[2])
    assert back.labeled("regression").tolist() == [True, True, False]


def test_incremental_writing_resumes(tmp_path):
    writer = CorpusWriter(tmp_path, METADATA)
    writer.write(make_conversation("one", 3))
    # A new writer on the same directory (an interrupted extraction restarting) sees what exists.
    resumed = CorpusWriter(tmp_path, METADATA)
    assert resumed.has("one") and not resumed.has("two")
    write_conversation(tmp_path, make_conversation("two", 2, "valid"))
    assert [c.dialogue_id for c in load_corpus(tmp_path).conversations] == ["one", "two"]
    other = CorpusMetadata("lite", DIMS, ("a", "b", "c"))
    with pytest.raises(ValueError, match="different metadata"):
        CorpusWriter(tmp_path, other)
    with pytest.raises(ValueError, match="already holds a corpus"):
        save_corpus(FeatureCorpus(METADATA, []), tmp_path)


def test_nan_in_present_features_names_the_utterance():
    conversation = make_conversation("bad", 3)
    conversation.features["text"][2, 1] = np.nan
    with pytest.raises(ValueError, match=r"dialogue 'bad', utterance 2 \('bad_2'\): text features contain NaN"):
        conversation.validate()
    # NaN where the modality is marked missing is fine: it is never read.
    conversation.present[2, 1] = False
    conversation.validate()


def test_nan_on_disk_is_refused_when_loading(tmp_path):
    save_corpus(FeatureCorpus(METADATA, [make_conversation("x", 3)]), tmp_path)
    entry = json.loads((tmp_path / "corpus.json").read_text())["dialogues"][0]
    path = tmp_path / entry["file"]
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["audio"][1, 0] = np.inf
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"dialogue 'x', utterance 1 .*audio.*NaN or inf"):
        load_corpus(tmp_path)


def test_bad_shapes_and_labels_are_refused():
    with pytest.raises(ValueError, match="dimension 3, the corpus declares 5"):
        FeatureCorpus(CorpusMetadata("custom", (5, 4, 2), ("a", "b", "c")), [make_conversation("x", 2)])
    bad = make_conversation("y", 2)
    bad.labels = np.array([0, 7])
    with pytest.raises(ValueError, match="class index outside"):
        FeatureCorpus(METADATA, [bad])
    with pytest.raises(ValueError, match="marked present but has no features"):
        Conversation("z", ["u"], ["A"], {}, np.ones((1, 3), bool), np.array([0]))
    with pytest.raises(ValueError, match="appears twice"):
        FeatureCorpus(METADATA, [make_conversation("w", 2), make_conversation("w", 2)])
    with pytest.raises(ValueError, match="not a feature corpus"):
        load_corpus("/nonexistent/corpus")


def test_collate_pads_and_masks():
    conversations = [make_conversation("long", 4), make_conversation("short", 2, drop_visual=True)]
    batch = collate_conversations(conversations, DIMS)
    assert batch.features["audio"].shape == (2, 4, 3)
    assert batch.utterance_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.modality_mask[1, :, 2].tolist() == [False] * 4
    assert batch.modality_mask[0, 0].tolist() == [False, True, True]
    assert batch.labels[1].tolist() == [0, -1, -1, -1]
    assert batch.label_mask[0].tolist() == [True, True, True, False]
    assert torch.all(batch.features["visual"][1] == 0)
    # A missing utterance's features are zeros, whatever the conversation holds there; present ones are copied.
    assert np.any(conversations[0].features["audio"][0] != 0) and torch.all(batch.features["audio"][0, 0] == 0)
    assert np.array_equal(batch.features["audio"][0, 1:].numpy(), conversations[0].features["audio"][1:])
    # An override may hide modalities but never reveal them.
    override = [np.tile([True, False, True], (4, 1)), np.ones((2, 3), bool)]
    hidden = collate_conversations(conversations, DIMS, present_override=override)
    assert not hidden.modality_mask[0, :, 1].any() and torch.all(hidden.features["text"][0] == 0)
    assert not hidden.modality_mask[1, :, 2].any()
