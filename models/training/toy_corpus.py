"""A small SYNTHETIC feature corpus, for examples, tests and smoke runs (not real data).

Four classes are two hidden bits. Audio features carry the first bit, text features the second,
and visual features carry the whole class but weakly, so each modality alone is above chance and
the three together are best: the shape of result MoMKE should show on real data.
"""

from __future__ import annotations

import numpy as np

from ..config import MODALITIES
from .data import Conversation, CorpusMetadata, FeatureCorpus

TOY_LABELS = ("happy", "sad", "neutral", "angry")


def make_toy_corpus(
    num_dialogues: int = 48,
    utterances: tuple[int, int] = (6, 10),
    dims: tuple[int, int, int] = (8, 8, 8),
    num_sessions: int = 3,
    missing_rate: float = 0.05,
    signal: float = 1.5,
    seed: int = 0,
) -> FeatureCorpus:
    """Dialogues are spread over `num_sessions` sessions; the last session is the "test" split,
    the others "train" (no "valid": training carves one from the training dialogues).
    missing_rate: probability that a modality is missing for one utterance (as a failing sensor).
    """
    rng = np.random.default_rng(seed)
    # One direction per modality and bit, one prototype per class for the visual modality.
    directions = {m: rng.normal(size=(2, d)) for m, d in zip(MODALITIES, dims)}
    for vectors in directions.values():
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    visual_prototypes = rng.normal(size=(len(TOY_LABELS), dims[2]))
    visual_prototypes /= np.linalg.norm(visual_prototypes, axis=1, keepdims=True)

    conversations = []
    for index in range(num_dialogues):
        n = int(rng.integers(utterances[0], utterances[1] + 1))
        labels = rng.integers(0, len(TOY_LABELS), size=n)
        bits = np.stack([labels // 2, labels % 2], axis=1) * 2.0 - 1.0  # +-1 per hidden bit
        features = {
            "audio": signal * bits[:, :1] * directions["audio"][0] + rng.normal(size=(n, dims[0])),
            "text": signal * bits[:, 1:] * directions["text"][1] + rng.normal(size=(n, dims[1])),
            "visual": 0.7 * signal * visual_prototypes[labels] + rng.normal(size=(n, dims[2])),
        }
        present = rng.random((n, len(MODALITIES))) >= missing_rate
        session = index % num_sessions + 1
        conversations.append(
            Conversation(
                dialogue_id=f"toy{index:03d}",
                utterance_ids=[f"toy{index:03d}_u{i:02d}" for i in range(n)],
                speakers=["A" if i % 2 == 0 else "B" for i in range(n)],
                features={m: x.astype(np.float32) for m, x in features.items()},
                present=present,
                labels=labels.astype(np.int64),
                split="test" if session == num_sessions else "train",
                session=session,
            )
        )
    metadata = CorpusMetadata(
        feature_profile="toy",
        feature_dims=dims,
        labels=TOY_LABELS,
        task="classification",
        description="SYNTHETIC toy corpus made by momke.models.training.toy_corpus (not real data)",
        extra={"generator": "make_toy_corpus", "seed": seed},
    )
    return FeatureCorpus(metadata, conversations)
