"""The on-disk format for utterance features of conversations, and the batches built from it.

One corpus is one directory::

    <corpus>/corpus.json              metadata + the index of dialogues (UTF-8 JSON)
    <corpus>/dialogues/<name>.npz     one file per dialogue (numpy, no pickle)

corpus.json::

    {"format": "momke-feature-corpus", "version": 1,
     "feature_profile": "lite",                  # which extractors made the features
     "feature_dims": {"audio": 88, "text": 384, "visual": 71},
     "labels": ["happy", "sad", "neutral", "angry"],   # [] for regression
     "task": "classification" | "regression",
     "description": "...", "extra": {...},       # free-form provenance
     "dialogues": [{"id": "Ses01F_impro01", "file": "dialogues/....npz",
                    "split": "train" | "valid" | "test" | null,
                    "session": 1 | "fold-a" | null, "num_utterances": 24}, ...]}

Each dialogue's .npz (read with ``np.load(path, allow_pickle=False)``) holds, for U utterances
in conversation order:

- ``utterance_ids``: unicode [U]; ``speakers``: unicode [U] ("" when unknown);
- ``present``: bool [U, 3], True where a modality exists for that utterance, in the order
  ``MODALITIES = ("audio", "text", "visual")``;
- ``audio`` / ``text`` / ``visual``: float32 [U, d_m]. An array may be left out when that
  modality is missing from the whole dialogue. Rows of missing entries are stored as zeros and
  are never read: ``present`` is what counts. Present rows must be finite;
- ``labels``: classification: int64 class index into ``labels``, -1 = unlabeled;
  regression: float32 score (e.g. sentiment in [-3, 3]), NaN = unlabeled.

Splits: a dialogue has a ``split`` ("train"/"valid"/"test") or a ``session`` (a fold id for
leave-one-session-out), or both. Extraction can write dialogues one at a time with
``CorpusWriter`` (the index is rewritten atomically after every dialogue, so an interrupted
run resumes by skipping ``writer.has(dialogue_id)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...extractors.runtime import atomic_write, write_text_atomic
from ..config import MODALITIES, TASKS

FORMAT_NAME = "momke-feature-corpus"
FORMAT_VERSION = 1
INDEX_FILE = "corpus.json"
DIALOGUE_DIR = "dialogues"
SPLITS = ("train", "valid", "test")


# ------------------------------------------------------------------------------------------------
# In-memory objects


@dataclass
class Conversation:
    """One dialogue: utterances in order, their features, presence flags and labels.

    features: {modality: float32 [U, d_m]}; a modality may be absent from the dict when it is
        missing for every utterance of the dialogue.
    present: bool [U, 3] in MODALITIES order.
    labels: int64 [U] (classification, -1 unlabeled) or float32 [U] (regression, NaN unlabeled).
    """

    dialogue_id: str
    utterance_ids: list[str]
    speakers: list[str]
    features: dict[str, np.ndarray]
    present: np.ndarray
    labels: np.ndarray
    split: str | None = None
    session: int | str | None = None

    def __post_init__(self) -> None:
        self.dialogue_id = str(self.dialogue_id)
        self.utterance_ids = [str(u) for u in self.utterance_ids]
        self.speakers = [str(s) for s in self.speakers]
        self.present = np.asarray(self.present, dtype=bool)
        self.features = {m: np.asarray(x, dtype=np.float32) for m, x in self.features.items()}
        self.labels = np.asarray(self.labels)
        self.validate()

    def __len__(self) -> int:
        return len(self.utterance_ids)

    def _where(self, index: int | None = None) -> str:
        if index is None:
            return f"dialogue {self.dialogue_id!r}"
        return f"dialogue {self.dialogue_id!r}, utterance {index} ({self.utterance_ids[index]!r})"

    def validate(self, feature_dims: Sequence[int] | None = None) -> None:
        """Shapes agree, present features are finite; raises ValueError naming the place."""
        n = len(self.utterance_ids)
        if n == 0:
            raise ValueError(f"{self._where()} has no utterances")
        if len(set(self.utterance_ids)) != n:
            raise ValueError(f"{self._where()} repeats an utterance id")
        if len(self.speakers) != n:
            raise ValueError(f"{self._where()}: {len(self.speakers)} speakers for {n} utterances")
        if self.present.shape != (n, len(MODALITIES)):
            raise ValueError(f"{self._where()}: present must be bool [{n}, 3], got {self.present.shape}")
        if self.labels.shape != (n,):
            raise ValueError(f"{self._where()}: labels must be [{n}], got {self.labels.shape}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"{self._where()}: split must be one of {SPLITS} or None, got {self.split!r}")
        unknown = set(self.features) - set(MODALITIES)
        if unknown:
            raise ValueError(f"{self._where()}: unknown modalities {sorted(unknown)}")
        for index, modality in enumerate(MODALITIES):
            x = self.features.get(modality)
            column = self.present[:, index]
            if x is None:
                if column.any():
                    raise ValueError(f"{self._where()}: {modality} is marked present but has no features")
                continue
            if x.ndim != 2 or x.shape[0] != n:
                raise ValueError(f"{self._where()}: {modality} features must be [{n}, d], got {x.shape}")
            if feature_dims is not None and x.shape[1] != feature_dims[index]:
                raise ValueError(
                    f"{self._where()}: {modality} features have dimension {x.shape[1]}, "
                    f"the corpus declares {feature_dims[index]}"
                )
            bad = column & ~np.isfinite(x).all(axis=1)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{self._where(first)}: {modality} features contain NaN or inf "
                    f"({int(bad.sum())} bad utterance(s) in this dialogue); mark them missing instead"
                )

    def labeled(self, task: str) -> np.ndarray:
        """bool [U]: which utterances carry a label."""
        return ~np.isnan(self.labels) if task == "regression" else self.labels >= 0


@dataclass
class CorpusMetadata:
    """What every dialogue of a corpus shares: feature profile and dims, label set, task."""

    feature_profile: str
    feature_dims: tuple[int, int, int]
    labels: tuple[str, ...]
    task: str = "classification"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.feature_dims, dict):
            missing = set(MODALITIES) - set(self.feature_dims)
            if missing:
                raise ValueError(f"feature_dims lacks {sorted(missing)}")
            self.feature_dims = tuple(int(self.feature_dims[m]) for m in MODALITIES)
        self.feature_dims = tuple(int(d) for d in self.feature_dims)  # type: ignore[assignment]
        self.labels = tuple(str(label) for label in self.labels)
        if len(self.feature_dims) != 3 or min(self.feature_dims) <= 0:
            raise ValueError(f"feature_dims must be 3 positive ints (audio, text, visual), got {self.feature_dims}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "classification" and len(self.labels) < 2:
            raise ValueError("a classification corpus needs at least two label names")

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_profile": self.feature_profile,
            "feature_dims": dict(zip(MODALITIES, self.feature_dims)),
            "labels": list(self.labels),
            "task": self.task,
            "description": self.description,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusMetadata:
        return cls(
            feature_profile=str(data.get("feature_profile", "custom")),
            feature_dims=data["feature_dims"],
            labels=data.get("labels", []),
            task=data.get("task", "classification"),
            description=str(data.get("description", "")),
            extra=dict(data.get("extra", {})),
        )


@dataclass
class FeatureCorpus:
    """A corpus in memory: metadata plus conversations."""

    metadata: CorpusMetadata
    conversations: list[Conversation]

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return len(self.conversations)

    def validate(self) -> None:
        seen: set[str] = set()
        num_classes = len(self.metadata.labels)
        for conversation in self.conversations:
            if conversation.dialogue_id in seen:
                raise ValueError(f"dialogue id {conversation.dialogue_id!r} appears twice in the corpus")
            seen.add(conversation.dialogue_id)
            conversation.validate(self.metadata.feature_dims)
            labels = conversation.labels
            if self.metadata.task == "classification":
                if not np.issubdtype(labels.dtype, np.integer):
                    raise ValueError(f"dialogue {conversation.dialogue_id!r}: class labels must be integers, got {labels.dtype}")
                if (labels >= num_classes).any() or (labels < -1).any():
                    raise ValueError(
                        f"dialogue {conversation.dialogue_id!r}: class index outside -1..{num_classes - 1}"
                    )
            elif np.isinf(labels.astype(np.float64)).any():
                raise ValueError(f"dialogue {conversation.dialogue_id!r}: regression labels contain inf")

    @property
    def num_utterances(self) -> int:
        return sum(len(c) for c in self.conversations)

    def subset(self, conversations: Iterable[Conversation]) -> FeatureCorpus:
        return FeatureCorpus(self.metadata, list(conversations))

    def split(self, name: str) -> list[Conversation]:
        return [c for c in self.conversations if c.split == name]

    def sessions(self) -> list[int | str]:
        """Distinct session ids in first-seen order (folds for leave-one-session-out)."""
        found: list[int | str] = []
        for conversation in self.conversations:
            if conversation.session is not None and conversation.session not in found:
                found.append(conversation.session)
        return found


# ------------------------------------------------------------------------------------------------
# Writing and reading


def _file_name(dialogue_id: str) -> str:
    """A file-system-safe, collision-free name for a dialogue id."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", dialogue_id)[:80]
    digest = hashlib.sha1(dialogue_id.encode("utf-8")).hexdigest()[:8]
    return f"{DIALOGUE_DIR}/{safe}-{digest}.npz"


