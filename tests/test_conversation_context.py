"""The live conversation state: one state shared by the session and the streaming model, never
longer than the checkpoint was trained for, per-modality probabilities in every event, and a
broken model output that drops one utterance instead of the pipeline."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from momke.models import MODALITIES, MoMKE, MoMKEConfig
from momke.realtime import LiveSession
from momke.realtime.context import ContextPrediction, ConversationContext, NonFiniteOutputError
from momke.realtime.events import DroppedUtteranceEvent, EmotionEvent
from momke.realtime.health import HealthMonitor
from momke.realtime.pipeline import (
    Extraction,
    PendingUtterance,
    Prediction,
    Transcription,
    UtteranceProcessor,
)
from realtime_support import FAKE_DIMS, spy_profile

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model(seed: int = 0, **overrides) -> MoMKE:
    settings = {"feature_dims": FAKE_DIMS, "hidden_dim": 16, "num_blocks": 1, "router_hidden_dim": 16,
                "dropout": 0.0, "context_mode": "causal", "feature_profile": "spy"}
    settings.update(overrides)
    torch.manual_seed(seed)
    return MoMKE(MoMKEConfig(**settings)).eval()


def random_utterances(count: int, seed: int = 0) -> list[dict[str, np.ndarray | None]]:
    """Utterances with random features and random missing modalities (never all missing)."""
    rng = np.random.default_rng(seed)
    utterances = []
    for _ in range(count):
        present = rng.random(3) < 0.6
        present[rng.integers(3)] |= not present.any()
        utterances.append({m: rng.standard_normal(d).astype(np.float32) if p else None
                           for m, d, p in zip(MODALITIES, FAKE_DIMS, present)})
    return utterances


def full_forward(model: MoMKE, utterances: list[dict[str, np.ndarray]]):
    """MoMKE.forward over stored utterances ({present modality: features}) as one conversation."""
    features = {m: torch.tensor(np.stack([u.get(m, np.zeros(d, np.float32)) for u in utterances]))[None]
                for m, d in zip(MODALITIES, FAKE_DIMS)}
    mask = torch.tensor([[[m in u for m in MODALITIES] for u in utterances]])
    with torch.no_grad():
        return model(features, mask)


@pytest.mark.parametrize("context_mode", ["causal", "bidirectional"])
def test_forget_after_rolls_leaves_one_state_without_the_modality(context_mode):
    model = small_model(context_mode=context_mode)
    context = ConversationContext(model, max_context=6)  # causal: rolls back to 4 utterances
    stepped = random_utterances(15, seed=1)
    for features in stepped:
        context.step(features)
    held = context.utterances
    context.forget("visual")
    # What the session sees is the model's state: the same utterances, none with visual, and
    # none that had rolled out before the switch.
    after = context.utterances
    assert len(context) == len(after) == context.stream.context_length
    expected = [{m: v for m, v in u.items() if m != "visual"} for u in held]
    expected = [u for u in expected if u]
    assert len(after) == len(expected) <= len(held) <= 6
    for stored, want in zip(after, expected):
        assert stored.keys() == want.keys() and "visual" not in stored
        assert all(np.array_equal(stored[m], want[m]) for m in stored)
    assert not context.holds("visual")
    # The next prediction equals a fresh full forward over exactly those utterances.
    new = {"audio": np.ones(FAKE_DIMS[0], np.float32), "text": None, "visual": np.ones(FAKE_DIMS[2], np.float32)}
    prediction = context.step(new)
    conversation = context.utterances
    assert len(conversation) == prediction.context_length and all("visual" not in u for u in conversation[:-1])
    output = full_forward(model, conversation)
    np.testing.assert_allclose(list(prediction.probabilities.values()), output.logits[0, -1].softmax(-1).numpy(), atol=1e-4)
    for m, own in prediction.modality_probabilities.items():
        logits = output.modality_logits[0, -1, MODALITIES.index(m)]
        np.testing.assert_allclose(list(own.values()), logits.softmax(-1).numpy(), atol=1e-4)


def test_context_never_exceeds_what_the_checkpoint_was_trained_for():
    model = small_model(max_context=5)
    assert ConversationContext(model).max_context == 5
    assert ConversationContext(model, max_context=3).max_context == 3
    context = ConversationContext(model, max_context=500)
    assert context.max_context == 5
    for features in random_utterances(15, seed=2):  # three times past the limit
        prediction = context.step(features)
        assert prediction.context_length == len(context) == len(context.utterances) <= 5
    # The live session's default is the checkpoint's own limit.
    assert LiveSession(checkpoint=model, profile=spy_profile(), asr="none").context.max_context == 5
    assert LiveSession(checkpoint=model, profile=spy_profile(), asr="none", max_context=200).context.max_context == 5
    with pytest.raises(ValueError, match="max_context"):
        LiveSession(checkpoint=model, profile=spy_profile(), asr="none", max_context=0)


def test_each_used_modality_has_its_own_calibrated_probabilities():
    model = small_model(calibration={"modalities": {"audio": 4.0}, "fused": {"av": 0.5}})
    plain = small_model()
    context, reference = ConversationContext(model), ConversationContext(plain)
    for features in random_utterances(12, seed=3):
        prediction, raw = context.step(features), reference.step(features)
        used = [m for m in MODALITIES if features[m] is not None]
        assert prediction.modalities == used and sorted(prediction.modality_probabilities) == sorted(used)
        for own in prediction.modality_probabilities.values():
            assert list(own) == list(model.config.labels) and sum(own.values()) == pytest.approx(1.0, abs=1e-4)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        if "audio" in used:  # T = 4 flattens the audio path's own probabilities
            assert max(prediction.modality_probabilities["audio"].values()) < max(raw.modality_probabilities["audio"].values())
        if used == ["audio", "visual"]:
            assert max(prediction.probabilities.values()) > max(raw.probabilities.values())


def test_regression_checkpoint_gives_a_score_per_modality():
    context = ConversationContext(small_model(task="regression", labels=()))
    prediction = context.step({"audio": np.ones(FAKE_DIMS[0], np.float32), "text": np.ones(FAKE_DIMS[1], np.float32)})
    assert prediction.label == "score" and list(prediction.probabilities) == ["score"]
    assert sorted(prediction.modality_probabilities) == ["audio", "text"]
    assert all(list(own) == ["score"] for own in prediction.modality_probabilities.values())
    scores = [own["score"] for own in prediction.modality_probabilities.values()]
    assert scores[0] != scores[1]


def test_emotion_event_json_carries_the_modality_probabilities():
    event = EmotionEvent(3, 1.0, 2.0, "happy", {"happy": 0.7, "sad": 0.3}, ["audio", "text"],
                         modality_probabilities={"audio": {"happy": 0.4, "sad": 0.6}, "text": {"happy": 0.9, "sad": 0.1}})
    data = json.loads(event.to_json())
    assert data["modality_probabilities"] == {"audio": {"happy": 0.4, "sad": 0.6}, "text": {"happy": 0.9, "sad": 0.1}}


# ---------------------------------------------------------------------------------------------
# A broken model output costs one utterance, never the pipeline


def run_processor(context, pendings: list[PendingUtterance]) -> tuple[list, UtteranceProcessor]:
    """Process pending utterances with the plain processing stages: no thread, no queue."""
    from concurrent.futures import Future

    def at_once(function, *args):  # the runner's pool, here: the caller's thread
        done = Future()
        done.set_result(function(*args))
        return done

    health = HealthMonitor(lambda event: None, lambda: 0.0)
    extraction = Extraction(spy_profile(), health, threading.Event())
    processor = UtteranceProcessor(extraction, Transcription(None, health), Prediction(context), health, at_once,
                                   warm_up=lambda modalities: None)
    events = [event for pending in pendings for event in processor.process(pending)]
    return events, processor


def pending(index: int, text: str | None = None) -> PendingUtterance:
    audio = np.sin(np.linspace(0, 40 * (index + 1), 16_000)).astype(np.float32)
    return PendingUtterance(id=index, start=float(index), end=index + 1.0, closed_at=time.perf_counter(), audio=audio,
                            transcript=text)


def test_non_finite_model_output_becomes_a_dropped_utterance_and_the_context_is_unchanged():
    model = small_model()
    with torch.no_grad():  # a checkpoint whose text path is broken
        model.unimodal_heads["text"].mlp[0].weight.fill_(float("nan"))
    context = ConversationContext(model)
    events, processor = run_processor(context, [pending(0), pending(1, "hello there"), pending(2)])
    assert [type(e) for e in events] == [EmotionEvent, DroppedUtteranceEvent, EmotionEvent]
    assert events[1].utterance_id == 1 and "NaN or infinite" in events[1].reason
    assert processor.processed == 3 and len(context) == 2 and not context.holds("text")
    for event in events:
        json.loads(event.to_json())  # every event can be written (allow_nan=False)
    assert events[2].modality_probabilities.keys() == {"audio"}
    with pytest.raises(NonFiniteOutputError):
        context.step({"text": np.ones(FAKE_DIMS[1], np.float32)})
    assert len(context) == 2


class UnwritableContext:
    """A context whose prediction holds a NaN (what a model without the output check could give)."""

    def step(self, features):
        return ContextPrediction("happy", {"happy": float("nan")}, ["audio"], {}, 1, {})


def test_an_event_that_cannot_be_written_is_dropped_not_the_pipeline():
    events, processor = run_processor(UnwritableContext(), [pending(0), pending(1)])
    assert [type(e) for e in events] == [DroppedUtteranceEvent, DroppedUtteranceEvent]
    assert "Out of range float" in events[0].reason and processor.processed == 2
