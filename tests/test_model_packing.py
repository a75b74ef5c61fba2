"""The packed forward pass (only present utterances computed) equals the padded one, and the
fast dropout keeps dropout's distribution and gradient."""

import pytest
import torch
from momke.models import MODALITIES
from momke.models import packing as packing_module
from momke.models.packing import Packing, add_dropout, dropout, length_groups
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


def sequence_by_sequence_attention(qkv, keep, causal, heads):
    """Attention of packed rows qkv [N, 3d] computed one sequence at a time on its kept rows."""
    outputs, row = [], 0
    for n in keep.sum(dim=1).tolist():
        if n == 0:
            continue
        q, k, v = qkv[row : row + n].view(n, 3, heads, -1).permute(1, 2, 0, 3)
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
        if causal:
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        outputs.append((scores.softmax(dim=-1) @ v).transpose(0, 1).reshape(n, -1))
        row += n
    return torch.cat(outputs)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("group_cost", [0.0, 1e9])  # a group per length, or one grid for all
@pytest.mark.parametrize("cpu_dropout_path", [False, True])
def test_packed_attention_equals_attention_on_each_sequence(causal, group_cost, cpu_dropout_path, monkeypatch):
    generator = torch.Generator().manual_seed(3)
    keep = torch.rand(7, 9, generator=generator) < 0.6
    keep[2] = False  # a sequence that keeps nothing
    keep[4] = True
    monkeypatch.setattr(Packing, "GROUP_COST", group_cost)
    packing = Packing(keep, causal, heads=2)
    assert len(packing.groups) == (1 if group_cost else len(set(keep.sum(dim=1).tolist()) - {0}))
    assert packing.utterance.tolist() == keep.nonzero()[:, 1].tolist()  # positions in the conversations
    qkv = torch.randn(int(keep.sum()), 3 * 8, generator=generator, requires_grad=True)
    p = 0.0
    if cpu_dropout_path:  # the path training takes on CPU (PackedAttention), its dropout made the identity
        monkeypatch.setattr(packing_module, "dropout_mask", lambda x, p: torch.ones_like(x))
        p = 0.3
    packed = packing.attend(qkv, p)
    reference = sequence_by_sequence_attention(qkv, keep, causal, heads=2)
    torch.testing.assert_close(packed, reference, rtol=1e-5, atol=1e-6)
    weights = torch.randn(reference.shape, generator=generator)
    (gradient,) = torch.autograd.grad((packed * weights).sum(), qkv)
    (reference_gradient,) = torch.autograd.grad((reference * weights).sum(), qkv)
    torch.testing.assert_close(gradient, reference_gradient, rtol=1e-5, atol=1e-6)


def autograd_packed_attention(qkv, packing, p):
    """PackedAttention's forward, left to autograd (for its hand-written backward)."""
    part = qkv.shape[1] // (3 * packing.heads)
    layout = qkv.new_zeros(3 * packing.heads * packing.cells, part).index_copy(0, packing.qkv_index, qkv.reshape(-1, part))
    attended = []
    for (q, k, v), bias in zip(packing.grids(layout, 3), packing.biases(qkv.dtype)):
        weights = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=part**-0.5).softmax(dim=-1)
        attended.append(torch.bmm(weights * packing_module.dropout_mask(weights, p), v).reshape(-1, part))
    return torch.cat(attended).index_select(0, packing.out_index).view(qkv.shape[0], -1)


def grouped_packing_with_fixed_masks(causal, monkeypatch):
    """(packing of several groups, generator, masks): dropout_mask then gives one fixed 0 / 2 mask
    per weights shape (p = 0.5), the same for every pass, in the weights' dtype."""
    generator = torch.Generator().manual_seed(4)
    keep = torch.rand(9, 11, generator=generator) < 0.7
    monkeypatch.setattr(Packing, "GROUP_COST", 20.0)
    packing = Packing(keep, causal, heads=2)
    assert len(packing.groups) > 1
    masks = {}

    def fixed_mask(x, p):
        if x.shape not in masks:
            masks[x.shape] = (torch.rand(x.shape, generator=generator) >= p).float() / (1 - p)
        return masks[x.shape].to(x.dtype, copy=True)

    monkeypatch.setattr(packing_module, "dropout_mask", fixed_mask)
    return packing, generator, masks


