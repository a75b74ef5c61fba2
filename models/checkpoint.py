"""Checkpoints: a directory with the weights (model.safetensors) and the config (config.json).

The config describes the checkpoint: feature profile and dimensions, labels, context mode and,
in its metadata, the training protocol, data and metrics. Loading checks the weights against
the config, and `check_features` checks a checkpoint against the features it will be fed, so
a model never silently reads features from another extractor.

config.json: {"format": "momke-checkpoint", "version": 1, "config": MoMKEConfig.to_dict(),
"weights_sha256": the sha256 of model.safetensors as saved}. safetensors holds tensors only and,
unlike pickle, runs no code when loaded.

Integrity: weights changed after the save (zeroed, scaled, fine-tuned by hand) load and run, and
their labels change with nothing said; so a checkpoint whose weights file does not match its
recorded sha256 is refused, unless the caller accepts a modified file (`allow_modified=True`,
`momke-live --accept-modified-checkpoint`). A checkpoint written before the digest was recorded
has none to check. A calibration that covers only some modalities or conditions is refused too
(the rest would run uncalibrated): a part is either absent (uncalibrated) or complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..extractors.runtime import atomic_path, bundled, file_sha256, pick_device, write_text_atomic
from .config import CONDITION_NAMES, MODALITIES, MoMKEConfig
from .ensemble import MoMKEEnsemble, build_model
from .momke import MoMKE

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "momke-checkpoint"
FORMAT_VERSION = 1
# safetensors dtype names a weight may have.
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")

# The default checkpoint shipped with the package (whisper feature profile, 4 IEMOCAP classes).
DEFAULT_CHECKPOINT = bundled("checkpoints", "momke-whisper-4class")


def save_checkpoint(
    model: MoMKE | MoMKEEnsemble, directory: str | os.PathLike, metadata: Mapping[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write model.safetensors + config.json into directory (created if needed); returns it.

    half: store the weights as float16 (half the file, for the checkpoint shipped in the
    repository); they are read back into float32, so outputs move by rounding only.

    metadata (protocol, training data, metrics, ...) is merged over config.metadata in the
    saved file; the model itself is not changed. Files are replaced atomically, so an
    interrupted save never leaves half a checkpoint over a good one.
    """
    directory = Path(directory)
    config = model.config.to_dict()
    config["metadata"] = {**config.get("metadata", {}), **dict(metadata or {})}
    try:
        config_text = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": config}, indent=2)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {error}") from error
    directory.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else None
    tensors = {name: tensor.detach().to("cpu", dtype).contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as temporary:
        save_file(tensors, str(temporary))
        digest = file_sha256(Path(temporary))
    document = json.loads(config_text)
    document["weights_sha256"] = digest
    write_text_atomic(directory / CONFIG_FILE, json.dumps(document, indent=2) + "\n")
    return directory


def load_config(directory: str | os.PathLike) -> MoMKEConfig:
    """The config of a checkpoint, without loading its weights."""
    return _read_document(directory)[0]


def _read_document(directory: str | os.PathLike) -> tuple[MoMKEConfig, dict]:
    """(the config, config.json's document) of a checkpoint, checked."""
    directory = _existing_directory(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a MoMKE checkpoint directory holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the checkpoint is corrupt") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME or "config" not in document:
        raise ValueError(f"{path} is not a MoMKE checkpoint config (expected format {FORMAT_NAME!r})")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format version {document.get('version')!r}; this code reads version {FORMAT_VERSION}")
    if not isinstance(document["config"], dict):
        raise ValueError(f"{path}: \"config\" must be a JSON object of MoMKE settings, got a JSON "
                         f"{_json_type(document['config'])}; the checkpoint is corrupt")
    digest = document.get("weights_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        raise ValueError(f"{path}: weights_sha256 must be a sha256 (64 hex digits), got {digest!r}")
    try:
        return MoMKEConfig.from_dict(document["config"]), document
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} holds an invalid MoMKE config: {error}") from error


def _json_type(value) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def check_calibration(config: MoMKEConfig, path: Path) -> None:
    """A calibration part is absent (uncalibrated) or has a temperature for every modality /
    condition; a partial one would run some conditions uncalibrated without a word."""
    for part, names in (("modalities", MODALITIES), ("fused", CONDITION_NAMES)):
        temperatures = config.calibration.get(part) or {}
        missing = [name for name in names if name not in temperatures]
        if temperatures and missing:
            raise ValueError(f"{path}: calibration[{part!r}] has no temperature for {', '.join(missing)}: "
                             "those would run uncalibrated. Refit the calibration on validation data "
                             f"(every {'modality' if part == 'modalities' else 'condition'}), or remove calibration[{part!r}]")


def check_weights_digest(document: dict, path: Path, allow_modified: bool = False) -> None:
    """Refuse a weights file whose sha256 differs from the one recorded at save."""
    expected = document.get("weights_sha256")
    if expected is None or allow_modified:
        return
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ValueError(
            f"{path} was modified after the checkpoint was saved (sha256 {actual[:12]}..., recorded "
            f"{expected[:12]}...): its predictions are not the saved model's. Restore the file, or "
            "accept it knowingly (allow_modified=True; momke-live --accept-modified-checkpoint)")


def load_checkpoint(
    directory: str | os.PathLike = DEFAULT_CHECKPOINT, device: str | torch.device | None = None,
    allow_modified: bool = False,
) -> MoMKE | MoMKEEnsemble:
    """Load a checkpoint into a MoMKE (or an ensemble of them) in eval mode, float32, on device
    (default: CUDA if present, else CPU).

    Everything is checked before memory is committed to the model: the config's types (in
    load_config), then the tensor names and shapes in the weights file's header against the
    shapes the config implies (computed on the "meta" device, which allocates nothing, so a
    config asking for a huge model is refused, not built), then every weight for NaN/inf.
    The weights file must match the sha256 recorded at save, unless allow_modified.
    """
    config, document = _read_document(directory)
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the checkpoint has a config but no weights")
    check_calibration(config, Path(directory) / CONFIG_FILE)
    check_weight_shapes(config, weight_shapes(path), path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}); the checkpoint is corrupt") from error
    tensors = {name: _float32(tensor) for name, tensor in tensors.items()}
    not_finite = sorted(name for name, tensor in tensors.items() if not np.isfinite(tensor.numpy()).all())
    if not_finite:
        raise ValueError(f"weights in {path} hold NaN or infinite values ({', '.join(not_finite[:5])}); "
                         "the checkpoint is corrupt or its training diverged")
    check_weights_digest(document, path, allow_modified)  # well-formed, but not what was saved?
    with _NoInitialisation(any_device=True):  # every weight comes from the file (strict loading)
        model = build_model(config)
    model.load_state_dict(tensors, assign=True)  # the float32 tensors themselves: no copy
    return model.to(pick_device(device)).eval()


def weight_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{tensor name: (shape, dtype)} from a safetensors file's header, without reading the data."""
    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: (tuple(weights.get_slice(name).get_shape()), weights.get_slice(name).get_dtype())
                    for name in weights.keys()}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}); the checkpoint is corrupt") from error


