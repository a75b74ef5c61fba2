"""Reader for the feature layout of the MoMKE / GCNet authors' repositories -> FeatureCorpus.

Their layout:
- a label pickle holding ``[ids, labels, speakers, sentences, train_ids, test_ids]`` (IEMOCAP)
  or ``[ids, labels, speakers, sentences, train_ids, valid_ids, test_ids]`` (CMU-MOSI/MOSEI):
  ``ids[dialogue]`` = its utterance ids in order, ``labels[dialogue]`` = class indices or
  sentiment scores, ``speakers[dialogue]`` = "F"/"M" (IEMOCAP) or "" per utterance;
  the split entries are collections of dialogue ids. Python 2 pickles are read as latin-1;
- one directory per modality with ``<utterance_id>.npy`` per utterance: [dim] or [time, dim]
  (averaged over time), or a folder ``<utterance_id>/`` of per-face .npy files (the visual
  features; faces whose file name contains the utterance's speaker letter are preferred,
  then averaged). An utterance without a file is marked missing for that modality.

Pickles can run arbitrary code when loaded, so the label file is read with a restricted
unpickler that only builds builtin containers/scalars and numpy arrays; anything else raises.
IEMOCAP dialogue ids (``Ses01F_impro01``) give the session number for leave-one-session-out.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MODALITIES
from .data import Conversation, CorpusMetadata, FeatureCorpus

_SAFE_BUILTINS = {
    "dict", "list", "set", "frozenset", "tuple", "str", "bytes", "bytearray",
    "int", "float", "bool", "complex",
}
_SAFE_GLOBALS = {("builtins", name) for name in _SAFE_BUILTINS} | {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol-2 pickles rebuild bytes (and array buffers) with it
} | {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")}

IEMOCAP_SESSION = re.compile(r"^Ses(\d+)")


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle that asks for anything beyond plain data: refused (bad input, so a ValueError)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only builtin containers/scalars and numpy arrays/dtypes/scalars."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__.set, ...) are mapped the way pickle itself maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in _SAFE_GLOBALS and not (module == "numpy" and _is_numpy_scalar_type(name)):
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from a pickle: only builtin containers and numpy arrays are allowed"
            )
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)  # numpy 2 moved it; avoids a warning
        return super().find_class(module, name)


def _is_numpy_scalar_type(name: str) -> bool:
    """numpy.float32 and friends (a dtype's type), never functions or other numpy objects."""
    value = getattr(np, name, None)
    return isinstance(value, type) and issubclass(value, np.generic)


def restricted_load(data: bytes | os.PathLike | str) -> Any:
    """Unpickle bytes or a file with RestrictedUnpickler (latin-1 for Python 2 strings)."""
    try:
        if isinstance(data, (bytes, bytearray)):
            return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
        with Path(data).open("rb") as stream:
            return RestrictedUnpickler(stream, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as error:  # truncated or foreign files
        raise ValueError(f"cannot read the label pickle: {error}") from error


def _unpack(labels_file: Any, path: Path) -> tuple[dict, dict, dict, list[set], list[str]]:
    if not isinstance(labels_file, (list, tuple)) or len(labels_file) not in (6, 7):
        raise ValueError(
            f"{path}: expected [ids, labels, speakers, sentences, train_ids, (valid_ids,) test_ids], "
            f"got {type(labels_file).__name__} of length {len(labels_file) if hasattr(labels_file, '__len__') else '?'}"
        )
    ids, labels, speakers = labels_file[0], labels_file[1], labels_file[2]
    if not all(isinstance(x, dict) for x in (ids, labels, speakers)):
        raise ValueError(f"{path}: ids, labels and speakers must be dicts keyed by dialogue id")
    if len(labels_file) == 6:
        splits, names = [labels_file[4], labels_file[5]], ["train", "test"]
    else:
        splits, names = [labels_file[4], labels_file[5], labels_file[6]], ["train", "valid", "test"]
    return ids, labels, speakers, [set(s) for s in splits], names


def _load_array(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, EOFError, ValueError) as error:  # empty, truncated, pickled or not .npy at all
        raise ValueError(f"{file} is not a readable .npy array ({error})") from error


def _utterance_feature(directory: Path, utterance_id: str, speaker: str) -> np.ndarray | None:
    """One vector for one utterance, or None when the layout has nothing for it."""
    file = directory / f"{utterance_id}.npy"
    if file.is_file():
        arrays = [_load_array(file)]
    elif (directory / utterance_id).is_dir():
        faces = sorted((directory / utterance_id).glob("*.npy"))
        own = [f for f in faces if speaker and speaker in f.stem]
        arrays = [_load_array(f) for f in (own or faces)]
        if not arrays:
            return None
    else:
        return None
    vectors = []
    for array in arrays:
        array = np.asarray(array, dtype=np.float32).squeeze()
        if array.ndim == 2:
            array = array.mean(axis=0)  # [time, dim] -> [dim]
        if array.ndim != 1:
            raise ValueError(f"{directory}/{utterance_id}: expected a [dim] or [time, dim] array, got shape {array.shape}")
        vectors.append(array)
    if len({v.shape for v in vectors}) != 1:
        raise ValueError(f"{directory}/{utterance_id}: face features of different dimensions")
    return np.mean(vectors, axis=0)


def read_paper_layout(
    label_path: str | os.PathLike,
    audio_dir: str | os.PathLike | None = None,
    text_dir: str | os.PathLike | None = None,
    visual_dir: str | os.PathLike | None = None,
    task: str | None = None,
    label_names: Sequence[str] | None = None,
    feature_profile: str = "paper",
) -> FeatureCorpus:
    """Build a FeatureCorpus from the authors' layout (see the module docstring).

    task: None guesses regression when any label is fractional. label_names default to
    "class_0", ... (the pickle stores indices only). A modality without a directory is
    missing everywhere and gets dimension 1 as a placeholder.
    """
    try:
        return _read_paper_layout(Path(label_path), audio_dir, text_dir, visual_dir, task, label_names, feature_profile)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        # A pickle of plain data, but not shaped like the authors' label file.
        raise ValueError(f"{label_path} does not follow the MoMKE/GCNet label layout "
                         f"({type(error).__name__}: {error})") from error


def _read_paper_layout(label_path, audio_dir, text_dir, visual_dir, task, label_names, feature_profile) -> FeatureCorpus:
    if not label_path.is_file():
        raise ValueError(f"label pickle {label_path} not found")
    ids, labels, speakers, splits, split_names = _unpack(restricted_load(label_path), label_path)
    directories = dict(zip(MODALITIES, (audio_dir, text_dir, visual_dir)))
    for modality, directory in directories.items():
        if directory is not None and not Path(directory).is_dir():
            raise ValueError(f"{modality} feature directory {directory} does not exist")
    if not any(directories.values()):
        raise ValueError("give at least one feature directory (audio, text or visual)")

    split_of = {}
    for name, members in zip(split_names, splits):
        for dialogue in members:
            if dialogue in split_of:
                raise ValueError(f"{label_path}: dialogue {dialogue!r} is in both {split_of[dialogue]} and {name}")
            split_of[dialogue] = name
    dialogues = sorted(split_of, key=str)
    missing = [d for d in dialogues if d not in ids]
    if missing:
        raise ValueError(f"{label_path}: split lists dialogues with no utterance ids, e.g. {missing[:3]}")

    all_labels = np.concatenate([np.asarray(labels[d], dtype=np.float64).reshape(-1) for d in dialogues])
    if task is None:
        task = "regression" if np.any(all_labels != np.round(all_labels)) else "classification"
    if task == "classification":
        num_classes = int(all_labels.max()) + 1
        names = tuple(label_names) if label_names else tuple(f"class_{i}" for i in range(num_classes))
        if len(names) < num_classes:
            raise ValueError(f"{len(names)} label names for {num_classes} classes")
    else:
        names = ()

    dims: dict[str, int] = {}
    conversations = []
    for dialogue in dialogues:
        utterances = [str(u) for u in ids[dialogue]]
        n = len(utterances)
        dialogue_speakers = [str(s) for s in speakers.get(dialogue, [""] * n)]
        dialogue_labels = np.asarray(labels[dialogue]).reshape(-1)
        if len(dialogue_labels) != n or len(dialogue_speakers) != n:
            raise ValueError(f"dialogue {dialogue!r}: {n} utterances but {len(dialogue_labels)} labels / {len(dialogue_speakers)} speakers")
        present = np.zeros((n, len(MODALITIES)), dtype=bool)
        features = {}
        for index, modality in enumerate(MODALITIES):
            directory = directories[modality]
            if directory is None:
                continue
            rows = []
            for row, utterance in enumerate(utterances):
                vector = _utterance_feature(Path(directory), utterance, dialogue_speakers[row])
                if vector is not None:
                    expected = dims.setdefault(modality, vector.shape[0])
                    if vector.shape[0] != expected:
                        raise ValueError(f"{directory}/{utterance}: dimension {vector.shape[0]}, other {modality} features have {expected}")
                    present[row, index] = True
                rows.append(vector)
            if present[:, index].any():
                dim = dims[modality]
                features[modality] = np.stack([v if v is not None else np.zeros(dim, np.float32) for v in rows])
        match = IEMOCAP_SESSION.match(str(dialogue))
        conversations.append(
            Conversation(
                dialogue_id=str(dialogue),
                utterance_ids=utterances,
                speakers=dialogue_speakers,
                features=features,
                present=present,
                labels=dialogue_labels.astype(np.int64 if task == "classification" else np.float32),
                split=split_of[dialogue],
                session=int(match.group(1)) if match else None,
            )
        )
    metadata = CorpusMetadata(
        feature_profile=feature_profile,
        feature_dims=tuple(dims.get(m, 1) for m in MODALITIES),
        labels=names,
        task=task,
        description=f"imported from the MoMKE/GCNet layout: {label_path.name}",
        extra={"label_file": str(label_path), "feature_dirs": {m: str(d) if d else None for m, d in directories.items()}},
    )
    return FeatureCorpus(metadata, conversations)
