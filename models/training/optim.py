"""Adam for the trainer on CPU: torch.optim.Adam(fused=True)'s update without torch.optim.

Why: the first step (or zero_grad) of any torch.optim optimizer in a process imports
torch._dynamo (torch._disable_dynamo imports it lazily): about 870 modules, sympy among them,
0.9 s of CPU, as much as 6 % of a one-epoch-per-stage training run
(benchmarks/bench_training.py). FusedAdam calls the same fused kernel with the same
arguments and state, so the weights it gives are bitwise those of torch.optim.Adam(fused=True)
(tests/test_training_optim.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class FusedAdam:
    """Adam (L2 weight decay added to the gradient, not decoupled), one fused kernel per
    device and dtype; the parts of torch.optim.Adam's interface the trainer uses: step() and
    zero_grad(). A parameter's state starts at its first gradient, as torch's does."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("FusedAdam got no parameter that requires a gradient")
        for p in self.params:
            if not p.is_floating_point():
                raise ValueError(f"FusedAdam updates floating-point parameters, got {p.dtype}")
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        # Per parameter: (step as a float32 scalar tensor, exp_avg, exp_avg_sq), as torch keeps them.
        self.state: dict[Tensor, tuple[Tensor, Tensor, Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None  # torch's default (set_to_none): the next backward allocates fresh

    @torch.no_grad()
    def step(self) -> None:
        groups: dict[tuple[torch.device, torch.dtype], list[list[Tensor]]] = {}
        for p in self.params:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("FusedAdam does not take sparse gradients")
            if p not in self.state:
                self.state[p] = (
                    torch.zeros((), dtype=torch.float32, device=p.device),
                    torch.zeros_like(p, memory_format=torch.preserve_format),
                    torch.zeros_like(p, memory_format=torch.preserve_format),
                )
            step, exp_avg, exp_avg_sq = self.state[p]
            lists = groups.setdefault((p.device, p.dtype), [[], [], [], [], []])
            for held, value in zip(lists, (p, p.grad, exp_avg, exp_avg_sq, step)):
                held.append(value)
        beta1, beta2 = self.betas
        for params, grads, exp_avgs, exp_avg_sqs, steps in groups.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=self.lr, beta1=beta1, beta2=beta2,
                weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False,
                grad_scale=None, found_inf=None,
            )