def check_weight_shapes(config: MoMKEConfig, shapes: Mapping[str, tuple[tuple[int, ...], str]], path: Path) -> None:
    """Raise ValueError unless the weights file holds exactly the float tensors the config implies."""
    # Member and block counts set how many modules even a meta model creates, so they come first.
    members = {int(name.split(".")[1]) for name in shapes if name.startswith("members.") and name.split(".")[1].isdigit()}
    if config.ensemble_size != max(1, len(members)):
        raise ValueError(f"weights in {path} do not match its config: ensemble_size is {config.ensemble_size} "
                         f"in config, {max(1, len(members))} in the weights file")
    parts = [name.split(".")[2:] if members else name.split(".") for name in shapes]
    blocks = {int(p[3]) for p in parts if len(p) > 3 and p[0] == "experts" and p[2] == "blocks" and p[3].isdigit()}
    if config.num_blocks != len(blocks):
        raise ValueError(f"weights in {path} do not match its config: num_blocks is {config.num_blocks} "
                         f"in config, {len(blocks)} in the weights file")
    with torch.device("meta"), _NoInitialisation():
        expected = {name: tuple(value.shape) for name, value in build_model(config).state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong_shape = sorted(
        f"{name}: {shapes[name][0]} in file, {shape} in config"
        for name, shape in expected.items() if name in shapes and shapes[name][0] != shape
    )
    not_float = sorted(f"{name}: {dtype}" for name, (_, dtype) in shapes.items() if dtype not in FLOAT_DTYPES)
    if missing or unexpected or wrong_shape or not_float:
        problems = [f"{label} {items[:5]}" for label, items in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shapes", wrong_shape),
                     ("not floating point", not_float)) if items]
        raise ValueError(f"weights in {path} do not match its config: {'; '.join(problems)}")


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    """A weight as float32, converted by numpy where it can be: torch's float16 kernels on a CPU cost
    a tenth of a second per checkpoint on a busy 2-core machine, numpy's a few milliseconds."""
    if tensor.dtype == torch.float32:
        return tensor
    if tensor.dtype in (torch.float16, torch.float64):
        return torch.from_numpy(tensor.numpy().astype(np.float32))
    return tensor.float()


class _NoInitialisation(torch.overrides.TorchFunctionMode):
    """Skips the in-place random initialisers while a model is built on the meta device: there they
    compute nothing, yet each runs through torch's Python decompositions (a second for a checkpoint
    of three members on a small CPU, most of a start's model loading). Modes are per thread."""

    SKIPPED = frozenset({"uniform_", "normal_", "trunc_normal_", "zero_", "fill_", "bernoulli_", "exponential_",
                         "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "orthogonal_"})

    def __init__(self, any_device: bool = False) -> None:
        super().__init__()
        self.any_device = any_device  # also on a real device: for a model whose weights are all loaded next

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in self.SKIPPED:
            tensor = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
            if isinstance(tensor, torch.Tensor) and (self.any_device or tensor.is_meta):
                return tensor
        return func(*args, **kwargs)


def check_features(config: MoMKEConfig, profile_name: str, dims: Sequence[int] | Mapping[str, int]) -> None:
    """Raise ValueError unless the checkpoint (config) was trained on this feature profile and dims.

    dims: (audio, text, visual) dimensions, or {modality: dimension}.
    """
    if isinstance(dims, Mapping):
        dims = tuple(dims.get(m, -1) for m in MODALITIES)
    dims = tuple(int(d) for d in dims)
    problems = []
    if config.feature_profile != profile_name:
        problems.append(f"it was trained on the {config.feature_profile!r} feature profile, not {profile_name!r}")
    if dims != tuple(config.feature_dims):
        differing = ", ".join(
            f"{m} {want} (got {got})" for m, want, got in zip(MODALITIES, config.feature_dims, dims) if want != got
        ) or f"{tuple(config.feature_dims)} (got {dims})"
        problems.append(f"it reads feature dimensions {differing}")
    if problems:
        raise ValueError(
            "this checkpoint does not match the features: " + "; ".join(problems)
            + ". Use the feature profile the checkpoint was trained on, or a checkpoint trained on these features."
        )


def _existing_directory(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    return directory


