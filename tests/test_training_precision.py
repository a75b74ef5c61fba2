"""bfloat16 mixed precision in training: chosen by the hardware, close to the float32 step, with
float32 weights and residual stream, and a model that still learns."""

import pytest
import torch
from momke.models.metrics import score
from momke.models.momke import ModalityExpert
from momke.models.training import precision
from momke.models.training.toy_corpus import make_toy_corpus
from momke.models.training.trainer import (
    TrainingSettings,
    condition_presence,
    predict,
    train_on_corpus,
)
from test_model import random_features, random_mask, tiny_model
from test_model_packing import autograd_packed_attention, grouped_packing_with_fixed_masks
from test_training import TINY, fast_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def test_auto_is_bfloat16_only_where_the_hardware_has_it_and_the_model_is_wide(monkeypatch):
    assert precision.training_dtype("float32", CPU, 256) == torch.float32
    assert precision.training_dtype("bfloat16", CPU, 16) == torch.bfloat16  # asked for: emulated if need be
    monkeypatch.setattr(precision, "native_bfloat16", lambda device: True)
    assert precision.training_dtype("auto", CPU, 256) == torch.bfloat16
    assert precision.training_dtype("auto", CPU, precision.AUTO_MIN_WIDTH) == torch.bfloat16
    assert precision.training_dtype("auto", CPU, 96) == torch.float32  # the default recipe's width
    monkeypatch.setattr(precision, "native_bfloat16", lambda device: False)
    assert precision.training_dtype("auto", CPU, 256) == torch.float32
    assert precision.native_bfloat16(torch.device("meta")) is False


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainingSettings(precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.training_dtype("half", CPU, 256)


def training_step(dtype, seed=0):
    """One stage-2 step of a tiny model in training mode (dropout 0.5: the masks come from the
    same random draws whatever the dtype): (loss, {name: gradient}, dtypes seen)."""
    model = tiny_model(seed=seed, hidden_dim=32, router_hidden_dim=32, dropout=0.5).train()
    seen = set()
    for expert in model.modules():
        if isinstance(expert, ModalityExpert):
            expert.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    features, mask = random_features(4, 9), random_mask(4, 9, p=0.6)
    torch.manual_seed(seed + 1)
    with precision.autocast(CPU, dtype):
        logits = model(features, mask).logits
    loss = logits.float().square().mean()
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads, seen, model


def test_a_mixed_precision_step_is_the_float32_step_to_bfloat16_rounding():
    loss32, grads32, seen32, _ = training_step(torch.float32)
    loss16, grads16, seen16, model = training_step(torch.bfloat16)
    assert seen32 == {torch.float32}
    # The experts' outputs (their residual stream, through the last LayerNorm) stay float32.
    assert seen16 == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert set(grads16) == set(grads32)
    assert loss16 == pytest.approx(loss32, rel=0.03)
    for name, grad in grads16.items():
        assert grad.dtype == torch.float32, name
        reference = grads32[name]
        if reference.norm() > 0:
            cosine = torch.nn.functional.cosine_similarity(grad.flatten(), reference.flatten(), dim=0)
            assert cosine > 0.98, (name, cosine.item())
    # ...and it is not the float32 step itself: the matmuls did run in bfloat16.
    assert any(not torch.equal(grads16[n], grads32[n]) for n in grads32)


@pytest.mark.parametrize("causal", [False, True])
def test_packed_attention_in_bfloat16_is_close_to_float32(causal, monkeypatch):
    packing, generator, _ = grouped_packing_with_fixed_masks(causal, monkeypatch)
    qkv = torch.randn(len(packing.rows), 3 * 16, generator=generator)
    weights = torch.randn(len(packing.rows), 16, generator=generator)
    reference_qkv = qkv.clone().requires_grad_()
    reference = autograd_packed_attention(reference_qkv, packing, 0.5)
    (reference_gradient,) = torch.autograd.grad((reference * weights).sum(), reference_qkv)
    half_qkv = qkv.bfloat16().requires_grad_()
    packed = packing.attend(half_qkv, 0.5)
    assert packed.dtype == torch.bfloat16
    (gradient,) = torch.autograd.grad((packed.float() * weights).sum(), half_qkv)
    assert gradient.dtype == torch.bfloat16
    torch.testing.assert_close(packed.float(), reference, rtol=0.05, atol=0.05)
    torch.testing.assert_close(gradient.float(), reference_gradient, rtol=0.05, atol=0.08)


@pytest.fixture(scope="module")
def corpus():
    return make_toy_corpus(num_dialogues=60)


def test_training_in_bfloat16_learns_and_says_so(corpus):
    result = train_on_corpus(corpus, fast_settings(precision="bfloat16"), **TINY)
    assert result.precision == "bfloat16"
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    test = corpus.split("test")
    labels, outputs = predict(result.model, test, [condition_presence(c, ("audio", "text", "visual")) for c in test])
    assert score("classification", labels, outputs)["wa"] > 0.7  # as test_training's float32 run


def test_the_same_seed_gives_the_same_bfloat16_run(corpus):
    settings = fast_settings(stage1_epochs=2, stage2_epochs=2, patience=None, precision="bfloat16")
    first, second = (train_on_corpus(corpus, settings, **TINY) for _ in range(2))
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    plain = train_on_corpus(corpus, fast_settings(stage1_epochs=2, stage2_epochs=2, patience=None, precision="float32"), **TINY)
    assert plain.precision == "float32"
    assert [h["train_loss"] for h in plain.history] != [h["train_loss"] for h in first.history]


def test_the_precision_trained_in_reaches_the_checkpoint(tmp_path):
    from momke.models.checkpoint import load_checkpoint
    from momke.models.commands.cli import main
    from momke.models.training.data import save_corpus

    save_corpus(make_toy_corpus(num_dialogues=12), tmp_path / "toy")
    code = main(["train", str(tmp_path / "toy"), "--out", str(tmp_path / "m"), "--epochs", "1", "--hidden-dim", "16",
                 "--num-blocks", "1", "--precision", "bfloat16", "--allow-constant-model", "--quiet"])
    assert code == 0
    training = load_checkpoint(tmp_path / "m", device="cpu").config.metadata["training"]
    assert training["precision"] == "bfloat16" and training["trained_in"] == "bfloat16"


def test_momke_train_offers_the_precisions_the_trainer_takes():
    from momke.models.commands.cli import build_parser

    parser = build_parser()
    command = ["train", "corpus", "--out", "model"]
    assert parser.parse_args(command).precision == "auto"
    for value in precision.PRECISIONS:
        assert parser.parse_args([*command, "--precision", value]).precision == value
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--precision", "float16"])
