"""The packed forward pass (only present utterances computed) equals the padded one, and the
fast dropout keeps dropout's distribution and gradient."""

import pytest
import torch
from momke.models import MODALITIES
from momke.models.momke import Packing, dropout
from test_model import random_features, random_mask, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def padded_forward(model, features, modality_mask, utterance_mask):
    """The forward pass as section 3 draws it, on the padded grid: every modality's every
    utterance (padding and missing ones included) through every expert, attention limited to
    present utterances, the mixture zeroed where the modality is missing."""
    mask = modality_mask & utterance_mask.unsqueeze(-1)
    prepared = {m: torch.where(mask[..., i, None], features[m], 0.0) for i, m in enumerate(MODALITIES)}
    weights = torch.stack([model.route(m, prepared[m]) for m in MODALITIES], dim=2) * mask.unsqueeze(-1)
    mixed = []
    for i, m in enumerate(MODALITIES):
        x, allowed = model.embed(m, prepared[m]), model.attention_mask(mask[..., i])
        r = sum(weights[:, :, i, e, None] * model.experts[k](x, allowed) for e, k in enumerate(model.config.experts))
        mixed.append(r * mask[..., i, None])
    return model.head(torch.cat(mixed, dim=-1)), weights


def batch_with_gaps():
    features, mask = random_features(4, 9), random_mask(4, 9, p=0.5)
    mask[:, :, 2] = False  # visual missing in the whole batch
    mask[0, :, 0] = False  # audio missing in one whole dialogue
    utterance_mask = torch.ones(4, 9, dtype=torch.bool)
    utterance_mask[1, 6:] = False
    utterance_mask[3, 2:] = False
    return features, mask, utterance_mask


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
@pytest.mark.parametrize("mixing", [True, False])
def test_packed_forward_equals_the_padded_one_with_gradients(context_mode, mixing):
    features, mask, utterance_mask = batch_with_gaps()
    model = tiny_model(context_mode=context_mode, mixing=mixing, dropout=0.0).train()
    reference_logits, reference_weights = padded_forward(model, features, mask, utterance_mask)
    reference_logits.square().sum().backward()
    reference_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    output = model(features, mask, utterance_mask)
    torch.testing.assert_close(output.logits, reference_logits, rtol=1e-5, atol=1e-6)  # padding rows too
    torch.testing.assert_close(output.router_weights, reference_weights, rtol=1e-5, atol=1e-6)
    output.logits.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert set(grads) == {n for n, g in reference_grads.items() if g.abs().sum() > 0}
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_unimodal_pass_is_zero_off_its_modality_and_empty_batches_work():
    model = tiny_model()
    features, mask = random_features(2, 5), random_mask(2, 5)
    logits = model.forward_unimodal("text", features["text"], mask[..., 1])
    assert torch.all(logits[~mask[..., 1]] == 0) and torch.all(logits[mask[..., 1]] != 0)
    nothing = model.forward_unimodal("text", features["text"], torch.zeros(2, 5, dtype=torch.bool))
    assert nothing.shape == (2, 5, 4) and torch.all(nothing == 0)


def test_packing_moves_kept_utterances_to_the_front_and_masks_the_rest():
    keep = torch.tensor([[False, True, False, True], [True, True, True, False]])
    packing = Packing(keep, causal=True)
    assert packing.width == 3
    assert packing.utterance.tolist() == [1, 3, 0, 1, 2]  # positions in the conversations
    grid = packing.to_grid(torch.arange(1.0, 6.0).unsqueeze(1))
    assert grid.squeeze(-1).tolist() == [[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]
    assert torch.equal(packing.from_grid(grid).squeeze(1), torch.arange(1.0, 6.0))
    # Causal: no later keys; sequence 0 keeps two utterances, so no query sees its third cell but
    # that cell itself (its output is never read).
    assert packing.allowed[0].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert Packing(keep, causal=False).allowed[1].all()


def test_fast_dropout_keeps_the_distribution_and_the_gradient():
    x = torch.ones(200, 500, requires_grad=True)
    torch.manual_seed(0)
    y = dropout(x, 0.3, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # d y / d x = mask / (1 - p)
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.3, training=True), y)  # seeded: the same mask
    assert dropout(x, 0.3, training=False) is x
    assert torch.all(dropout(x, 1.0, training=True) == 0)
