"""Speech-to-text for one utterance at a time, behind one small interface, plus a guarded worker.

Backends (all offline; nothing is ever downloaded):
- `PocketSphinxASR`: CMU PocketSphinx with the US-English acoustic model, language model and
  dictionary that ship inside the `pocketsphinx` pip package. Weak but always available.
- `WhisperASR(model_path)`: a Whisper model from a local directory the user gives, run with
  faster-whisper when it is installed, else with a transformers pipeline (local files only).
- `make_asr(spec)` builds one from "pocketsphinx" | "none" | "whisper:/local/model/path".

`ASRWorker` runs a backend on its own thread so that an ASR that raises or hangs only makes the
text of that utterance missing (None) and never stalls the caller. Policy for a hung backend:
one worker thread, at most one transcription in flight; while it is still running (even past
its timeout) new requests are answered None at once instead of queueing, so a hung backend
holds exactly one thread and no work piles up. When it returns, the worker serves again.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path

import numpy as np

from .segmentation import check_mono_audio

SAMPLE_RATE = 16000
_SILENT = 1e-3  # peak below -60 dBFS: nothing to recognise
log = logging.getLogger(__name__)


def check_audio(audio) -> np.ndarray:
    """Validate one utterance: mono float samples in [-1, 1] at 16 kHz -> float32 [n]."""
    return check_mono_audio(audio, "ASR input")


class ASRBackend:
    """One speech recogniser: `transcribe(audio float32 mono 16 kHz) -> str` ("" = no words)."""

    name = "asr"

    def transcribe(self, audio: np.ndarray) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release the model (optional)."""


class PocketSphinxASR(ASRBackend):
    """PocketSphinx with the English model shipped in the pip package (paths from the package).

    The decoder is not thread-safe, so calls are serialised by a lock.
    """

    name = "pocketsphinx"

    def __init__(self, **config) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:  # pragma: no cover - hard dependency
            raise ImportError("the pocketsphinx backend needs `pip install pocketsphinx`") from exc
        # Decoder() with no hmm/lm/dict uses the package's own model/en-us files; loglevel FATAL
        # keeps its per-utterance logging off stderr. `config` may override any decoder option.
        options = {"loglevel": "FATAL", "samprate": SAMPLE_RATE, **config}
        self._decoder = pocketsphinx.Decoder(**options)
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray) -> str:
        samples = check_audio(audio)
        if len(samples) == 0 or np.max(np.abs(samples)) < _SILENT:
            return ""  # PocketSphinx invents words ("dog") for digital silence
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


def _pick_device(device: str | None) -> str:
    if device is not None:
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


class WhisperASR(ASRBackend):
    """Whisper from a local model directory: faster-whisper (CTranslate2 format) if installed,
    else a transformers ASR pipeline with `local_files_only` (Hugging Face format).

    Raises FileNotFoundError if the path does not exist and ImportError if neither library is
    installed; it never downloads (HF_HUB_OFFLINE is set for the transformers load).
    """

    name = "whisper"

    def __init__(self, model_path, device: str | None = None, language: str | None = None):
        path = Path(model_path).expanduser()
        if not str(model_path).strip() or not path.exists():
            raise FileNotFoundError(
                f"Whisper model path {str(model_path)!r} does not exist; give a local model "
                "directory (models are never downloaded)"
            )
        self.model_path = path
        self.device = _pick_device(device)
        self.language = language
        self._lock = threading.Lock()
        try:
            import faster_whisper  # noqa: F401

            self._engine = "faster-whisper"
        except ImportError:
            try:
                import transformers  # noqa: F401
            except ImportError:
                raise ImportError(
                    "WhisperASR needs faster-whisper (`pip install faster-whisper`) or "
                    "transformers; neither is installed"
                ) from None
            self._engine = "transformers"
        try:
            if self._engine == "faster-whisper":
                self._model = self._load_faster_whisper()
            else:
                self._model = self._load_transformers()
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"could not load a Whisper model from {str(path)!r} with {self._engine}: {exc}"
            ) from exc

    def _load_faster_whisper(self):
        from faster_whisper import WhisperModel

        if not self.model_path.is_dir():
            raise ValueError("faster-whisper needs a model directory (CTranslate2 format)")
        compute = "float16" if self.device == "cuda" else "int8"
        # A directory path is used as is; local_files_only forbids any hub look-up anyway.
        return WhisperModel(
            str(self.model_path), device=self.device, compute_type=compute, local_files_only=True
        )

    def _load_transformers(self):
        # Read by huggingface_hub when it is first imported; local_files_only below covers a
        # process that imported it earlier.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

        # Everything is loaded here with local_files_only (the folder must hold the model, the
        # hub is never asked) and handed to the pipeline as objects, so it looks nothing up.
        model = AutoModelForSpeechSeq2Seq.from_pretrained(self.model_path, local_files_only=True)
        processor = AutoProcessor.from_pretrained(self.model_path, local_files_only=True)
        return pipeline(
            "automatic-speech-recognition",
            model=model,
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            device=self.device,
        )

    def transcribe(self, audio: np.ndarray) -> str:
        samples = check_audio(audio)
        if len(samples) == 0:
            return ""
        with self._lock:
            if self._engine == "faster-whisper":
                segments, _ = self._model.transcribe(
                    samples, language=self.language, beam_size=1, vad_filter=False
                )
                text = " ".join(s.text.strip() for s in segments)
            else:
                kwargs = {}
                if self.language:
                    kwargs["generate_kwargs"] = {"language": self.language}
                result = self._model({"raw": samples, "sampling_rate": SAMPLE_RATE}, **kwargs)
                text = result["text"]
        return " ".join(text.split())


