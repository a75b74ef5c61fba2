"""StreamingMoMKE: one utterance at a time gives what forward() gives on the context."""

import functools

import model_support
import numpy as np
import pytest
import torch
from model_support import DIMS
from momke.models import MODALITIES
from momke.models.streaming import EmptyUtteranceError, NonFiniteOutputError, StreamingMoMKE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


tiny_model = functools.partial(model_support.tiny_model, context_mode="causal")


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


def assert_step_equals(step, output, index):
    """A step's fused and per-modality outputs equal forward()'s `output` at utterance `index`."""
    present = [m for i, m in enumerate(MODALITIES) if output.modality_mask[0, index, i]]
    assert step.modalities == present
    np.testing.assert_allclose(step.logits, output.logits[0, index].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(step.router_weights, output.router_weights[0, index].numpy(), rtol=1e-5, atol=1e-5)
    assert sorted(step.modality_logits) == sorted(present) == sorted(step.modality_probabilities)
    for m in present:
        own = output.modality_logits[0, index, MODALITIES.index(m)]
        np.testing.assert_allclose(step.modality_logits[m], own.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.modality_probabilities[m], own.softmax(-1).numpy(), atol=1e-5)


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
        if task == "classification":
            assert_step_equals(step, full, index)
        else:  # a sentiment score per modality, no probabilities
            np.testing.assert_allclose(step.logits, full.logits[0, index].numpy(), rtol=1e-5, atol=1e-5)
            for m, score in step.modality_probabilities.items():
                own = full.modality_logits[0, index, MODALITIES.index(m)].numpy()
                assert score.shape == (1,)
                np.testing.assert_allclose(score, own, rtol=1e-5, atol=1e-5)
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


def window_output(model, features, mask, index, window):
    """forward() over the `window` utterances ending at `index` (the newest is at -1)."""
    start = index + 1 - window
    with torch.no_grad():
        return model({m: x[:, start : index + 1] for m, x in features.items()}, mask[:, start : index + 1])


@pytest.mark.parametrize("context_mode", ["causal", "bidirectional"])
def test_steps_across_rolls_equal_forward_on_the_context_fused_and_per_modality(context_mode):
    model = tiny_model(context_mode=context_mode)
    features, mask = conversation(25, seed=21)
    stream = StreamingMoMKE(model, max_context=7, keep_after_roll=4)
    lengths = []
    for index in range(25):
        step = stream.step(utterance(features, mask, index, as_tensor=index % 3 == 0))
        lengths.append(step.context_length)
        assert_step_equals(step, window_output(model, features, mask, index, step.context_length), -1)
    # Causal rolls to keep_after_roll; bidirectional slides one utterance at a time.
    assert max(lengths) == 7 and min(lengths[7:]) == (4 if context_mode == "causal" else 7)


def test_context_never_exceeds_the_checkpoint_limit():
    model = tiny_model(max_context=5)
    features, mask = conversation(15, seed=23)
    for requested in (None, 100, 3):
        stream = StreamingMoMKE(model, max_context=requested)
        assert stream.max_context == (3 if requested == 3 else 5)
        for index in range(15):  # three times past the limit
            stream.step(utterance(features, mask, index))
            assert stream.context_length <= stream.max_context
        assert len(stream.utterances) == stream.context_length


def test_probabilities_use_the_calibration_of_the_condition_and_of_each_modality():
    calibration = {"modalities": {"audio": 3.0, "visual": 0.5}, "fused": {"at": 2.0, "t": 4.0}}
    model = tiny_model(calibration=calibration)
    plain = tiny_model()  # the same weights (same seed), no calibration
    rng = np.random.default_rng(0)
    inputs = [
        {"audio": rng.standard_normal(6), "text": rng.standard_normal(5)},  # {a, t}: T = 2
        {"text": rng.standard_normal(5)},  # {t}: T = 4
        {"text": rng.standard_normal(5), "visual": rng.standard_normal(4)},  # {t, v}: not fitted, T = 1
    ]
    stream, reference = StreamingMoMKE(model), StreamingMoMKE(plain)
    for features, fused_t in zip(inputs, (2.0, 4.0, 1.0)):
        step, raw = stream.step(features), reference.step(features)
        np.testing.assert_allclose(step.logits, raw.logits, rtol=1e-6)
        np.testing.assert_allclose(step.probabilities, torch.softmax(torch.tensor(raw.logits) / fused_t, -1).numpy(), atol=1e-6)
        for m, own in step.modality_probabilities.items():
            t = {"audio": 3.0, "text": 1.0, "visual": 0.5}[m]
            np.testing.assert_allclose(own, torch.softmax(torch.tensor(raw.modality_logits[m]) / t, -1).numpy(), atol=1e-6)
            assert own.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(stream.step(inputs[0]).probabilities, reference.step(inputs[0]).probabilities)


@pytest.mark.parametrize("context_mode", ["causal", "bidirectional"])
def test_non_finite_output_raises_and_leaves_the_context_unchanged(context_mode):
    model = tiny_model(context_mode=context_mode)
    with torch.no_grad():  # a broken checkpoint: the visual path gives NaN
        model.projections["visual"].weight[0, 0] = float("nan")
    features, mask = conversation(6, seed=25)
    mask[0, :, 2] = False
    mask[0, 3, 2] = True  # the only utterance with a face
    stream = StreamingMoMKE(model, max_context=20)
    for index in range(3):
        stream.step(utterance(features, mask, index))
    before = stream.utterances
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite"):
        stream.step(utterance(features, mask, 3))
    after = stream.utterances
    assert len(after) == len(before) == 3
    assert all(a.keys() == b.keys() and all(np.array_equal(a[m], b[m]) for m in a) for a, b in zip(after, before))
    # The conversation carries on as if the broken utterance never came.
    for seen in ([0, 1, 2, 4], [0, 1, 2, 4, 5]):
        with torch.no_grad():
            expected = model({m: x[:, seen] for m, x in features.items()}, mask[:, seen])
        assert_step_equals(stream.step(utterance(features, mask, seen[-1])), expected, -1)


@pytest.mark.parametrize("context_mode", ["causal", "bidirectional"])
def test_forget_after_a_roll_keeps_only_the_utterances_held(context_mode):
    model = tiny_model(context_mode=context_mode)
    features, mask = conversation(14, seed=27)
    stream = StreamingMoMKE(model, max_context=6, keep_after_roll=3)
    for index in range(12):
        stream.step(utterance(features, mask, index))
    held = stream.context_length
    first = 12 - held  # the utterances in context are first..11
    stream.forget("audio")
    without_audio = mask.clone()
    without_audio[..., 0] = False
    kept = [i for i in range(first, 12) if without_audio[0, i].any()]
    # Nothing that had rolled out comes back, and no utterance holds audio.
    assert stream.context_length == len(kept) <= held
    for stored, index in zip(stream.utterances, kept):
        assert "audio" not in stored
        for m in stored:
            np.testing.assert_array_equal(stored[m], features[m][0, index].numpy())
    # The next step equals a fresh forward over the same utterances (the window may roll).
    step = stream.step(utterance(features, mask, 12))
    order = [*kept, 12][-step.context_length :]
    step_mask = without_audio.clone()
    step_mask[:, 12] = mask[:, 12]  # the new utterance keeps its audio
    with torch.no_grad():
        expected = model({m: x[:, order] for m, x in features.items()}, step_mask[:, order])
    assert_step_equals(step, expected, -1)
