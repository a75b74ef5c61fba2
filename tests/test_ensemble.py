"""MoMKEEnsemble: several members read as one, in every path a single MoMKE takes."""

import model_support
import numpy as np
import pytest
import torch
from momke.models import MODALITIES
from momke.models.checkpoint import load_checkpoint, save_checkpoint
from momke.models.ensemble import MoMKEEnsemble
from momke.models.streaming import StreamingMoMKE
from test_streaming import assert_step_equals, conversation, utterance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_outputs_are_the_members_means():
    ensemble = model_support.tiny_ensemble(3, context_mode="causal")
    features, mask = conversation(9, seed=3)
    with torch.no_grad():
        whole = ensemble(features, mask)
        parts = [member(features, mask) for member in ensemble.members]
        for name in ("logits", "router_weights", "modality_logits"):
            expected = torch.stack([getattr(p, name) for p in parts]).mean(0)
            torch.testing.assert_close(getattr(whole, name), expected)
        assert not torch.allclose(parts[0].logits, parts[1].logits)  # members really differ
        present = mask[..., 0]
        own = ensemble.forward_unimodal("audio", features["audio"], present)
        torch.testing.assert_close(own, torch.stack([m.forward_unimodal("audio", features["audio"], present)
                                                     for m in ensemble.members]).mean(0))
    with pytest.raises(ValueError, match="ensemble_size"):
        MoMKEEnsemble(model_support.tiny_config(ensemble_size=3), list(ensemble.members)[:2])


@pytest.mark.parametrize("context_mode", ["causal", "bidirectional"])
def test_streaming_an_ensemble_equals_its_forward_across_rolls_and_a_privacy_switch(context_mode):
    ensemble = model_support.tiny_ensemble(2, context_mode=context_mode)
    features, mask = conversation(20, seed=8)
    stream = StreamingMoMKE(ensemble, max_context=6, keep_after_roll=4)
    starts = []
    for index in range(20):
        step = stream.step(utterance(features, mask, index))
        start = index + 1 - step.context_length
        starts.append(start)
        with torch.no_grad():
            output = ensemble({m: x[:, start : index + 1] for m, x in features.items()}, mask[:, start : index + 1])
        assert_step_equals(step, output, -1)
    stream.forget("audio")
    assert not stream.holds("audio")
    step = stream.step(utterance(features, mask, 0))
    held = [{m: torch.as_tensor(x) for m, x in u.items()} for u in stream.utterances]
    stacked = {m: torch.stack([u.get(m, torch.zeros(d)) for u in held])[None] for m, d in zip(MODALITIES, model_support.DIMS)}
    present = torch.tensor([[m in u for m in MODALITIES] for u in held])[None]
    with torch.no_grad():
        expected = ensemble(stacked, present)
    np.testing.assert_allclose(step.logits, expected.logits[0, -1].numpy(), rtol=1e-5, atol=1e-5)


def test_checkpoint_round_trip_in_float16_and_a_mismatched_member_count(tmp_path):
    ensemble = model_support.tiny_ensemble(3, context_mode="causal")
    save_checkpoint(ensemble, tmp_path / "e", half=True)
    loaded = load_checkpoint(tmp_path / "e", device="cpu")
    assert isinstance(loaded, MoMKEEnsemble) and loaded.config.ensemble_size == 3
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # read back into float32
    features, mask = conversation(6, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(features, mask).logits, ensemble(features, mask).logits, atol=2e-3, rtol=1e-2)
    # A config that promises another number of members than the weights hold is refused by name.
    config_file = tmp_path / "e" / "config.json"
    config_file.write_text(config_file.read_text().replace('"ensemble_size": 3', '"ensemble_size": 2'))
    with pytest.raises(ValueError, match="ensemble_size is 2 in config, 3 in the weights file"):
        load_checkpoint(tmp_path / "e", device="cpu")
    single = model_support.tiny_model()
    save_checkpoint(single, tmp_path / "one")
    config_file = tmp_path / "one" / "config.json"
    config_file.write_text(config_file.read_text().replace('"ensemble_size": 1', '"ensemble_size": 2'))
    with pytest.raises(ValueError, match="ensemble_size is 2 in config, 1 in the weights file"):
        load_checkpoint(tmp_path / "one", device="cpu")


def test_a_live_session_takes_an_ensemble_instance_as_its_checkpoint():
    from momke.realtime.session import _load_model

    ensemble = model_support.tiny_ensemble(2, context_mode="causal")
    assert _load_model(ensemble, "cpu") is ensemble