def make_asr(spec) -> ASRBackend | None:
    """ "pocketsphinx" | "none" | "whisper:/local/model/path" -> a backend (None for "none").

    An `ASRBackend` instance is passed through, so host programs and tests can plug their own.
    """
    if spec is None or isinstance(spec, ASRBackend):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"asr must be a string spec or an ASRBackend, got {type(spec).__name__}")
    text = spec.strip()
    if text.lower() in ("", "none", "off"):
        return None
    if text.lower() == "pocketsphinx":
        return PocketSphinxASR()
    if text.lower().startswith("whisper:"):
        path = text.split(":", 1)[1].strip()
        if not path:
            raise ValueError(
                'asr="whisper:..." needs a local model path, e.g. "whisper:/models/small"'
            )
        return WhisperASR(path)
    raise ValueError(
        f"unknown asr {spec!r}: use 'pocketsphinx', 'none' or 'whisper:/local/model/path'"
    )


class _Job:
    __slots__ = ("audio", "done", "result")

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.done = threading.Event()
        self.result: str | None = None


class ASRWorker:
    """Runs `backend.transcribe` on one worker thread with a timeout (see the module docstring).

    `transcribe(audio) -> str | None` returns within about timeout_s: the text, or None when the
    backend raised, returned something that is not a string, ran past the timeout, or was still
    busy with an earlier utterance. Bad input (not mono float, non-finite) raises ValueError in
    the caller, since that is the caller's bug, not an ASR failure. `stats` counts outcomes.
    """

    def __init__(self, backend: ASRBackend, timeout_s: float = 5.0) -> None:
        if backend is None or not callable(getattr(backend, "transcribe", None)):
            raise ValueError("ASRWorker needs a backend with a transcribe(audio) method")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        self.backend = backend
        self.timeout_s = float(timeout_s)
        self.stats = {"ok": 0, "error": 0, "timeout": 0, "busy": 0}
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._job: _Job | None = None  # the job in flight (set until the backend returns)
        self._queued: _Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="momke-asr", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while a transcription is in flight (possibly hung past its timeout)."""
        with self._lock:
            return self._job is not None

    def transcribe(self, audio) -> str | None:
        samples = check_audio(audio)
        with self._lock:
            if self._closed:
                return None
            if self._job is not None:
                self.stats["busy"] += 1
                return None
            job = self._job = self._queued = _Job(samples)
            self._wake.notify()
        if not job.done.wait(self.timeout_s):
            with self._lock:
                self.stats["timeout"] += 1
            log.warning(
                "ASR %s timed out after %.1f s", getattr(self.backend, "name", "?"), self.timeout_s
            )
            return None
        return job.result

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._queued is None and not self._closed:
                    self._wake.wait()
                if self._closed and self._queued is None:
                    return
                job, self._queued = self._queued, None
            result = None
            try:
                text = self.backend.transcribe(job.audio)
                if not isinstance(text, str):
                    raise TypeError(f"backend returned {type(text).__name__}, not str")
                result = text
            except Exception as exc:  # noqa: BLE001 - any ASR failure only makes this text missing
                with self._lock:
                    self.stats["error"] += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("ASR %s failed: %s", getattr(self.backend, "name", "?"), exc)
            with self._lock:
                if result is not None:
                    self.stats["ok"] += 1
                job.result = result
                job.audio = None  # this thread keeps nothing of the utterance while it waits
                self._job = None
                job.done.set()

    def forget(self, modality: str) -> None:
        """Privacy: drop the samples of the job waiting and of the job in flight (the backend
        finishes the latter; its text is only returned, and the caller checks the switches)."""
        if modality != "audio":
            return
        with self._lock:
            for job in (self._queued, self._job):
                if job is not None:
                    job.audio = None

    def close(self, timeout: float | None = 1.0) -> bool:
        """Stop the worker after its current job; True if the thread ended within `timeout`.

        A backend hung forever keeps its (daemon) thread alive; it never blocks interpreter exit.
        """
        with self._lock:
            self._closed = True
            if self._queued is not None:  # never started: answer its caller now
                self._queued.done.set()
                self._queued = self._job = None
            if self._job is not None:  # in flight: its caller stops waiting (gets None)
                self._job.done.set()
            self._wake.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
