"""Training precision: float32, or bfloat16 mixed precision where the device multiplies it natively.

Mixed precision is torch's autocast: the weights, the optimizer and the residual stream stay in
float32; matrix multiplies (linear layers, attention) run in bfloat16 and their outputs are
bfloat16. On a CPU with AVX512-BF16 or AMX a bfloat16 matmul of the expert's shape runs at 2.4x
float32's rate (benchmarks/README.md section 5); on a CPU without them torch emulates it, slower
than float32. A narrow model gains nothing either: its matmuls are too small to outweigh the
casts autocast adds (one epoch pair on the IEMOCAP-shaped data, 2 blocks, 1 thread, two runs
each: d = 96 16-22 % slower in bfloat16, 128 even, 192 19 % faster, 256 17-24 % faster). So
"auto" picks bfloat16 only where it is native and the model at least AUTO_MIN_WIDTH wide.
Evaluation, calibration and live inference always run in float32 (bfloat16 only speeds up
training).
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "float32", "bfloat16")
AUTO_MIN_WIDTH = 192  # hidden_dim from which "auto" trains in bfloat16 (the narrowest measured faster)


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matmuls in hardware: a CUDA GPU of compute capability
    8.0 or newer, or a CPU with AVX512-BF16 or AMX tiles."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    cpu = getattr(torch._C, "_cpu", None)  # private, so looked up with care: absent means no
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def training_dtype(precision: str, device: torch.device, width: int) -> torch.dtype:
    """The dtype training's matmuls run in for this `precision` setting on `device`, for a model
    of hidden size `width`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "bfloat16" if width >= AUTO_MIN_WIDTH and native_bfloat16(device) else "float32"
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """The context a training step's forward runs in: autocast to `dtype`, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