@pytest.mark.parametrize("causal", [False, True])
def test_packed_attention_backward_equals_autograds_with_a_dropout_mask(causal, monkeypatch):
    packing, generator, masks = grouped_packing_with_fixed_masks(causal, monkeypatch)
    rows = len(packing.rows)
    qkv = torch.randn(rows, 3 * 8, generator=generator, requires_grad=True)
    weights = torch.randn(rows, 8, generator=generator)
    reference = autograd_packed_attention(qkv, packing, 0.5)
    (reference_gradient,) = torch.autograd.grad((reference * weights).sum(), qkv)
    packed = packing.attend(qkv, 0.5)
    assert len(masks) == len(packing.groups) and any(0 < (m > 0).float().mean() < 1 for m in masks.values())
    torch.testing.assert_close(packed, reference, rtol=1e-5, atol=1e-6)
    (gradient,) = torch.autograd.grad((packed * weights).sum(), qkv)
    torch.testing.assert_close(gradient, reference_gradient, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_grid_cells_without_an_utterance_change_no_bit(causal, monkeypatch):
    """The grids are gathered from the packed rows (qkv_gather): a cell without an utterance holds
    a copy of its sequence's first row where the reference holds zeros. Neither reaches an output
    or a gradient, so the outputs are the same to the bit and the gradients on real rows equal."""
    generator = torch.Generator().manual_seed(5)
    keep = torch.rand(7, 10, generator=generator) < 0.6
    keep[0] = True  # one full sequence: the others leave empty cells in the one grid
    monkeypatch.setattr(Packing, "GROUP_COST", 1e9)
    packing = Packing(keep, causal, heads=2)
    assert len(packing.groups) == 1 and packing.cells > keep.sum()
    pads = torch.ones(len(packing.qkv_gather), dtype=torch.bool)
    pads[packing.qkv_index] = False
    assert pads.any() and not torch.equal(packing.qkv_gather[pads], torch.zeros_like(packing.qkv_gather[pads]))
    qkv = torch.randn(int(keep.sum()), 3 * 8, generator=generator, requires_grad=True)
    weights = torch.randn(int(keep.sum()), 8, generator=generator)
    torch.manual_seed(2)
    reference = autograd_packed_attention(qkv, packing, 0.5)  # zeros in the empty cells
    (reference_gradient,) = torch.autograd.grad((reference * weights).sum(), qkv)
    torch.manual_seed(2)  # the same dropout masks
    packed = packing.attend(qkv, 0.5)
    assert torch.equal(packed, reference)
    (gradient,) = torch.autograd.grad((packed * weights).sum(), qkv)
    torch.testing.assert_close(gradient, reference_gradient, rtol=1e-5, atol=1e-6)


def test_length_groups_cut_where_it_saves_cells():
    assert length_groups([9, 9, 2, 2], group_cost=0.0) in ([2, 4], [1, 2, 3, 4])
    assert length_groups([9, 9, 2, 2], group_cost=10.0) == [2, 4]  # 2*81 + 2*4 + 20 < 4*81 + 10
    assert length_groups([9, 9, 2, 2], group_cost=1000.0) == [4]
    assert length_groups([], group_cost=10.0) == []


@pytest.mark.parametrize("p", [0.3, 0.5, 0.25])  # torch.rand's masks, and random bytes' (256 p whole)
def test_fast_dropout_keeps_the_distribution_and_the_gradient(p):
    x = torch.ones(199, 503, requires_grad=True)  # an element count that is no multiple of 8
    torch.manual_seed(0)
    y = dropout(x, p, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    # Independent elements: neighbours (one byte apart in a draw) agree as often as chance says.
    same = (kept[:, 1:] == kept[:, :-1]).float().mean().item()
    assert abs(same - (p * p + (1 - p) * (1 - p))) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # d y / d x = mask / (1 - p)
    torch.manual_seed(0)
    assert torch.equal(dropout(x, p, training=True), y)  # seeded: the same mask
    assert not torch.equal(dropout(x, p, training=True), y)  # and a new one at the next call
    assert dropout(x, p, training=False) is x
    assert torch.all(dropout(x, 1.0, training=True) == 0)


def test_the_half_dropout_mask_is_the_byte_test_of_the_same_draws():
    # p = 0.5 takes a shortcut on the words; it must give the mask the byte comparison gives
    # (so training draws what it drew before the shortcut)
    x = torch.empty(37, 61)  # an element count that is no multiple of 8
    torch.manual_seed(5)
    mask = packing_module.dropout_mask(x, 0.5)
    torch.manual_seed(5)
    words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64).random_(-(2**63), None)
    reference = (words.view(torch.uint8)[: x.numel()].view(x.shape) >= 128).float() * 2.0
    assert mask.dtype == x.dtype and torch.equal(mask, reference)
    assert 0.45 < (mask > 0).float().mean().item() < 0.55


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_in_place_dropout_after_gelu_is_the_same_dropout(p):
    """ExpertBlock's MLP drops GELU's output in place: the same values and gradients, to the bit."""
    a = torch.randn(41, 67, requires_grad=True)
    torch.manual_seed(3)
    reference = dropout(torch.nn.functional.gelu(a), p, training=True)
    (expected,) = torch.autograd.grad(reference.square().sum(), a)
    torch.manual_seed(3)
    hidden = torch.nn.functional.gelu(a)
    dropped = dropout(hidden, p, training=True, inplace=True)
    assert dropped is hidden and torch.equal(dropped, reference)
    (gradient,) = torch.autograd.grad(dropped.square().sum(), a)
    assert torch.equal(gradient, expected)
    x = torch.randn(5, 3)
    assert dropout(x, p, training=False, inplace=True) is x  # evaluation: untouched


@pytest.mark.parametrize("p", [0.5, 0.3, 0.0])
def test_add_dropout_is_the_sum_with_dropout(p):
    x = torch.randn(37, 53, requires_grad=True)
    y = torch.randn(37, 53, requires_grad=True)
    torch.manual_seed(1)
    fused = add_dropout(x, y, p, training=True)
    torch.manual_seed(1)
    reference = x + dropout(y, p, training=True)  # the same mask draws
    torch.testing.assert_close(fused, reference)
    gradients = torch.autograd.grad(fused.square().sum(), (x, y))
    for gradient, expected in zip(gradients, torch.autograd.grad(reference.square().sum(), (x, y))):
        torch.testing.assert_close(gradient, expected)
    assert torch.equal(add_dropout(x, y, p, training=False), x + y)


@pytest.mark.parametrize("p", [0.5, 0.3, 0.0])
def test_add_dropout_into_y_is_the_same_sum(p):
    """ExpertBlock's residuals write the sum into the branch's linear output (into_y)."""
    x = torch.randn(37, 53, requires_grad=True)
    layer = torch.nn.Linear(53, 53)
    torch.manual_seed(1)
    reference = add_dropout(x, layer(x), p, training=True)
    expected = torch.autograd.grad(reference.square().sum(), (x, *layer.parameters()))
    torch.manual_seed(1)
    branch = layer(x)
    fused = add_dropout(x, branch, p, training=True, into_y=True)
    assert fused is branch
    gradients = torch.autograd.grad(fused.square().sum(), (x, *layer.parameters()))
    if p in (0.0, 0.5):  # the scale 1 / (1 - p) a power of two: every product exact, so the same bits
        assert torch.equal(fused, reference)
        assert all(torch.equal(a, b) for a, b in zip(gradients, expected))
    torch.testing.assert_close(fused, reference)
    for gradient, wanted in zip(gradients, expected):
        torch.testing.assert_close(gradient, wanted)
    with torch.no_grad():
        assert torch.equal(add_dropout(x, layer(x), p, training=False, into_y=True), x + layer(x))
