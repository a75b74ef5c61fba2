"""Speech-to-text for one utterance at a time, behind one small interface, plus a guarded worker.

Backends (all offline; nothing is ever downloaded):
- `PocketSphinxASR`: CMU PocketSphinx with the US-English acoustic model, language model and
  dictionary that ship inside the `pocketsphinx` pip package. Weak but always available.
- `WhisperASR(model)`: Whisper (the default: base, from packaged, sha256-checked weights; or
  tiny.en, or a local CTranslate2 folder) through extractors/whisper.py. Measured on real read
  speech (benchmarks/README.md), base makes half the errors of tiny.en on varied voices.
- `make_asr(spec)` builds one from "whisper-base" | "whisper-tiny" | "pocketsphinx" | "none" |
  "whisper:/local/folder".

`transcribe_scored(audio) -> Transcript` gives the words with a 0-1 `confidence` (Whisper: the
decoder's own numbers mapped to 1 - word error, extractors/transcript_confidence.py); None means
the backend gives none (PocketSphinx: its posterior is not computed by default and was not
measured against word error) and the words are trusted.

The spoken language: tiny.en hears only English, so any other `language` (or "auto") needs the
multilingual base; asking for tiny with another language switches to base with a one-line
warning. "auto" detects the language once per session, on the first utterance with at least
`AUTO_LANGUAGE_MIN_S` of audio, and keeps it (a multilingual model guessing per utterance turned
"He was not there." into Arabic script); utterances before that get no words.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..extractors.media import SAMPLE_RATE
from ..extractors.segmentation import check_mono_audio

_SILENT = 1e-3  # peak below -60 dBFS: nothing to recognise
log = logging.getLogger(__name__)


def check_audio(audio) -> np.ndarray:
    """Validate one utterance: mono float samples in [-1, 1] at 16 kHz -> float32 [n]."""
    return check_mono_audio(audio, "ASR input")


AUTO_LANGUAGE_MIN_S = 1.5  # "auto": the language is detected on the first utterance this long


@dataclass(frozen=True)
class Transcript:
    """One utterance's words. confidence: 0-1 estimate of the share of right words, None when the
    backend gives none (trusted). language: the language it was decoded in, if known.
    detected: (language, probability) on the one utterance where "auto" detected it.
    note: why there are no words, when the backend chose to give none."""

    text: str
    confidence: float | None = None
    language: str | None = None
    detected: tuple[str, float] | None = None
    note: str | None = None


class ASRBackend:
    """One speech recogniser: `transcribe(audio float32 mono 16 kHz) -> str` ("" = no words)."""

    name = "asr"

    def transcribe(self, audio: np.ndarray) -> str:
        raise NotImplementedError

    def transcribe_scored(self, audio: np.ndarray) -> Transcript:
        """The words with the backend's confidence (None: it gives none)."""
        return Transcript(self.transcribe(audio))

    def reset(self) -> None:
        """A new session begins: forget what was learnt of the last one (e.g. its language)."""

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


