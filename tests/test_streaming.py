"""StreamingMoMKE: one utterance at a time gives what forward() gives on the context."""

import numpy as np
import pytest
import torch
from momke.models import MODALITIES, MoMKE, MoMKEConfig
from momke.models.streaming import EmptyUtteranceError, StreamingMoMKE

DIMS = (6, 5, 4)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0, **overrides) -> MoMKE:
    settings = {"feature_dims": DIMS, "hidden_dim": 8, "num_blocks": 2, "num_heads": 2, "router_hidden_dim": 8, "context_mode": "causal"}
    settings.update(overrides)
    torch.manual_seed(seed)
    return MoMKE(MoMKEConfig(**settings))


def conversation(length: int, seed: int = 1):
    """Features [1, U, d_m] and a random per-utterance mask (never empty)."""
    generator = torch.Generator().manual_seed(seed)
    features = {m: torch.randn(1, length, d, generator=generator) for m, d in zip(MODALITIES, DIMS)}
    mask = torch.rand(1, length, 3, generator=generator) < 0.6
    mask[0, :, 1] |= ~mask[0].any(-1)
    return features, mask


def utterance(features, mask, index, as_tensor=False):
    """step() input for one utterance: missing modalities are None or left out."""
    step = {}
    for i, name in enumerate(MODALITIES):
        vector = features[name][0, index]
        if mask[0, index, i]:
            step[name] = vector if as_tensor else vector.numpy()
        elif i % 2:
            step[name] = None
    return step


def expected_for_window(model, features, mask, index, window):
    """forward() over the `window` utterances ending at `index`: the newest one's output."""
    start = index + 1 - window
    with torch.no_grad():
        output = model({m: x[:, start : index + 1] for m, x in features.items()}, mask[:, start : index + 1])
    return output.logits[0, -1], output.router_weights[0, -1]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_causal_steps_equal_forward_on_the_whole_conversation(task):
    model = tiny_model(task=task, labels=() if task == "regression" else ("a", "b", "c", "d"))
    features, mask = conversation(15)
    with torch.no_grad():
        full = model.eval()(features, mask)
    stream = StreamingMoMKE(model, max_context=20)
    for index in range(15):
        step = stream.step(utterance(features, mask, index, as_tensor=index % 2 == 0))
        assert step.context_length == index + 1
        np.testing.assert_allclose(step.logits, full.logits[0, index].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.router_weights, full.router_weights[0, index].numpy(), rtol=1e-5, atol=1e-5)
        assert step.modalities == [m for i, m in enumerate(MODALITIES) if mask[0, index, i]]
        if task == "classification":
            np.testing.assert_allclose(step.probabilities, torch.softmax(full.logits[0, index], -1).numpy(), atol=1e-5)
            assert step.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        else:
            assert step.probabilities.shape == (1,)
            np.testing.assert_allclose(step.probabilities, step.logits)


def test_window_rolls_and_outputs_equal_forward_on_the_kept_context():
    model = tiny_model()
    features, mask = conversation(30, seed=5)
    stream = StreamingMoMKE(model, max_context=8, keep_after_roll=5)
    lengths = []
    for index in range(30):
        step = stream.step(utterance(features, mask, index))
        lengths.append(step.context_length)
        logits, weights = expected_for_window(model, features, mask, index, step.context_length)
        np.testing.assert_allclose(step.logits, logits.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.router_weights, weights.numpy(), rtol=1e-5, atol=1e-5)
    # Fills to 8, then drops to 5 (the new utterance included) and grows again.
    assert lengths[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8]
    assert max(lengths) == 8 and min(lengths[8:]) == 5


def test_exact_sliding_window():
    model = tiny_model()
    features, mask = conversation(12, seed=7)
    stream = StreamingMoMKE(model, max_context=4, keep_after_roll=4)
    for index in range(12):
        step = stream.step(utterance(features, mask, index))
        assert step.context_length == min(index + 1, 4)
        logits, _ = expected_for_window(model, features, mask, index, step.context_length)
        np.testing.assert_allclose(step.logits, logits.numpy(), rtol=1e-5, atol=1e-5)


