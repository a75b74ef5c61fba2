"""Late fusion of the MOSI benchmark (benchmarks/mosi_late_fusion.py): per-condition least squares
over each modality's own score, and own scores that do not depend on the other modalities."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from momke.models.config import MoMKEConfig
from momke.models.momke import MoMKE
from momke.models.training.data import Conversation, collate_conversations

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mosi_late_fusion import evaluate_late_fusion, fit_late_fusion, own_predictions

DIMS = (4, 5, 6)


def _conversations(count: int, seed: int) -> list[Conversation]:
    rng = np.random.default_rng(seed)
    conversations = []
    for index in range(count):
        n = int(rng.integers(3, 7))
        conversations.append(Conversation(
            dialogue_id=f"d{index}", utterance_ids=[f"d{index}_{i}" for i in range(n)], speakers=["s"] * n,
            features={m: rng.normal(size=(n, d)).astype(np.float32) for m, d in zip(("audio", "text", "visual"), DIMS)},
            present=np.ones((n, 3), dtype=bool), labels=rng.uniform(-3, 3, size=n).astype(np.float32),
        ))
    return conversations


def test_fit_weighs_each_path_by_what_it_adds_in_each_condition():
    rng = np.random.default_rng(0)
    labels = rng.uniform(-3, 3, size=2000)
    text = 0.5 * labels - 0.2 + rng.normal(scale=0.05, size=labels.size)  # a good, shrunk path
    visual = rng.normal(size=labels.size)  # noise
    audio = labels + rng.normal(scale=3.0, size=labels.size)  # weak
    own = np.stack([audio, text, visual], axis=1)
    weights = fit_late_fusion(labels, own)
    assert weights["t"] == pytest.approx([2.0, 0.4], abs=0.05)  # undoes the shrinkage and the offset
    assert abs(weights["tv"][1]) < 0.05  # text present: the noise path gets almost nothing
    assert abs(weights["atv"][0]) < 0.05 and weights["atv"][1] == pytest.approx(2.0, abs=0.05)
    assert set(weights) == {"a", "t", "v", "av", "at", "tv", "atv"}

    results = evaluate_late_fusion(weights, labels, own)
    assert results["tv"]["acc2_nonzero"] >= results["t"]["acc2_nonzero"] - 0.01
    assert results["v"]["acc2_nonzero"] < 0.6 < results["t"]["acc2_nonzero"]
    assert "avg" in results


def test_own_predictions_are_each_modality_alone_through_its_head():
    torch.manual_seed(0)
    model = MoMKE(MoMKEConfig(feature_dims=DIMS, task="regression", hidden_dim=16, router_hidden_dim=8, num_blocks=1)).eval()
    conversations = _conversations(5, seed=1)
    labels, own = own_predictions(model, conversations, batch_size=2)
    assert own.shape == (sum(len(c) for c in conversations), 3)
    assert labels == pytest.approx(np.concatenate([c.labels for c in conversations]))
    batch = collate_conversations(conversations, DIMS, "regression")
    for index, modality in enumerate(("audio", "text", "visual")):
        alone = model.forward_unimodal(modality, batch.features[modality], batch.modality_mask[..., index], batch.utterance_mask)
        assert own[:, index] == pytest.approx(alone[..., 0][batch.label_mask].detach().numpy(), abs=1e-5)


def test_own_predictions_refuse_classification():
    model = MoMKE(MoMKEConfig(feature_dims=DIMS, labels=("a", "b"), hidden_dim=16, router_hidden_dim=8, num_blocks=1))
    with pytest.raises(ValueError, match="regression"):
        own_predictions(model, _conversations(1, seed=0))
