"""Label-matched pseudo-conversations: every modality of an utterance carries the utterance's
class (except the drawn disagreements), one voice per conversation, and the conflict table."""

import numpy as np
import pytest
from momke.models.training.data import Conversation
from momke.models.training.label_matched import (
    build_pools,
    conflict_items,
    label_matched_conversations,
)

CLASSES = 4


def unimodal(modality: str, speaker: int, n: int = 12, dim: int = 3) -> Conversation:
    """Features whose first value encodes (class, speaker), so a drawn sample can be traced."""
    index = ("audio", "text", "visual").index(modality)
    labels = np.arange(n) % CLASSES
    features = np.zeros((n, dim), np.float32)
    features[:, 0] = labels + 10 * speaker
    features[:, 1] = np.arange(n)  # distinct rows
    present = np.zeros((n, 3), bool)
    present[:, index] = True
    return Conversation(f"{modality}-{speaker}", [f"{modality}-{speaker}-{i}" for i in range(n)], [""] * n,
                        {modality: features}, present, labels, "train", speaker)


@pytest.fixture
def pools():
    return build_pools([unimodal("audio", 1), unimodal("audio", 2), unimodal("audio", 2)],  # actor 2 twice: de-duplicated
                       [unimodal("text", 0)], [unimodal("visual", 0)])


def test_every_modality_matches_the_label_and_the_voice_stays_one_speaker(pools):
    assert len(pools["audio"]["2"][0]) == 3  # 12 clips / 4 classes, the repeated copy not counted twice
    conversations = label_matched_conversations(pools, CLASSES, 5, (4, 9), 0.0, seed=0, split="train")
    assert len(conversations) == 10  # 2 speakers x 5
    for c in conversations:
        assert 4 <= len(c) <= 9 and c.present.all() and c.split == "train"
        speaker = int(c.session)
        np.testing.assert_array_equal(c.features["audio"][:, 0], c.labels + 10 * speaker)
        np.testing.assert_array_equal(c.features["text"][:, 0], c.labels)
        np.testing.assert_array_equal(c.features["visual"][:, 0], c.labels)


def test_disagreements_swap_one_modality_at_the_drawn_rate(pools):
    conversations = label_matched_conversations(pools, CLASSES, 200, (10, 10), 0.3, seed=1, split="train")
    swapped = np.concatenate([
        np.stack([(c.features[m][:, 0] % 10) != c.labels for m in ("audio", "text", "visual")], axis=1) for c in conversations])
    assert swapped.sum(axis=1).max() == 1  # never more than one modality per utterance
    assert swapped.any(axis=1).mean() == pytest.approx(0.3, abs=0.03)
    labels = np.concatenate([c.labels for c in conversations])
    assert np.bincount(labels, minlength=CLASSES).min() > 0.2 * len(labels)  # classes drawn uniformly


def test_classes_missing_from_a_pool_are_not_drawn_and_an_incomplete_speaker_is_left_out(pools):
    del pools["audio"]["1"][2]
    conversations = label_matched_conversations(pools, CLASSES, 2, (2, 3), 0.0, seed=0, split="test")
    assert {c.session for c in conversations} == {"2"}
    del pools["visual"]["all"][3]  # a --limit slice without class 3 faces
    conversations = label_matched_conversations(pools, CLASSES, 20, (5, 5), 0.5, seed=0, split="train")
    labels = np.concatenate([c.labels for c in conversations])
    assert set(labels) == {0, 1, 2}
    assert all(set((c.features[m][:, 0] % 10).astype(int)) <= {0, 1, 2} for c in conversations for m in ("text", "visual"))
    for by_label in pools["audio"].values():
        by_label.pop(0, None)
    del pools["audio"]["2"]
    with pytest.raises(ValueError, match="no class has samples in every modality's pool"):
        label_matched_conversations(pools, CLASSES, 1, (2, 3), 0.0, seed=0, split="test")


def test_the_conflict_table_counts_only_items_where_exactly_one_path_is_right():
    labels = [0, 0, 1, 1, 2]
    paths = {"audio": [0, 1, 1, 0, 3], "text": [1, 0, 1, 2, 2]}
    fused = [0, 1, 1, 2, 0]
    table = conflict_items(labels, paths, fused)["audio-text"]
    # items 0, 1 and 4 have exactly one right path; item 2 has two, item 3 none.
    assert table["items"] == 3
    assert table["fused_right"] == pytest.approx(1 / 3)  # item 0
    assert table["first_right_share"] == pytest.approx(1 / 3)  # audio right on item 0 only
