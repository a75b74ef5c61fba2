"""Whisper as the app's ear: one packaged model gives the transcript and the audio features.

`WhisperEngine` loads a CTranslate2 Whisper model (packaged weights, see whisper_weights.py, or
a local folder) and offers two things per utterance:

- `transcribe(samples)`: the words, with Whisper's punctuation and casing, in a fixed language
  (default English; auto-detection only when asked: a multilingual model guessing per utterance
  turned "He was not there." into Arabic script). The decoder needs the encoder's output on a
  30 s window: shorter windows make it loop (measured: 10 s windows, 36 % WER; 15 s, 14 %;
  30 s, 12 % on Common Voice clips), so the audio is padded to 30 s as Whisper was trained.
- `encode(samples)`: the encoder's hidden states over the utterance's own frames [T/20 ms, d],
  without the 30 s padding (12x cheaper: 55 ms instead of 670 ms for a 3 s clip with base on two
  cores, and as good for emotion; see benchmarks/README.md).

`WhisperAudioExtractor` is the `whisper` profile's audio extractor: the mean of `encode`'s
states (512-d for base). It is None only for an empty or digitally silent utterance: quiet
speech that the lite extractor calls silence is still scored.

One engine per (model, device) is shared in a process (`shared_engine`), so the live ASR and the
audio extractor hold one copy of the weights; calls are serialised by the engine's lock.
"""

from __future__ import annotations

import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import ModalityExtractor, Utterance
from .media import SAMPLE_RATE, resample_to_target, to_mono_float
from .runtime import pick_device
from .whisper_weights import ALIASES, PACKAGED, WhisperWeightsError, check_installed, model_dir

ENCODER_WIDTH = {"tiny.en": 384, "base": 512}
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window: 30 s, 3000 mel frames, 1500 encoder states
_SILENT_PEAK = 1e-4  # -80 dBFS: digital silence, nothing to hear