class WhisperASR(ASRBackend):
    """Whisper through faster-whisper's CTranslate2 runtime (extractors/whisper.py).

    model: "base" / "tiny.en" (weights shipped in pip packages, sha256-checked) or a local
    CTranslate2 Whisper folder. language: "en" by default, an ISO code, or "auto"/None: detected
    once, on the first utterance of at least `AUTO_LANGUAGE_MIN_S` (see the module docstring),
    until `reset()`. An English-only model accepts only "en". The engine is shared with the
    `whisper` profile's audio extractor, so the process holds one copy of the weights. Nothing is
    ever downloaded.
    """

    name = "whisper"

    def __init__(self, model="base", device: str | None = None, language: str | None = "en") -> None:
        from ..extractors.whisper import shared_engine

        if isinstance(model, (str, os.PathLike)) and not str(model).strip():
            raise ValueError("a Whisper model name or local folder is needed")
        language = _language_code(language)
        self.engine = shared_engine(model, device)
        if not self.engine.multilingual and language != "en":
            raise ValueError(f"Whisper {self.engine.name} is English-only; language {language or 'auto'!r} "
                             "needs a multilingual model (e.g. --asr whisper-base)")
        self.language = language
        self.detected: tuple[str, float] | None = None
        self.detections = 0  # language detections run (auto: one per session)
        self.name = f"whisper-{self.engine.name}" if "/" not in self.engine.name else "whisper"

    def reset(self) -> None:
        self.detected = None

    def transcribe(self, audio: np.ndarray) -> str:
        return self.transcribe_scored(audio).text

    def transcribe_scored(self, audio: np.ndarray) -> Transcript:
        from ..extractors.transcript_confidence import transcript_confidence

        samples = check_audio(audio)
        if len(samples) == 0:
            return Transcript("")
        language, found = self.language, None
        if language is None:
            if self.detected is None:
                if len(samples) < AUTO_LANGUAGE_MIN_S * SAMPLE_RATE:
                    return Transcript("", note=f"language not detected yet (utterance under {AUTO_LANGUAGE_MIN_S:g} s)")
                self.detected = found = self.engine.detect_language(samples)
                self.detections += 1
                log.info("Whisper detected the language %s (p=%.2f)", *found)
            language = self.detected[0]
        decoded = self.engine.decode(samples, language=language)
        return Transcript(decoded.text, transcript_confidence(decoded), decoded.language, found)


# --asr values: the packaged models by name, PocketSphinx, none, or a local Whisper folder.
ASR_CHOICES = ("whisper", "whisper-base", "whisper-tiny", "pocketsphinx", "none", "whisper:/local/folder")
# "whisper": Whisper base on CUDA, tiny.en on a CPU. Measured on the idle 2-core CPU
# (benchmarks/results/bench_live.md): utterance end -> event median 0.74 s with tiny.en, 1.12 s
# with base; word error rate 16 % vs 13 % on varied voices (both within the 20 % target).
DEFAULT_ASR = "whisper"


def make_asr(spec, language: str | None = "en", device: str | None = None) -> ASRBackend | None:
    """ "whisper" | "whisper-base" | "whisper-tiny" | "pocketsphinx" | "none" | "whisper:/local/folder" ->
    a backend (None for "none"). An `ASRBackend` instance is passed through, so host programs
    and tests can plug their own. `language` applies to Whisper ("auto" or None: detected once
    per session); a language other than English takes the multilingual base instead of tiny.en."""
    if spec is None or isinstance(spec, ASRBackend):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"asr must be a string spec or an ASRBackend, got {type(spec).__name__}")
    text = spec.strip()
    lowered = text.lower()
    language = _language_code(language)
    if lowered in ("", "none", "off"):
        return None
    if lowered == "pocketsphinx":
        if language != "en":
            raise ValueError(f"pocketsphinx hears only English; language {language or 'auto'!r} needs --asr whisper-base")
        return PocketSphinxASR()
    if lowered == "whisper":  # the default: base where it is cheap (CUDA) or needed (not English), else tiny.en
        from ..extractors.runtime import pick_device

        lowered = "whisper-base" if pick_device(device).type == "cuda" or language != "en" else "whisper-tiny"
    if lowered in ("whisper-tiny", "whisper-tiny.en") and language != "en":
        log.warning("tiny.en hears only English: using the multilingual Whisper base for language %r", language or "auto")
        lowered = "whisper-base"
    if lowered in ("whisper-base", "whisper-tiny", "whisper-tiny.en"):
        return WhisperASR("base" if lowered == "whisper-base" else "tiny.en", device, language)
    if lowered.startswith("whisper:"):
        path = text.split(":", 1)[1].strip()
        if not path:
            raise ValueError('asr="whisper:..." needs a local model folder, e.g. "whisper:/models/whisper-small-ct2"')
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"Whisper model folder {path!r} does not exist (models are never downloaded)")
        return WhisperASR(Path(path), device, language)
    raise ValueError(f"unknown asr {spec!r}: use one of {', '.join(ASR_CHOICES)}")


class _Forgotten(Exception):
    """A job whose samples were forgotten before it ran."""


