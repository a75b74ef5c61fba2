"""Utterance segmentation: a stream of 16 kHz audio chunks in, one `SpeechSegment` per utterance out.

The voice activity detector is silero-vad, whose TorchScript model ships inside the `silero-vad`
pip package (loaded from the package's own file: no download, no network). The segmenter owns
every piece of streaming state itself (the VAD's recurrent state and its 64-sample context, the
samples not yet classified, the audio of the utterance being spoken, the clock anchors), so one
loaded model can serve any number of segmenters and `reset()` really starts from scratch.

How an utterance is found, per 512-sample (32 ms) window with speech probability p:
- loud voice: a window at least -30 dBFS, 30 dB above the stream's noise floor and periodic (a
  pitch between 60 and 500 Hz) counts as speech (p = threshold) whatever the VAD says: silero
  scores shouting low. A loud steady tone counts too; a bang or broadband noise does not;
- start: p >= threshold (the utterance starts at that window);
- end: p < threshold - 0.15 for min_silence_s in a row (hysteresis: probabilities between the two
  thresholds neither start nor end the silence count); the end is the start of that silence;
- too short: speech shorter than min_speech_s (padding excluded) is dropped;
- too long: once an utterance reaches max_utterance_s it is cut at the least speech-like window
  of its last second, and the next utterance starts exactly there (no padding at a cut, so the
  pieces tile the speech without overlap or loss);
- padding: pad_s of audio before the start and after the end is added (clipped to audio that
  exists and never reaching into the previous segment).

Times are on the caller's clock: every sample of a pushed chunk is stamped t_start + i / 16000.
A chunk whose t_start differs from where the previous chunk ended by more than `max_jitter_s`
(either direction) is a discontinuity (lost audio, a paused replay, a device reopened): the
utterance in progress is ended at the last sample before it (and emitted if long enough), the
VAD state is cleared and the stream restarts at the new time. Smaller differences are clock
jitter: each chunk still uses its own t_start, so segment times follow the caller's clock, while
`audio` holds exactly the samples received (its length may differ from end - start by the jitter).
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from .media import SAMPLE_RATE
from .served import ServingOptions

WINDOW = 512  # silero-vad's fixed window at 16 kHz (32 ms)
_NEG_THRESHOLD_GAP = 0.15  # hysteresis below `threshold`, as silero-vad's own iterator uses
_CUT_SEARCH_S = 1.0  # a too-long utterance is cut at the weakest window of its last second
# Loud voiced sound counts as speech whatever the VAD says (see UtteranceSegmenter._loud_voice):
LOUD_DBFS = -30.0  # a window's RMS level at least this ...
LOUD_ABOVE_FLOOR_DB = 30.0  # ... and this far above the stream's noise floor ...
VOICED_PERIODICITY = 0.5  # ... with a pitch period (normalised autocorrelation, 60-500 Hz)
_FLOOR_RISE_DB = 0.05  # dB per window: the floor rises by 1.5 dB/s at most
_LAG_RANGE = (SAMPLE_RATE // 500, SAMPLE_RATE // 60)


@dataclass
class SpeechSegment:
    """One utterance: start/end on the caller's clock (seconds), its mono float32 16 kHz audio.

    `ended_by` says why it ended: "silence", "max_length" (cut, the next one follows at once),
    "discontinuity" (a jump in the caller's timestamps) or "flush" (end of stream).
    """

    start: float
    end: float
    audio: np.ndarray = field(repr=False)
    ended_by: str = "silence"

    @property
    def duration(self) -> float:
        return self.end - self.start


def check_mono_audio(samples, what: str = "audio") -> np.ndarray:
    """Mono float samples in [-1, 1] (shape [n] or [n, 1]) -> float32 [n]; else ValueError."""
    arr = np.asarray(samples)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(
            f"{what}: expected mono samples of shape [n] (or [n, 1]), got shape {arr.shape}; "
            "mix down to mono first"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{what}: expected float samples in [-1, 1], got dtype {arr.dtype}; convert "
            "integer PCM first (e.g. int16 / 32768)"
        )
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite samples; nothing was consumed")
    return arr


def _periodicity(window: np.ndarray) -> float:
    """Peak of the normalised autocorrelation over pitch lags of 60-500 Hz (1 = periodic)."""
    x = window.astype(np.float64) - window.mean()
    spectrum = np.fft.rfft(x, 2 * len(x))
    r = np.fft.irfft(spectrum * np.conj(spectrum))[: len(x)]
    if r[0] <= 0:
        return 0.0
    lo, hi = _LAG_RANGE
    # Unbiased: each lag's sum has fewer terms, so divide by the overlap before comparing to r[0].
    overlap = len(x) - np.arange(lo, hi)
    return float(np.max(r[lo:hi] / overlap) / (r[0] / len(x)))


_model_lock = threading.Lock()
_model = None


def load_vad_model() -> torch.jit.ScriptModule:
    """The 16 kHz silero-vad network, loaded once per process from the pip package's JIT file.

    The package's own loader (`load_silero_vad`) reads `silero_vad/data/silero_vad.jit`, a file
    installed with the package, via `torch.jit.load`: nothing is fetched. Importing the package
    calls `torch.set_num_threads(1)` as a side effect; the caller's thread count is restored.
    """
    global _model
    with _model_lock:
        if _model is None:
            threads = torch.get_num_threads()
            try:
                from silero_vad import load_silero_vad
            except ImportError as exc:  # pragma: no cover - the package is a hard dependency
                raise ImportError(
                    "utterance segmentation needs the silero-vad package (pip install silero-vad)"
                ) from exc
            finally:
                torch.set_num_threads(threads)
            wrapper = load_silero_vad(onnx=False)
            net = getattr(wrapper, "_model", None)
            if net is None or int(getattr(net, "context_size_samples", -1)) != 64:
                raise RuntimeError(
                    "unsupported silero-vad model layout: expected a 16 kHz sub-network "
                    "`_model` with a 64-sample context (silero-vad >= 5)"
                )
            net.eval()
            _model = net
        return _model


class _SampleBuffer:
    """Samples addressed by absolute stream index, appended at the end and dropped from the front."""

    def __init__(self) -> None:
        self._data = np.zeros(WINDOW * 64, dtype=np.float32)
        self.start = 0  # absolute index of the first sample held
        self._len = 0

    @property
    def end(self) -> int:
        return self.start + self._len

    def append(self, samples: np.ndarray) -> None:
        need = self._len + len(samples)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=np.float32)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len : need] = samples
        self._len = need

    def get(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        if b <= a:
            return np.zeros(0, dtype=np.float32)
        return self._data[a - self.start : b - self.start].copy()

    def drop_before(self, index: int) -> None:
        cut = min(max(index, self.start), self.end) - self.start
        if cut <= 0:
            return
        self._data[: self._len - cut] = self._data[cut : self._len]
        self._len -= cut
        self.start += cut

    def clear(self, start: int) -> None:
        self.start, self._len = start, 0


class UtteranceSegmenter:
    """Streaming VAD segmenter (see the module docstring for the rules).

    Its ops are tiny: run it on a thread with one torch thread (the live session's segmentation
    thread sets that once), an OpenMP pool costs more than it saves."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        threshold: float = ServingOptions.threshold,  # the live settings, written once (served.py)
        min_silence_s: float = ServingOptions.min_silence_s,
        min_speech_s: float = ServingOptions.min_speech_s,
        max_utterance_s: float = ServingOptions.max_utterance_s,
        pad_s: float = ServingOptions.pad_s,
        *,
        max_jitter_s: float = 0.2,
    ) -> None:
        if int(sample_rate) != SAMPLE_RATE:
            raise ValueError(
                f"UtteranceSegmenter works on {SAMPLE_RATE} Hz audio (silero-vad's rate), got "
                f"sample_rate={sample_rate}: resample the stream to 16 kHz first"
            )
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        for name, value in (
            ("min_silence_s", min_silence_s),
            ("min_speech_s", min_speech_s),
            ("pad_s", pad_s),
            ("max_jitter_s", max_jitter_s),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(max_utterance_s) and max_utterance_s >= 2 * _CUT_SEARCH_S):
            raise ValueError(
                f"max_utterance_s must be >= {2 * _CUT_SEARCH_S} s, got {max_utterance_s}"
            )
        if min_speech_s >= max_utterance_s:
            raise ValueError("min_speech_s must be smaller than max_utterance_s")
        self.sample_rate = SAMPLE_RATE
        self.threshold = float(threshold)
        self.neg_threshold = max(self.threshold - _NEG_THRESHOLD_GAP, 0.01)
        self.min_silence_s = float(min_silence_s)
        self.min_speech_s = float(min_speech_s)
        self.max_utterance_s = float(max_utterance_s)
        self.pad_s = float(pad_s)
        self.max_jitter_s = float(max_jitter_s)
        self._min_silence = round(min_silence_s * SAMPLE_RATE)
        self._min_speech = round(min_speech_s * SAMPLE_RATE)
        self._max_len = round(max_utterance_s * SAMPLE_RATE)
        self._pad = round(pad_s * SAMPLE_RATE)
        self._net = load_vad_model()
        self.reset()

    # ----------------------------------------------------------------------------- public API
    def reset(self) -> None:
        """Forget everything (VAD state, buffered audio, the utterance in progress, the clock)."""
        self._state = torch.zeros(2, 1, 128)
        self._context = torch.zeros(1, 64)
        self._buffer = _SampleBuffer()
        self._classified = 0  # absolute index up to which windows have been classified
        self._stream_start = 0  # absolute index where the current continuous stream began
        self._anchors: list[tuple[int, float]] = []  # (absolute index, caller time) per chunk
        self._expected_t: float | None = None  # caller time right after the last sample pushed
        self._speech_start: int | None = None  # set while inside an utterance
        self._silence_start: int | None = None  # first window of the current silence run
        self._recent: list[tuple[int, float]] = []  # (window start, p) for the cut search
        self._pending: list[tuple[int, int, str]] = []  # ended utterances waiting for post-pad
        self._last_emitted_end = 0  # no pre-padding reaches back before this index
        self._floor_db: float | None = None  # the stream's noise floor (dBFS); None until heard

    def push(
        self, samples: np.ndarray, t_start: float, sample_rate: int | None = None
    ) -> list[SpeechSegment]:
        """Feed one chunk (any length) stamped t_start; returns the utterances it completed."""
        samples = self._validated(samples, t_start, sample_rate)
        t_start = float(t_start)
        out: list[SpeechSegment] = []
        if self._expected_t is not None and abs(t_start - self._expected_t) > self.max_jitter_s:
            out += self._finish_stream("discontinuity")
        if len(samples) == 0:
            return out
        index = self._buffer.end
        self._anchors.append((index, t_start))
        self._buffer.append(samples)
        self._expected_t = t_start + len(samples) / SAMPLE_RATE
        while self._buffer.end - self._classified >= WINDOW:
            window = self._buffer.get(self._classified, self._classified + WINDOW)
            self._process_window(self._classified, window)
        out += self._emit_ready(final=False)
        self._trim()
        return out

    def flush(self) -> list[SpeechSegment]:
        """End of stream: close the utterance in progress and return what remains; then reset."""
        out = self._finish_stream("flush")
        self.reset()
        return out

    @property
    def in_speech(self) -> bool:
        """True while an utterance has started and not yet ended."""
        return self._speech_start is not None

    @property
    def open_since(self) -> float | None:
        """Caller time where the earliest utterance not yet returned starts (one in progress, or
        ended and waiting for its padding); None when there is none."""
        starts = [start for start, _, _ in self._pending]
        if self._speech_start is not None:
            starts.append(self._speech_start)
        return self._time_of(min(starts)) if starts else None

    # ------------------------------------------------------------------------------ internals
    def _validated(self, samples, t_start, sample_rate) -> np.ndarray:
        if sample_rate is not None and int(sample_rate) != SAMPLE_RATE:
            raise ValueError(
                f"chunk has sample rate {sample_rate} Hz; the segmenter needs {SAMPLE_RATE} Hz "
                "(resample before pushing)"
            )
        try:
            t = float(t_start)
        except (TypeError, ValueError):
            raise ValueError(f"t_start must be a number of seconds, got {t_start!r}") from None
        if not math.isfinite(t):
            raise ValueError(f"t_start must be finite, got {t_start!r}")
        return check_mono_audio(samples, "audio chunk")

    def speech_prob(self, window: np.ndarray) -> float:
        """Silero's speech probability for the next 32 ms window (512 samples at 16 kHz), carrying
        the model's state and context from the windows before it."""
        x = torch.cat([self._context, torch.from_numpy(window).unsqueeze(0)], dim=1)
        with torch.inference_mode():
            prob, self._state = self._net(x, self._state)
        self._context = x[:, -64:]
        return float(prob)

    def _loud_voice(self, window: np.ndarray) -> bool:
        """Loud, voiced sound well above the stream's noise floor: shouting, which silero-vad
        (trained on speech at ordinary levels) often scores below 0.1 (RAVDESS's strong-intensity
        clips of actors 06 and 18: 14 of 1,200 clips found no speech at all)."""
        level = 10 * math.log10(float(np.dot(window, window)) / len(window) + 1e-12)
        # The floor starts at the first window (a stream that begins with a steady hum has its
        # floor there), follows a quieter window at once and a louder one slowly.
        floor = level if self._floor_db is None else self._floor_db
        self._floor_db = min(level, floor + _FLOOR_RISE_DB)
        if level < LOUD_DBFS or level < floor + LOUD_ABOVE_FLOOR_DB:
            return False
        return _periodicity(window) >= VOICED_PERIODICITY

    def _process_window(self, start: int, window: np.ndarray) -> None:
        p = self.speech_prob(window)
        if p < self.threshold and self._loud_voice(window):
            p = self.threshold
        elif p >= self.threshold:
            self._loud_voice(window)  # keeps the noise floor current
        self._classified = start + WINDOW
        end = start + WINDOW
        if self._speech_start is None:
            if p >= self.threshold:
                self._speech_start, self._silence_start, self._recent = start, None, []
            else:
                return
        self._recent.append((start, p))
        cutoff = end - int(_CUT_SEARCH_S * SAMPLE_RATE)
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.pop(0)
        if p >= self.threshold:
            self._silence_start = None
        elif p < self.neg_threshold and self._silence_start is None:
            self._silence_start = start
        if self._silence_start is not None and end - self._silence_start >= self._min_silence:
            self._end_utterance(self._silence_start, "silence")
        elif end - self._speech_start >= self._max_len:
            self._cut_long_utterance(end)

    def _cut_long_utterance(self, end: int) -> None:
        # Cut at the start of the least speech-like window of the last second (a breath, a short
        # pause); the next utterance begins right there, so nothing is lost or duplicated.
        candidates = [(p, s) for s, p in self._recent if s > self._speech_start]
        cut = min(candidates)[1] if candidates else end
        self._end_utterance(cut, "max_length")
        self._speech_start = cut
        self._silence_start = None
        self._recent = [(s, p) for s, p in self._recent if s >= cut]

    def _end_utterance(self, end: int, reason: str) -> None:
        if end - self._speech_start >= self._min_speech:
            self._pending.append((self._speech_start, end, reason))
        self._speech_start = None
        self._silence_start = None
        self._recent = []

    def _emit_ready(self, final: bool) -> list[SpeechSegment]:
        out = []
        while self._pending:
            start, end, reason = self._pending[0]
            pad_after = 0 if reason == "max_length" else self._pad
            if not final and self._buffer.end < end + pad_after:
                break  # wait for the post-padding audio to arrive
            self._pending.pop(0)
            follows_cut = start == self._last_emitted_end and self._last_emitted_end > 0
            pad_before = 0 if follows_cut else self._pad
            a = max(
                start - pad_before, self._last_emitted_end, self._stream_start, self._buffer.start
            )
            b = min(end + pad_after, self._buffer.end)
            if self._speech_start is not None and reason != "max_length":
                b = min(b, self._speech_start)  # post-padding never eats the next utterance
            audio = self._buffer.get(a, b)
            t0 = self._time_of(a)
            t1 = max(t0, self._time_of(b))
            out.append(SpeechSegment(t0, t1, audio, reason))
            self._last_emitted_end = b
        return out

    def _finish_stream(self, reason: str) -> list[SpeechSegment]:
        """Close the continuous stream (flush or discontinuity) and prepare a fresh one."""
        tail = self._buffer.end - self._classified
        if tail > 0:  # classify the last partial window, zero-padded; only real samples count
            window = np.zeros(WINDOW, dtype=np.float32)
            window[:tail] = self._buffer.get(self._classified, self._buffer.end)
            self._process_window(self._classified, window)
            self._classified = self._buffer.end
        if self._speech_start is not None:
            end = self._silence_start if self._silence_start is not None else self._buffer.end
            self._end_utterance(end, reason)
        out = self._emit_ready(final=True)
        # A new continuous stream starts after the last sample: fresh VAD state, no padding
        # reaching back across the break.
        self._state = torch.zeros(2, 1, 128)
        self._context = torch.zeros(1, 64)
        self._classified = self._buffer.end
        self._stream_start = self._buffer.end
        self._last_emitted_end = self._buffer.end
        self._expected_t = None
        self._trim()
        return out

    def _trim(self) -> None:
        # Keep what a future segment can still need: the open utterance (plus pre-padding),
        # ended utterances waiting for post-padding, and pre-padding for an utterance starting now.
        keep = self._classified - self._pad
        if self._speech_start is not None:
            keep = min(keep, self._speech_start - self._pad)
        if self._pending:
            keep = min(keep, self._pending[0][0] - self._pad)
        keep = max(keep, 0)
        self._buffer.drop_before(keep)
        i = bisect.bisect_right(self._anchors, (self._buffer.start, math.inf)) - 1
        if i > 0:
            del self._anchors[:i]

    def _time_of(self, index: int) -> float:
        """Caller-clock time of absolute sample `index` (from the chunk that held it)."""
        # Buffered samples always have an anchor at or before them; max() guards index 0.
        i = max(bisect.bisect_right(self._anchors, (index, math.inf)) - 1, 0)
        a_index, a_time = self._anchors[i]
        return a_time + (index - a_index) / SAMPLE_RATE