def _identity(metadata: CorpusMetadata) -> tuple:
    """What must match for two writes to belong to one corpus (provenance text may differ)."""
    return (metadata.feature_profile, metadata.feature_dims, metadata.labels, metadata.task)


class CorpusWriter:
    """Writes a corpus directory one dialogue at a time; reopening the same directory resumes.

    >>> writer = CorpusWriter("features/iemocap", metadata)
    >>> for dialogue in dialogues:
    ...     if not writer.has(dialogue.id):
    ...         writer.write(make_conversation(dialogue))
    """

    def __init__(self, directory: str | os.PathLike, metadata: CorpusMetadata) -> None:
        self.directory = Path(directory)
        self.metadata = metadata
        self._entries: dict[str, dict[str, Any]] = {}
        index_path = self.directory / INDEX_FILE
        if index_path.exists():
            existing = _read_index(self.directory)
            if _identity(CorpusMetadata.from_dict(existing)) != _identity(metadata):
                raise ValueError(
                    f"{index_path} already holds a corpus with different metadata "
                    "(feature profile, dims, labels or task); write to a new directory, or remove it first "
                    "(`momke extract --overwrite`)"
                )
            self._entries = {entry["id"]: entry for entry in existing["dialogues"]}
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write_index()

    def has(self, dialogue_id: str) -> bool:
        return str(dialogue_id) in self._entries

    @property
    def dialogue_ids(self) -> list[str]:
        return list(self._entries)

    def write(self, conversation: Conversation) -> None:
        """Add (or replace) one dialogue, then rewrite the index."""
        FeatureCorpus(self.metadata, [conversation])  # validates against the corpus metadata
        entry = {
            "id": conversation.dialogue_id,
            "file": _file_name(conversation.dialogue_id),
            "split": conversation.split,
            "session": conversation.session,
            "num_utterances": len(conversation),
        }
        arrays: dict[str, np.ndarray] = {
            "utterance_ids": np.array(conversation.utterance_ids, dtype=np.str_),
            "speakers": np.array(conversation.speakers, dtype=np.str_),
            "present": conversation.present,
            "labels": conversation.labels.astype(
                np.int64 if self.metadata.task == "classification" else np.float32
            ),
        }
        for index, modality in enumerate(MODALITIES):
            x = conversation.features.get(modality)
            if x is not None:
                # Missing rows are stored as zeros: NaN on disk would only invite mistakes.
                arrays[modality] = np.where(conversation.present[:, index, None], x, 0.0).astype(np.float32)
        with atomic_write(self.directory / entry["file"]) as stream:
            np.savez(stream, **arrays)
        self._entries[conversation.dialogue_id] = entry
        self._write_index()

    def _write_index(self) -> None:
        index = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            **self.metadata.to_dict(),
            "dialogues": list(self._entries.values()),
        }
        write_text_atomic(self.directory / INDEX_FILE, json.dumps(index, indent=1, ensure_ascii=False))


