"""FusedAdam gives torch.optim.Adam(fused=True)'s weights bit for bit, without importing torch._dynamo."""

import subprocess
import sys

import pytest
import torch
from momke.models.config import MoMKEConfig
from momke.models.momke import MoMKE
from momke.models.training.optim import FusedAdam


def _train(make_optimizer, steps: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    config = MoMKEConfig(feature_dims=(6, 5, 4), labels=("a", "b", "c"), hidden_dim=16, num_blocks=1,
                         num_heads=2, router_hidden_dim=8)
    model = MoMKE(config).train()
    optimizer = make_optimizer(model.parameters())
    batch, length = 3, 5
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        features = {m: torch.randn(batch, length, d, generator=generator) for m, d in zip(("audio", "text", "visual"), (6, 5, 4))}
        mask = torch.rand(batch, length, 3, generator=generator) > 0.3
        optimizer.zero_grad()
        if step == 1:  # stage-1-like step: only the text expert and its head get gradients
            loss = model.forward_unimodal("text", features["text"], mask[..., 1]).square().mean()
        else:
            loss = model(features, mask).logits.square().mean()
        loss.backward()
        optimizer.step()
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


@pytest.mark.usefixtures("one_torch_thread")
def test_fused_adam_matches_torch_fused_adam_bitwise():
    settings = {"lr": 3e-3, "weight_decay": 1e-5}
    reference = _train(lambda params: torch.optim.Adam(params, fused=True, **settings))
    ours = _train(lambda params: FusedAdam(params, **settings))
    assert reference.keys() == ours.keys()
    for name in reference:
        assert torch.equal(reference[name], ours[name]), name
    # and it did train: the weights moved from their initial values
    initial = _train(lambda params: FusedAdam(params, lr=0.0), steps=0)
    assert any(not torch.equal(initial[name], ours[name]) for name in ours)


def test_fused_adam_state_starts_with_a_parameters_first_gradient():
    first, second = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = FusedAdam([first, second], lr=0.1)
    first.grad = torch.ones(3)
    optimizer.step()
    assert first.detach().lt(1.0).all() and torch.equal(second.detach(), torch.ones(2))  # no gradient: untouched
    assert second not in optimizer.state
    optimizer.zero_grad()
    assert first.grad is None and second.grad is None


def test_fused_adam_rejects_what_it_cannot_update():
    with pytest.raises(ValueError, match="no parameter"):
        FusedAdam([torch.zeros(2)], lr=0.1)


def test_cpu_training_does_not_import_torch_dynamo():
    """Why FusedAdam exists: torch.optim's first step imports torch._dynamo (0.9 s of CPU)."""
    code = (
        "import sys, torch\n"
        "from momke.models.training.toy_corpus import make_toy_corpus\n"
        "from momke.models.training.trainer import TrainingSettings, train_on_corpus\n"
        "corpus = make_toy_corpus(num_dialogues=6, seed=0)\n"
        "settings = TrainingSettings(stage1_epochs=1, stage2_epochs=1, batch_size=4, progress=False, device='cpu')\n"
        "train_on_corpus(corpus, settings, hidden_dim=8, num_blocks=1, num_heads=2, router_hidden_dim=8)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
