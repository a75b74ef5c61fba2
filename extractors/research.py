"""The `research` extractors: the paper's kind of encoders, loaded from a local folder.

MoMKE's paper reads wav2vec features for audio, DeBERTa-large features for text and MA-Net
features for faces. Their weights cannot be fetched here, so these extractors take the path of
a Hugging Face-format checkpoint folder the user already has (config.json + weights, e.g. a
`save_pretrained` output or a cloned model repository) and never download anything
(`local_files_only=True`, hub offline). A missing folder is a ValueError saying so.

Audio (`ResearchAudioExtractor`): any transformers speech encoder with hidden states
(wav2vec 2.0, HuBERT, WavLM, data2vec-audio) at 16 kHz.
- `layer`: an index into the hidden states (0 = the transformer's input, -1 = the last layer)
  or "features" for the convolutional feature encoder's output (512-d for wav2vec 2.0 /
  HuBERT; the paper's IEMOCAP audio features are 512-d wav2vec vectors);
- `pooling`: "mean" over time frames (the utterance-level features of the paper's pipeline), or
  "mean_std" (mean then standard deviation: twice the dimension).
- input: waveform normalised to zero mean / unit variance, as wav2vec 2.0's processor does;
  silence (see media.SILENCE_DBFS) or under 10 ms is missing.

Text (`ResearchTextExtractor`): any transformers text encoder (DeBERTa, RoBERTa, BERT...).
- `layers`: hidden-state indices averaged together (default: the last four, -4..-1, a common
  utterance-feature recipe); `pooling`: "mean" over tokens (attention-masked, default) or "cls"
  (the first token).
- empty / whitespace transcript is missing; batched with padding and an attention mask.

Visual: the paper's MA-Net weights are not available and no face CNN is wired in here; the
research profile uses the lite visual extractor unless another is passed to `load_profile`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .base import ModalityExtractor, Utterance
from .media import MIN_SAMPLES_16K, SILENCE_DBFS, peak_frame_dbfs, resample_to_target, to_mono_float
from .runtime import pick_device
from .text_lite import TextEncoderExtractor, offline_quiet_loading

AUDIO_POOLINGS = ("mean", "mean_std")
TEXT_POOLINGS = ("mean", "cls")


def checkpoint_folder(path: str | os.PathLike | None, what: str) -> Path:
    """A local checkpoint folder that exists and holds config.json; otherwise a clear ValueError."""
    if path is None or str(path).strip() == "":
        raise ValueError(f"the research profile needs a local {what} checkpoint folder; pass its path "
                         f"(nothing is downloaded)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{what} checkpoint folder not found: {folder} (the research profile never downloads; "
                         "give the path of a folder saved with save_pretrained)")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} is not a transformers checkpoint: config.json is missing")
    return folder


def _hidden_size(folder: Path) -> tuple[int, object]:
    from transformers import AutoConfig

    with offline_quiet_loading():
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    return int(config.hidden_size), config


class ResearchAudioExtractor(ModalityExtractor):
    modality = "audio"

    def __init__(self, path, layer: int | str = -1, pooling: str = "mean", device=None) -> None:
        self.folder = checkpoint_folder(path, "audio (wav2vec 2.0 / HuBERT)")
        if pooling not in AUDIO_POOLINGS:
            raise ValueError(f"audio pooling must be one of {AUDIO_POOLINGS}, got {pooling!r}")
        if not (layer == "features" or isinstance(layer, int)):
            raise ValueError(f"layer must be an int (hidden-state index) or 'features', got {layer!r}")
        hidden, config = _hidden_size(self.folder)
        width = int(config.conv_dim[-1]) if layer == "features" else hidden
        if isinstance(layer, int) and not -(config.num_hidden_layers + 1) <= layer <= config.num_hidden_layers:
            raise ValueError(f"layer {layer} is outside the model's {config.num_hidden_layers + 1} hidden states")
        self.layer, self.pooling = layer, pooling
        self.dim = width * (2 if pooling == "mean_std" else 1)
        self.device = str(pick_device(device))
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from transformers import AutoModel

            with offline_quiet_loading():
                self._model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
            self._model.to(self.device).eval()
        return self._model

    def to(self, device) -> ResearchAudioExtractor:
        self.device = str(pick_device(device))
        if self._model is not None:
            self._model.to(self.device)
        return self

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        if utterance.audio is None:
            return None
        wave = resample_to_target(to_mono_float(utterance.audio), utterance.sample_rate)
        if wave.numel() < MIN_SAMPLES_16K or peak_frame_dbfs(wave) < SILENCE_DBFS:
            return None
        wave = (wave - wave.mean()) / (wave.std() + 1e-7)
        with torch.no_grad():
            output = self.model(wave.unsqueeze(0).to(self.device), output_hidden_states=True)
            frames = output.extract_features if self.layer == "features" else output.hidden_states[self.layer]
            frames = frames[0].float()
            pooled = frames.mean(dim=0)
            if self.pooling == "mean_std":
                pooled = torch.cat([pooled, frames.std(dim=0, unbiased=False)])
        return pooled.cpu().numpy().astype(np.float32)


class ResearchTextExtractor(TextEncoderExtractor):
    def __init__(self, path, layers: Sequence[int] | int = (-4, -3, -2, -1), pooling: str = "mean",
                 max_length: int = 512, batch_size: int = 16, device=None) -> None:
        self.folder = checkpoint_folder(path, "text (DeBERTa or another encoder)")
        if pooling not in TEXT_POOLINGS:
            raise ValueError(f"text pooling must be one of {TEXT_POOLINGS}, got {pooling!r}")
        self.dim, config = _hidden_size(self.folder)
        self.layers = (layers,) if isinstance(layers, int) else tuple(int(i) for i in layers)
        count = config.num_hidden_layers + 1
        if not self.layers or any(not -count <= i < count for i in self.layers):
            raise ValueError(f"layers {self.layers} must index the model's {count} hidden states")
        self.pooling, self.max_length, self.batch_size = pooling, max_length, batch_size
        self.device = str(pick_device(device))
        self._model = self._tokenizer = None

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            with offline_quiet_loading():
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
                self._model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
            self._model.to(self.device).eval()

    def _encode(self, texts: list[str]) -> np.ndarray:
        self._load()
        pooled_batches = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self._tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.no_grad():
                hidden = self._model(**tokens, output_hidden_states=True).hidden_states
                states = torch.stack([hidden[i] for i in self.layers]).mean(dim=0).float()
                if self.pooling == "cls":
                    pooled = states[:, 0]
                else:
                    mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
                    pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)
            pooled_batches.append(pooled.cpu().numpy())
        return np.concatenate(pooled_batches)