def write_conversation(directory: str | os.PathLike, conversation: Conversation) -> None:
    """Append one dialogue to an existing corpus directory (made by CorpusWriter/save_corpus)."""
    metadata = CorpusMetadata.from_dict(_read_index(Path(directory)))
    CorpusWriter(directory, metadata).write(conversation)


def save_corpus(corpus: FeatureCorpus, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a whole corpus. Refuses a directory that already holds one unless overwrite=True."""
    directory = Path(directory)
    if (directory / INDEX_FILE).exists():
        if not overwrite:
            raise ValueError(f"{directory} already holds a corpus; pass overwrite=True to replace it")
        remove_corpus(directory)
    writer = CorpusWriter(directory, corpus.metadata)
    for conversation in corpus.conversations:
        writer.write(conversation)
    return directory


def remove_corpus(directory: str | os.PathLike) -> None:
    """Delete the corpus in directory (its index and dialogue files; nothing else there), if any."""
    directory = Path(directory)
    if (directory / INDEX_FILE).exists():
        for entry in _read_index(directory)["dialogues"]:
            (directory / entry["file"]).unlink(missing_ok=True)
        (directory / INDEX_FILE).unlink()


def _read_index(directory: Path) -> dict[str, Any]:
    index_path = directory / INDEX_FILE
    if not index_path.is_file():
        raise ValueError(f"{directory} is not a feature corpus: {INDEX_FILE} not found")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{index_path} is not valid JSON: {error}") from error
    if index.get("format") != FORMAT_NAME:
        raise ValueError(f"{index_path} is not a {FORMAT_NAME} index (format={index.get('format')!r})")
    if index.get("version") != FORMAT_VERSION:
        raise ValueError(f"{index_path} has format version {index.get('version')}, this reader knows {FORMAT_VERSION}")
    return index


def load_corpus(directory: str | os.PathLike) -> FeatureCorpus:
    """Read a corpus directory; every dialogue is validated (NaN in present features -> ValueError)."""
    directory = Path(directory)
    index = _read_index(directory)
    metadata = CorpusMetadata.from_dict(index)
    conversations = []
    for entry in index["dialogues"]:
        path = directory / entry["file"]
        if not path.is_file():
            raise ValueError(f"dialogue {entry['id']!r}: file {path} is missing")
        with np.load(path, allow_pickle=False) as arrays:
            conversations.append(
                Conversation(
                    dialogue_id=entry["id"],
                    utterance_ids=arrays["utterance_ids"].tolist(),
                    speakers=arrays["speakers"].tolist(),
                    features={m: arrays[m] for m in MODALITIES if m in arrays.files},
                    present=arrays["present"],
                    labels=arrays["labels"],
                    split=entry.get("split"),
                    session=entry.get("session"),
                )
            )
    return FeatureCorpus(metadata, conversations)


# ------------------------------------------------------------------------------------------------
# Batches for the model


@dataclass
class Batch:
    """Conversations padded to [B, U_max, ...].

    features: {modality: float32 [B, U, d_m]} (zeros where missing or padded);
    modality_mask: bool [B, U, 3]; utterance_mask: bool [B, U] (False on padding);
    labels: int64 [B, U] (-1 = no label / padding) or float32 [B, U] (NaN = none);
    label_mask: bool [B, U], True where a label exists.
    """

    dialogue_ids: list[str]
    features: dict[str, torch.Tensor]
    modality_mask: torch.Tensor
    utterance_mask: torch.Tensor
    labels: torch.Tensor
    label_mask: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.dialogue_ids,
            {m: x.to(device) for m, x in self.features.items()},
            self.modality_mask.to(device),
            self.utterance_mask.to(device),
            self.labels.to(device),
            self.label_mask.to(device),
        )


def collate_conversations(
    conversations: Sequence[Conversation],
    feature_dims: Sequence[int],
    task: str = "classification",
    present_override: Sequence[np.ndarray] | None = None,
) -> Batch:
    """Pad conversations into one Batch.

    present_override: one bool [U, 3] per conversation to use instead of its own presence flags
        (a training protocol hiding modalities); it may only switch flags off, never on.
    """
    if not conversations:
        raise ValueError("cannot collate an empty list of conversations")
    batch, length = len(conversations), max(len(c) for c in conversations)
    features = {m: np.zeros((batch, length, d), dtype=np.float32) for m, d in zip(MODALITIES, feature_dims)}
    modality_mask = np.zeros((batch, length, len(MODALITIES)), dtype=bool)
    utterance_mask = np.zeros((batch, length), dtype=bool)
    if task == "classification":
        labels = np.full((batch, length), -1, dtype=np.int64)
    else:
        labels = np.full((batch, length), np.nan, dtype=np.float32)
    for row, conversation in enumerate(conversations):
        n = len(conversation)
        present = conversation.present
        if present_override is not None:
            present = present & np.asarray(present_override[row], dtype=bool)
        modality_mask[row, :n] = present
        utterance_mask[row, :n] = True
        labels[row, :n] = conversation.labels
        for index, modality in enumerate(MODALITIES):
            x = conversation.features.get(modality)
            if x is not None:
                # copied, then the missing utterances zeroed: np.where would build a temporary
                rows = features[modality][row, :n]
                rows[...] = x
                if not present[:, index].all():
                    rows[~present[:, index]] = 0.0
    labels_tensor = torch.from_numpy(labels)
    label_mask = labels_tensor >= 0 if task == "classification" else ~torch.isnan(labels_tensor)
    return Batch(
        dialogue_ids=[c.dialogue_id for c in conversations],
        features={m: torch.from_numpy(x) for m, x in features.items()},
        modality_mask=torch.from_numpy(modality_mask),
        utterance_mask=torch.from_numpy(utterance_mask),
        labels=labels_tensor,
        label_mask=label_mask & torch.from_numpy(utterance_mask),
    )
