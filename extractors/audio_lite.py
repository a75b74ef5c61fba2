"""The `lite` audio extractor: acoustic and prosodic functionals, computed with torch/torchaudio.

The audio is first made 16 kHz mono (any rate or channel count in; see media.py). Frame-level
descriptors are computed every 10 ms, then summarised over the utterance by statistics that do
not grow with its length (means, spreads, percentiles, ratios and per-second rates), so a 0.2 s
and a 2 min utterance give comparable vectors.

Frames (all centred on the same 10 ms grid):
- spectral frame: 25 ms Hann window, 512-point FFT, power normalised by the window's energy;
- pitch frame: 25 ms YIN window plus the longest lag (60 Hz), YIN's cumulative-mean-normalised
  difference with threshold `YIN_THRESHOLD`; F0 search range 60-500 Hz.

Which frames count (after removing the utterance's mean, i.e. any DC offset):
- a frame's level is its RMS in dBFS (0 dB = a full-scale square wave);
- the utterance is SILENT -> the extractor returns None (missing) when no frame reaches
  `SILENCE_DBFS` (-50 dBFS), or when it is shorter than `MIN_SAMPLES` (10 ms at 16 kHz);
- ACTIVE frames are those above both `SILENCE_DBFS` and (loudest frame - `DYNAMIC_RANGE_DB`);
  every spectral, cepstral and energy statistic is taken over active frames only, so pauses do
  not dilute them; pauses are measured separately;
- VOICED frames are active frames where YIN finds a period.

Dimensions (`DIM` = 166; `feature_names()` lists them in order):

| index   | count | name pattern             | meaning                                                          |
|---------|-------|--------------------------|------------------------------------------------------------------|
| 0-39    | 40    | logmel_mean_00..39       | mean of log10 mel power, 40 HTK mel bands 20-8000 Hz             |
| 40-79   | 40    | logmel_std_00..39        | standard deviation of the same                                   |
| 80-92   | 13    | mfcc_mean_01..13         | mean of MFCC 1-13 (DCT-II ortho of log10 mel; c0 left out)       |
| 93-105  | 13    | mfcc_std_01..13          | standard deviation of MFCC 1-13                                  |
| 106-118 | 13    | mfcc_delta_std_01..13    | std of their first time derivative (5-frame regression)          |
| 119-131 | 13    | mfcc_delta2_std_01..13   | std of their second time derivative                              |
| 132-141 | 10    | f0_*                     | pitch, in octaves relative to 100 Hz (log2(F0 / 100 Hz)):        |
|         |       |                          | mean, std, p05, p50, p95, range (p95-p05), mean absolute change  |
|         |       |                          | between consecutive voiced frames (per 10 ms), slope (octaves    |
|         |       |                          | per second, least squares over voiced frames), voiced_ratio      |
|         |       |                          | (voiced / active frames), voicing_strength (mean 1 - YIN dip)    |
| 142-150 | 9     | energy_*                 | frame level log10(RMS) (0 = full scale, -1 = -20 dBFS): mean,    |
|         |       |                          | std, p05, p50, p95, range, delta_std and delta_abs_mean (frame-  |
|         |       |                          | to-frame change), slope (per second)                             |
| 151-162 | 12    | {centroid, bandwidth,    | spectral shape, mean and std each: centroid, bandwidth and 85 %  |
|         |       | rolloff, flatness, flux, | rolloff in kHz, flatness (geometric / arithmetic mean power,     |
|         |       | zcr}_{mean,std}          | 0-1), flux (L2 change of the L1-normalised spectrum), zero-      |
|         |       |                          | crossing rate (per sample, 0-1)                                  |
| 163-165 | 3     | pause_ratio,             | between the first and last active frame: fraction of inactive    |
|         |       | pauses_per_second,       | frames, number of pauses >= 100 ms per second, and voiced onsets |
|         |       | voiced_onsets_per_second | per second (a syllable-rate proxy)                               |

When fewer than `MIN_VOICED_FRAMES` frames are voiced (whispering, a cough) the ten f0_* values
are 0 except voiced_ratio, which says why. NaN or infinite samples raise ValueError; samples
beyond [-1, 1] are clipped; clipped speech still gives finite features.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from .base import ModalityExtractor, Utterance
from .media import MIN_SAMPLES_16K, SAMPLE_RATE, SILENCE_DBFS, resample_to_target, to_mono_float

HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
N_FFT = 512
N_MELS = 40
N_MFCC = 13
F0_MIN, F0_MAX = 60.0, 500.0
YIN_THRESHOLD = 0.2
DYNAMIC_RANGE_DB = 40.0
MIN_SAMPLES = MIN_SAMPLES_16K
MIN_VOICED_FRAMES = 3
MIN_PAUSE_FRAMES = 10  # 100 ms
# Frames processed per batch, so a minutes-long input never builds one huge FFT matrix.
FRAME_BATCH = 3000

_LAG_MIN = int(SAMPLE_RATE // F0_MAX)
_LAG_MAX = int(np.ceil(SAMPLE_RATE / F0_MIN))
_PITCH_FRAME = WINDOW + _LAG_MAX + 1
_PITCH_FFT = 1024
_EPS = 1e-10

_F0_NAMES = ["mean", "std", "p05", "p50", "p95", "range", "delta_abs_mean", "slope", "voiced_ratio",
             "voicing_strength"]
_ENERGY_NAMES = ["mean", "std", "p05", "p50", "p95", "range", "delta_std", "delta_abs_mean", "slope"]
_SPECTRAL_NAMES = ["centroid", "bandwidth", "rolloff", "flatness", "flux", "zcr"]
_PAUSE_NAMES = ["pause_ratio", "pauses_per_second", "voiced_onsets_per_second"]


def feature_names() -> list[str]:
    """The name of every dimension, in order (see the module docstring for their meaning)."""
    names = [f"logmel_mean_{i:02d}" for i in range(N_MELS)] + [f"logmel_std_{i:02d}" for i in range(N_MELS)]
    for stat in ("mean", "std", "delta_std", "delta2_std"):
        names += [f"mfcc_{stat}_{i:02d}" for i in range(1, N_MFCC + 1)]
    names += [f"f0_{n}" for n in _F0_NAMES] + [f"energy_{n}" for n in _ENERGY_NAMES]
    names += [f"{n}_{s}" for n in _SPECTRAL_NAMES for s in ("mean", "std")]
    return names + _PAUSE_NAMES


DIM = len(feature_names())


class _Constants:
    """Filterbank, DCT, windows and bin frequencies, built once per process."""

    def __init__(self) -> None:
        n_freqs = N_FFT // 2 + 1
        self.window = torch.hann_window(WINDOW, periodic=True)
        self.window_energy = float((self.window**2).sum())
        self.mel = AF.melscale_fbanks(n_freqs, 20.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm=None, mel_scale="htk")
        self.dct = AF.create_dct(N_MFCC + 1, N_MELS, norm="ortho")[:, 1:]  # drop c0: energy has its own stats
        self.freqs_khz = torch.linspace(0, SAMPLE_RATE / 2000, n_freqs)


_constants: _Constants | None = None


def _get_constants() -> _Constants:
    global _constants
    if _constants is None:
        _constants = _Constants()
    return _constants


def _frame(wave: torch.Tensor, length: int, left: int) -> torch.Tensor:
    """[n] -> [1 + n // HOP, length] frames, frame t starting at t*HOP - left (zero padded)."""
    count = 1 + wave.numel() // HOP
    right = (count - 1) * HOP + length - left - wave.numel()
    return torch.nn.functional.pad(wave, (left, max(0, right)))[: (count - 1) * HOP + length].unfold(0, length, HOP)


def _yin(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pitch frames [N, _PITCH_FRAME] -> (F0 Hz or NaN [N], voicing strength 0-1 [N])."""
    frames = frames - frames.mean(dim=1, keepdim=True)
    head = torch.nn.functional.pad(frames[:, :WINDOW], (0, _PITCH_FRAME - WINDOW))
    cross = torch.fft.irfft(torch.fft.rfft(frames, _PITCH_FFT) * torch.fft.rfft(head, _PITCH_FFT).conj(), _PITCH_FFT)
    cross = cross[:, : _LAG_MAX + 1]
    cumulative = torch.nn.functional.pad(torch.cumsum(frames**2, dim=1), (1, 0))
    lags = torch.arange(_LAG_MAX + 1)
    tail_energy = cumulative[:, lags + WINDOW] - cumulative[:, lags]
    difference = (cumulative[:, WINDOW : WINDOW + 1] + tail_energy - 2 * cross).clamp_min(0)
    running = torch.cumsum(difference[:, 1:], dim=1)
    cmnd = torch.ones_like(difference)
    cmnd[:, 1:] = difference[:, 1:] * lags[1:] / running.clamp_min(_EPS)

    search = cmnd[:, _LAG_MIN : _LAG_MAX]
    below = search < YIN_THRESHOLD
    # A frame with no energy has a zero difference function: it is not voiced, whatever YIN says.
    found = below.any(dim=1) & (cumulative[:, WINDOW] > 1e-8)
    first = torch.where(found, below.float().argmax(dim=1), torch.zeros_like(found, dtype=torch.long))
    # Follow the dip that starts at the first lag under the threshold down to its minimum.
    index = torch.arange(search.shape[1]).unsqueeze(0)
    after = index >= first.unsqueeze(1)
    dip_end = torch.where(after & ~below, index, search.shape[1]).min(dim=1).values
    in_dip = after & (index < dip_end.unsqueeze(1))
    best = torch.where(in_dip, search, torch.full_like(search, float("inf"))).argmin(dim=1)
    lag = best + _LAG_MIN
    # Parabolic interpolation for sub-sample lag precision.
    lo = cmnd.gather(1, (lag - 1).unsqueeze(1)).squeeze(1)
    mid = cmnd.gather(1, lag.unsqueeze(1)).squeeze(1)
    hi = cmnd.gather(1, (lag + 1).clamp_max(_LAG_MAX).unsqueeze(1)).squeeze(1)
    curvature = lo - 2 * mid + hi
    shift = torch.where(curvature.abs() > _EPS, 0.5 * (lo - hi) / curvature, torch.zeros_like(mid)).clamp(-0.5, 0.5)
    f0 = SAMPLE_RATE / (lag.float() + shift)
    strength = (1 - mid).clamp(0, 1)
    return torch.where(found, f0, torch.full_like(f0, float("nan"))), torch.where(found, strength, torch.zeros_like(f0))


def _frame_descriptors(wave: torch.Tensor) -> dict[str, torch.Tensor]:
    """16 kHz mono [n] -> frame-level descriptors on the 10 ms grid, each [T] or [T, k]."""
    c = _get_constants()
    spectral_frames = _frame(wave, WINDOW, WINDOW // 2)
    pitch_frames = _frame(wave, _PITCH_FRAME, WINDOW // 2)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, spectral_frames.shape[0], FRAME_BATCH):
        frames = spectral_frames[start : start + FRAME_BATCH]
        power = torch.fft.rfft(frames * c.window, N_FFT).abs() ** 2 / c.window_energy
        total = power.sum(dim=1).clamp_min(_EPS)
        normalised = power / total.unsqueeze(1)
        centroid = normalised @ c.freqs_khz
        bandwidth = (normalised * (c.freqs_khz.unsqueeze(0) - centroid.unsqueeze(1)) ** 2).sum(dim=1).sqrt()
        rolloff = c.freqs_khz[(torch.cumsum(normalised, dim=1) < 0.85).sum(dim=1).clamp_max(len(c.freqs_khz) - 1)]
        flatness = torch.exp(torch.log(power + _EPS).mean(dim=1)) / (power.mean(dim=1) + _EPS)
        signs = torch.sign(frames)
        zcr = (signs[:, 1:] != signs[:, :-1]).float().mean(dim=1)
        rms = frames.pow(2).mean(dim=1).sqrt()
        log_mel = torch.log10(power @ c.mel + _EPS)
        f0, strength = _yin(pitch_frames[start : start + FRAME_BATCH])
        batch = {"log_mel": log_mel, "mfcc": log_mel @ c.dct, "normalised": normalised, "centroid": centroid,
                 "bandwidth": bandwidth, "rolloff": rolloff, "flatness": flatness, "zcr": zcr,
                 # 0 dBFS = full-scale square wave (RMS 1); the floor keeps digital silence finite.
                 "log_rms": torch.log10(rms.clamp_min(1e-5)), "f0": f0, "strength": strength}
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    descriptors = {key: torch.cat(values) for key, values in parts.items()}
    spectra = descriptors.pop("normalised")
    flux = torch.zeros(spectra.shape[0])
    flux[1:] = (spectra[1:] - spectra[:-1]).norm(dim=1)
    descriptors["flux"] = flux
    return descriptors


def _spread(values: torch.Tensor) -> list[float]:
    if values.numel() == 0:
        return [0.0, 0.0]
    return [float(values.mean()), float(values.std(unbiased=False))]


def _level_stats(values: torch.Tensor) -> list[float]:
    """mean, std, p05, p50, p95, range (p95 - p05)."""
    p05, p50, p95 = torch.quantile(values.double(), torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)).tolist()
    return _spread(values) + [p05, p50, p95, p95 - p05]


def _slope_per_second(values: torch.Tensor, frame_index: torch.Tensor) -> float:
    if values.numel() < 2:
        return 0.0
    seconds = frame_index.double() * HOP / SAMPLE_RATE
    seconds = seconds - seconds.mean()
    denominator = float((seconds**2).sum())
    return float((seconds * (values.double() - values.double().mean())).sum() / denominator) if denominator > 0 else 0.0


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D bool tensor."""
    padded = torch.nn.functional.pad(mask.int(), (1, 1))
    edges = torch.diff(padded)
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    return [(s, e - s) for s, e in zip(starts, ends)]


def functionals(samples: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Audio ([n] or [n, ch], any rate) -> float32 [DIM], or None when silent or under 10 ms."""
    wave = resample_to_target(to_mono_float(samples), sample_rate)
    if wave.numel() < MIN_SAMPLES:
        return None
    wave = wave - wave.mean()  # a DC offset is not sound (a constant signal is silence)
    with torch.no_grad():
        d = _frame_descriptors(wave)
    level_db = 20 * d["log_rms"]
    peak_db = float(level_db.max())
    if peak_db < SILENCE_DBFS:
        return None
    active = level_db > max(SILENCE_DBFS, peak_db - DYNAMIC_RANGE_DB)
    voiced = active & ~torch.isnan(d["f0"])
    frame_index = torch.arange(active.numel())

    def over_active(values: torch.Tensor) -> torch.Tensor:
        return values[active]

    features: list[float] = []
    log_mel = over_active(d["log_mel"])
    features += log_mel.mean(dim=0).tolist() + log_mel.std(dim=0, unbiased=False).tolist()
    mfcc_sequence = d["mfcc"]
    delta = AF.compute_deltas(mfcc_sequence.T.unsqueeze(0), win_length=5).squeeze(0).T
    delta2 = AF.compute_deltas(delta.T.unsqueeze(0), win_length=5).squeeze(0).T
    mfcc = over_active(mfcc_sequence)
    features += mfcc.mean(dim=0).tolist() + mfcc.std(dim=0, unbiased=False).tolist()
    features += over_active(delta).std(dim=0, unbiased=False).tolist()
    features += over_active(delta2).std(dim=0, unbiased=False).tolist()

    voiced_ratio = float(voiced.sum()) / float(active.sum())
    if int(voiced.sum()) >= MIN_VOICED_FRAMES:
        octaves = torch.log2(d["f0"][voiced] / 100.0)
        both_voiced = voiced[1:] & voiced[:-1]
        steps = torch.log2(d["f0"][1:][both_voiced] / d["f0"][:-1][both_voiced]).abs()
        features += _level_stats(octaves)
        features += [float(steps.mean()) if steps.numel() else 0.0, _slope_per_second(octaves, frame_index[voiced])]
        features += [voiced_ratio, float(d["strength"][voiced].mean())]
    else:
        features += [0.0] * 8 + [voiced_ratio, 0.0]

    energy = over_active(d["log_rms"])
    energy_step = torch.diff(d["log_rms"])[active[1:] & active[:-1]]
    features += _level_stats(energy)
    features += _spread(energy_step)[1:] + [float(energy_step.abs().mean()) if energy_step.numel() else 0.0]
    features += [_slope_per_second(energy, frame_index[active])]

    for name in _SPECTRAL_NAMES:
        features += _spread(over_active(d[name]))

    active_runs = _runs(active)
    span_start = active_runs[0][0]
    span_end = active_runs[-1][0] + active_runs[-1][1]
    span = active[span_start:span_end]
    span_seconds = span.numel() * HOP / SAMPLE_RATE
    pauses = [r for r in _runs(~span) if r[1] >= MIN_PAUSE_FRAMES]
    onsets = len(_runs(voiced[span_start:span_end]))
    features += [1.0 - float(span.float().mean()), len(pauses) / span_seconds, onsets / span_seconds]

    vector = np.asarray(features, dtype=np.float32)
    assert vector.shape == (DIM,), vector.shape
    return vector


class LiteAudioExtractor(ModalityExtractor):
    """Acoustic/prosodic functionals (see the module docstring); needs no network or weights."""

    modality = "audio"
    dim = DIM

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        if utterance.audio is None:
            return None
        return functionals(utterance.audio, utterance.sample_rate)

    @staticmethod
    def feature_names() -> list[str]:
        return feature_names()