class WhisperEngine:
    """A CTranslate2 Whisper model: packaged ("tiny.en", "base") or from a local folder."""

    def __init__(self, model: str | os.PathLike = "base", device: str | None = None,
                 compute_type: str | None = None, threads: int | None = None) -> None:
        try:
            import ctranslate2
            import tokenizers
            from faster_whisper.feature_extractor import FeatureExtractor
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as error:
            raise ImportError("Whisper needs faster-whisper and ctranslate2: `pip install faster-whisper`") from error
        self._ctranslate2 = ctranslate2
        if isinstance(model, str) and model.strip().lower() in ALIASES:
            self.name = PACKAGED[ALIASES[model.strip().lower()]].name
            folder = model_dir(self.name)
        else:
            folder = Path(model).expanduser()
            self.name = str(folder)
            if not (folder / "model.bin").is_file():
                raise WhisperWeightsError(f"{folder} is not a CTranslate2 Whisper folder (no model.bin); models are never downloaded")
        self.folder = folder
        chosen = pick_device(device)
        self.device = str(chosen)
        compute_type = compute_type or ("float16" if chosen.type == "cuda" else "int8")
        threads = threads or min(4, os.cpu_count() or 1)
        self._model = ctranslate2.models.Whisper(  # CTranslate2 names a device by its type and index
            str(folder), device=chosen.type, device_index=chosen.index or 0, compute_type=compute_type, intra_threads=threads
        )
        self.multilingual = bool(self._model.is_multilingual)
        self._features = FeatureExtractor(feature_size=self._model.n_mels)
        self._tokenizer_file = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._Tokenizer = Tokenizer
        self.lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Width of the encoder's hidden states (tiny 384, base 512)."""
        return int(self._model.encode(self._storage(np.zeros((1, self._model.n_mels, 2), np.float32)), to_cpu=True).shape[-1])

    def _storage(self, mel: np.ndarray):
        return self._ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))

    def _mel(self, samples: np.ndarray) -> np.ndarray:
        return self._features(samples, padding=0)  # [n_mels, frames of 10 ms]

    def encode(self, samples: np.ndarray) -> np.ndarray:
        """Encoder states over the utterance's own frames: [frames / 2, d] (float32)."""
        samples = _checked(samples)
        states = []
        with self.lock:
            for piece in _windows(samples):
                mel = self._mel(piece)
                if mel.shape[1] < 2:
                    continue
                mel = mel[:, : mel.shape[1] - mel.shape[1] % 2]  # the encoder halves the frame rate
                out = self._model.encode(self._storage(mel[None]), to_cpu=True)
                states.append(np.asarray(out)[0])
        if not states:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(states).astype(np.float32)

    def transcribe(self, samples: np.ndarray, language: str | None = "en", beam_size: int = 1) -> str:
        """The words said, with punctuation and casing ("" when nothing was heard).

        language: an ISO code ("en", "de", ...) for multilingual models; None auto-detects from
        each 30 s window (English-only models ignore it)."""
        return self.decode(samples, language, beam_size).text

    def decode(self, samples: np.ndarray, language: str | None = "en", beam_size: int = 1) -> Decoded:
        """`transcribe` with what the decoder knows of its own words (see `Decoded`)."""
        samples = _checked(samples)
        if len(samples) == 0 or np.max(np.abs(samples)) < _SILENT_PEAK:
            return Decoded("")
        texts, logprob, tokens, no_speech, spoken = [], 0.0, 0, [], None
        with self.lock:
            for piece in _windows(samples):
                mel = self._mel(np.pad(piece, (0, WINDOW_SAMPLES - len(piece))))[:, :3000]
                encoded = self._model.encode(self._storage(mel[None]), to_cpu=False)
                lang = language if self.multilingual else None
                if self.multilingual and lang is None:
                    lang = self._model.detect_language(encoded)[0][0][0].strip("<|>")
                spoken = lang or "en"
                tokenizer = self._Tokenizer(self._tokenizer_file, self.multilingual, task="transcribe", language=lang)
                prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
                # A bound on tokens per second of audio stops a decoder that loops (it happens
                # on noise or in a wrong language) from running to Whisper's 448-token limit.
                max_tokens = min(224, 16 + int(12 * len(piece) / SAMPLE_RATE))
                result = self._model.generate(encoded, [prompt], beam_size=beam_size, max_length=max_tokens,
                                              return_scores=True, return_no_speech_prob=True)[0]
                ids = result.sequences_ids[0]
                texts.append(tokenizer.decode(ids).strip())
                # The score is the sum of the tokens' log-probabilities over the length (length
                # penalty 1); faster-whisper's average counts the end-of-text token too.
                logprob += float(result.scores[0]) * len(ids)
                tokens += len(ids) + 1
                no_speech.append(float(result.no_speech_prob))
        text = " ".join(" ".join(texts).split())
        return Decoded(text, avg_logprob=logprob / max(tokens, 1), no_speech_prob=max(no_speech, default=0.0),
                       compression_ratio=compression_ratio(text), language=spoken)

    def detect_language(self, samples: np.ndarray) -> tuple[str, float]:
        """(ISO code, probability) of the language spoken in the first 30 s (multilingual models only)."""
        if not self.multilingual:
            raise ValueError(f"Whisper {self.name} is English-only: it cannot detect a language")
        samples = _checked(samples)[:WINDOW_SAMPLES]
        with self.lock:
            mel = self._mel(np.pad(samples, (0, WINDOW_SAMPLES - len(samples))))[:, :3000]
            encoded = self._model.encode(self._storage(mel[None]), to_cpu=False)
            token, probability = self._model.detect_language(encoded)[0][0]
        return token.strip("<|>"), float(probability)


@dataclass(frozen=True)
class Decoded:
    """One utterance's transcript and the decoder's own view of it (what faster-whisper reports
    per segment): the average log-probability of its tokens, the probability that the window
    held no speech, the gzip compression ratio of the text (a looping decoder repeats itself),
    and the language it was decoded in. An empty transcript has no scores."""

    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    language: str | None = None