def test_bidirectional_model_falls_back_to_a_full_forward_over_the_context():
    model = tiny_model(context_mode="bidirectional")
    features, mask = conversation(10, seed=3)
    stream = StreamingMoMKE(model, max_context=6)
    for index in range(10):
        step = stream.step(utterance(features, mask, index))
        assert step.context_length == min(index + 1, 6)
        logits, weights = expected_for_window(model, features, mask, index, step.context_length)
        np.testing.assert_allclose(step.logits, logits.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.router_weights, weights.numpy(), rtol=1e-5, atol=1e-5)


def test_reset_starts_a_new_conversation():
    model = tiny_model()
    features, mask = conversation(6, seed=9)
    stream = StreamingMoMKE(model, max_context=10)
    first = [stream.step(utterance(features, mask, i)).logits for i in range(6)]
    stream.reset()
    assert stream.context_length == 0
    again = [stream.step(utterance(features, mask, i)).logits for i in range(6)]
    for a, b in zip(first, again):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_empty_and_bad_utterances_leave_the_context_unchanged():
    model = tiny_model()
    features, mask = conversation(4, seed=11)
    stream = StreamingMoMKE(model, max_context=10)
    stream.step(utterance(features, mask, 0))
    bad_inputs = [
        ({}, EmptyUtteranceError),
        ({"audio": None, "text": None, "visual": None}, EmptyUtteranceError),
        ({"audio": np.full(6, np.nan, dtype=np.float32)}, ValueError),
        ({"audio": np.zeros(7, dtype=np.float32)}, ValueError),
        ({"audio": np.zeros((1, 6), dtype=np.float32)}, ValueError),
        ({"smell": np.zeros(3)}, ValueError),
    ]
    for bad, error in bad_inputs:
        with pytest.raises(error):
            stream.step(bad)
    assert stream.context_length == 1
    assert issubclass(EmptyUtteranceError, ValueError)
    # The conversation carries on exactly as if the bad input never came.
    with torch.no_grad():
        full = model(features, mask)
    for index in range(1, 4):
        step = stream.step(utterance(features, mask, index))
        np.testing.assert_allclose(step.logits, full.logits[0, index].numpy(), rtol=1e-5, atol=1e-5)


def test_float64_input_and_settings_validation():
    model = tiny_model()
    stream = StreamingMoMKE(model)
    step = stream.step({"text": np.ones(5, dtype=np.float64)})
    assert step.logits.dtype == np.float32 and step.modalities == ["text"]
    assert step.router_weights.shape == (3, 3) and np.all(step.router_weights[[0, 2]] == 0)
    with pytest.raises(ValueError, match="max_context"):
        StreamingMoMKE(model, max_context=0)
    with pytest.raises(ValueError, match="keep_after_roll"):
        StreamingMoMKE(model, max_context=5, keep_after_roll=6)


@pytest.mark.parametrize("context_mode", ["causal", "bidirectional"])
def test_forget_drops_a_modality_from_the_context(context_mode):
    model = tiny_model(context_mode=context_mode)
    features, mask = conversation(8, seed=13)
    mask[0, 3] = torch.tensor([False, True, False])  # text only: leaves the context with text
    stream = StreamingMoMKE(model, max_context=20)
    for index in range(7):
        stream.step(utterance(features, mask, index))
    stream.forget("text")
    without_text = mask.clone()
    without_text[..., 1] = False
    kept = [i for i in range(7) if without_text[0, i].any()]
    assert stream.context_length == len(kept) == 6
    # The next utterance is predicted as if text had never been seen.
    step = stream.step(utterance(features, mask, 7))
    order = kept + [7]
    with torch.no_grad():
        expected = model({m: x[:, order] for m, x in features.items()}, torch.cat([without_text[:, kept], mask[:, 7:8]], 1))
    np.testing.assert_allclose(step.logits, expected.logits[0, -1].numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown modality"):
        stream.forget("smell")
