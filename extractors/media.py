"""Audio samples in, 16 kHz mono float32 out: decoding files and normalising arrays.

Every audio extractor reads the same thing, whatever the source gave (any rate, any channel
count, int or float samples): a 1-D float32 torch tensor at `SAMPLE_RATE`. Files are decoded
with soundfile (wav, flac, ogg...); anything soundfile cannot read (mp4, mkv, mp3 on old
libsndfile) goes through the `ffmpeg` command line, which also extracts audio from video.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000
# An utterance whose loudest 25 ms frame stays under this level is silence (missing audio).
SILENCE_DBFS = -50.0
# Under 10 ms there is nothing to measure: such audio counts as missing.
MIN_SAMPLES_16K = SAMPLE_RATE // 100
# More channels than this in the second axis almost surely means [channels, samples] was passed.
_MAX_CHANNELS = 16


def to_mono_float(audio: np.ndarray) -> np.ndarray:
    """[n] or [n, channels], int or float -> float32 [n] in [-1, 1]; non-finite -> ValueError."""
    array = np.asarray(audio)
    if array.ndim == 2:
        if array.shape[1] > _MAX_CHANNELS:
            raise ValueError(
                f"audio of shape {array.shape} has {array.shape[1]} channels; expected [samples, channels]"
                " (transpose a [channels, samples] array first)"
            )
    elif array.ndim != 1:
        raise ValueError(f"audio must be [samples] or [samples, channels], got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        # Integer PCM: scale by the type's full range so 0 dBFS stays 1.0.
        info = np.iinfo(array.dtype)
        half = 2.0 ** (info.bits - 1)
        offset = 0.0 if info.min < 0 else half  # unsigned PCM (uint8) is centred on half its range
        array = (array.astype(np.float64) - offset) / half
    elif not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"audio must hold numbers, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError("audio contains NaN or infinite samples; refusing to compute features from it")
    if array.ndim == 2:
        array = array.mean(axis=1)
    # Over-range float samples (a hot mixer, a decoder's overshoot) behave like clipping.
    return np.clip(array, -1.0, 1.0).astype(np.float32, copy=False)


def resample_to_target(samples: np.ndarray, sample_rate: int) -> torch.Tensor:
    """Mono float32 [n] at `sample_rate` -> torch float32 [m] at SAMPLE_RATE."""
    if sample_rate is None or int(sample_rate) <= 0:
        raise ValueError(f"a positive sample_rate is needed with audio, got {sample_rate!r}")
    import torch  # here: the live sources read this module's conversion without loading torch
    import torchaudio.functional as AF

    wave = torch.from_numpy(np.ascontiguousarray(samples))
    if int(sample_rate) != SAMPLE_RATE and wave.numel() > 0:
        wave = AF.resample(wave, int(sample_rate), SAMPLE_RATE)
    return wave


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio (or video) file -> (float32 [n] mono, sample rate). ValueError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    try:
        import soundfile

        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return to_mono_float(samples), int(rate)
    except (RuntimeError, ValueError, OSError) as soundfile_error:  # soundfile.LibsndfileError is a RuntimeError
        if shutil.which("ffmpeg") is None:
            raise ValueError(f"cannot decode {path}: {soundfile_error} (and ffmpeg is not installed)") from None
        return _load_with_ffmpeg(path), SAMPLE_RATE


def _load_with_ffmpeg(path: Path) -> np.ndarray:
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
               "-f", "f32le", "-"]
    result = subprocess.run(command, capture_output=True, timeout=600, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"cannot decode {path}: {message[-1] if message else 'ffmpeg failed'}")
    samples = np.frombuffer(result.stdout, dtype=np.float32)
    if samples.size == 0:
        raise ValueError(f"{path} holds no audio stream")
    return to_mono_float(samples.copy())


def peak_frame_dbfs(wave: torch.Tensor, frame: int = 400, hop: int = 160) -> float:
    """Level of the loudest `frame`-sample frame of a 1-D wave, in dBFS (RMS 1 = 0 dB)."""
    import torch

    if wave.numel() < frame:
        wave = torch.nn.functional.pad(wave, (0, frame - wave.numel()))
    rms = wave.unfold(0, frame, hop).pow(2).mean(dim=1).sqrt().max()
    return float(20 * torch.log10(rms.clamp_min(1e-5)))