def _language_code(language) -> str | None:
    """"en", "DE " -> "en", "de"; "auto", "" or None -> None (detect once per session)."""
    if language is None:
        return None
    code = str(language).strip().lower()
    return None if code in ("", "auto") else code


class _Job:
    __slots__ = ("audio", "done", "result", "text_off")

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.done = threading.Event()
        self.result: Transcript | None = None
        self.text_off = False  # text was switched off while this job waited or ran


class ASRWorker:
    """Runs `backend.transcribe` on one worker thread with a timeout (see the module docstring).

    `transcribe(audio) -> str | None` returns within about `timeout_s + timeout_factor * the
    utterance's duration` (a long utterance takes longer to decode): the text, or None when the
    backend raised, returned something that is not a string, ran past the timeout, or was still
    busy with an earlier utterance. Bad input (not mono float, non-finite) raises ValueError in
    the caller, since that is the caller's bug, not an ASR failure. `stats` counts outcomes.
    """

    def __init__(self, backend: ASRBackend, timeout_s: float = 3.0, timeout_factor: float = 1.0) -> None:
        if backend is None or not callable(getattr(backend, "transcribe", None)):
            raise ValueError("ASRWorker needs a backend with a transcribe(audio) method")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        if not (math.isfinite(timeout_factor) and timeout_factor >= 0):
            raise ValueError(f"timeout_factor must be >= 0 (seconds per second of audio), got {timeout_factor}")
        self.backend = backend
        self.timeout_s = float(timeout_s)
        self.timeout_factor = float(timeout_factor)
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
        transcript = self.transcribe_scored(audio)
        return None if transcript is None else transcript.text

    def transcribe_scored(self, audio) -> Transcript | None:
        """`transcribe` with the backend's confidence (a `Transcript`), or None on failure."""
        samples = check_audio(audio)
        with self._lock:
            if self._closed:
                return None
            if self._job is not None:
                self.stats["busy"] += 1
                return None
            job = self._job = self._queued = _Job(samples)
            self._wake.notify()
        timeout = self.timeout_s + self.timeout_factor * len(samples) / SAMPLE_RATE
        if not job.done.wait(timeout):
            with self._lock:
                self.stats["timeout"] += 1
            log.warning("ASR %s timed out after %.1f s", getattr(self.backend, "name", "?"), timeout)
            return None
        return job.result

    def _run(self) -> None:
        while self._serve_next():
            pass

    def _serve_next(self) -> bool:
        """Wait for one job and run it; False once closed. One call per job, so the thread keeps
        nothing of an utterance (samples, transcript) while it waits for the next (privacy)."""
        with self._lock:
            while self._queued is None and not self._closed:
                self._wake.wait()
            if self._closed and self._queued is None:
                return False
            job, self._queued = self._queued, None
        result = None
        try:
            if job.audio is None:  # forgotten before it started (privacy): nothing to transcribe
                raise _Forgotten
            scored = getattr(self.backend, "transcribe_scored", None)
            result = scored(job.audio) if scored is not None else Transcript(self.backend.transcribe(job.audio))
            if not isinstance(result, Transcript) or not isinstance(result.text, str):
                raise TypeError(f"backend returned {type(getattr(result, 'text', result)).__name__}, not str")
        except _Forgotten:
            pass
        except Exception as exc:
            with self._lock:
                self.stats["error"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("ASR %s failed: %s", getattr(self.backend, "name", "?"), exc)
            result = None
        with self._lock:
            if result is not None:
                self.stats["ok"] += 1
            job.result = None if job.text_off else result  # text switched off meanwhile: not kept
            job.audio = None
            self._job = None
            job.done.set()
        return True

    def forget(self, modality: str) -> None:
        """Privacy: audio or text drops the samples of the job waiting (it will not run) and of
        the job in flight (the backend finishes it); text also makes them return no transcript. Between jobs the
        worker holds nothing of the last utterance (see `_serve_next`)."""
        with self._lock:
            for job in (self._queued, self._job):
                if job is None:
                    continue
                if modality in ("audio", "text"):  # text off: the samples serve no transcript
                    job.audio = None
                if modality == "text":
                    job.text_off = True
                    job.result = None

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