def compression_ratio(text: str) -> float:
    """Bytes of the text over bytes of its zlib compression (Whisper's loop detector)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _checked(samples) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"Whisper takes mono 16 kHz samples [n], got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("audio contains NaN or inf")
    return samples


def _windows(samples: np.ndarray) -> list[np.ndarray]:
    """30 s pieces (an utterance longer than Whisper's window is heard piece by piece)."""
    return [samples[i : i + WINDOW_SAMPLES] for i in range(0, max(len(samples), 1), WINDOW_SAMPLES)]


_ENGINES: dict[tuple[str, str], WhisperEngine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(model: str | os.PathLike = "base", device: str | None = None) -> WhisperEngine:
    """The process's one engine for (model, device): ASR and audio features share its weights."""
    key = (str(ALIASES.get(str(model).strip().lower(), model)), str(pick_device(device)))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = WhisperEngine(model, device=key[1])
        return _ENGINES[key]


class WhisperAudioExtractor(ModalityExtractor):
    """Mean of Whisper base's encoder states over the utterance (the `whisper` profile's audio)."""

    modality = "audio"

    def __init__(self, model: str = "base", device: str | None = None, dim: int | None = None) -> None:
        packaged = ALIASES.get(str(model).strip().lower())
        if dim is None and packaged is None:
            raise ValueError(f"give dim= (the encoder width) for the Whisper folder {model!r}")
        self.model, self.device = model, device
        self.dim = int(dim or ENCODER_WIDTH[packaged])
        self._engine: WhisperEngine | None = None

    @property
    def engine(self) -> WhisperEngine:
        if self._engine is None:  # loaded on first use, like every extractor
            self._engine = shared_engine(self.model, self.device)
        return self._engine

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        if utterance.audio is None:
            return None
        samples = resample_to_target(to_mono_float(utterance.audio), utterance.sample_rate).numpy()
        if len(samples) < SAMPLE_RATE // 50 or np.max(np.abs(samples)) < _SILENT_PEAK:
            return None  # under 20 ms or digital silence
        states = self.engine.encode(samples)
        if len(states) == 0:
            return None
        vector = states.mean(axis=0)
        if vector.shape != (self.dim,):
            raise ValueError(f"Whisper {self.model} gives {vector.shape[0]}-d states, this extractor promises {self.dim}")
        return vector.astype(np.float32)

    def check(self, verify: bool = True) -> None:
        """The packaged weights are installed (verify: and intact); a local folder has a model."""
        if self._engine is not None:
            return
        if str(self.model).strip().lower() in ALIASES:
            check_installed(self.model, verify)
        elif not (Path(self.model).expanduser() / "model.bin").is_file():
            raise WhisperWeightsError(f"{self.model} is not a CTranslate2 Whisper folder (no model.bin); models are never downloaded")

    def to(self, device) -> WhisperAudioExtractor:
        if str(device) != str(self.device):
            self.device, self._engine = str(device), None
        return self


class WhisperProsodyExtractor(ModalityExtractor):
    """The `whisper-prosody` profile's audio: Whisper's pooled states beside the lite acoustic and
    prosodic functionals (audio_lite.py: pitch, energy, spectral shape, pauses) of the same
    utterance. None when Whisper hears nothing; functionals the lite extractor cannot measure
    (an utterance it calls silent) are zeros."""

    modality = "audio"

    def __init__(self, whisper: WhisperAudioExtractor, prosody: ModalityExtractor) -> None:
        self.whisper, self.prosody = whisper, prosody
        self.dim = whisper.dim + prosody.dim

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        states = self.whisper.extract(utterance)
        if states is None:
            return None
        functionals = self.prosody.extract(utterance)
        if functionals is None:
            functionals = np.zeros(self.prosody.dim, np.float32)
        return np.concatenate([states, functionals]).astype(np.float32)

    def check(self, verify: bool = True) -> None:
        self.whisper.check(verify)
        self.prosody.check(verify)

    def to(self, device) -> WhisperProsodyExtractor:
        self.whisper.to(device)
        return self
