"""Real speech for tests: espeak-ng utterances (made at test time) and RAVDESS clips (read from
the shared data folder), as float32 mono 16 kHz arrays."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from momke.extractors.media import SAMPLE_RATE as SR


def data_dir() -> Path:
    env = os.environ.get("MOMKE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@lru_cache(maxsize=64)
def _espeak(text: str, voice: str, speed: int) -> np.ndarray:
    import soundfile as sf
    import torch
    import torchaudio

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng; see .ci/setup)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        audio, rate = sf.read(wav, dtype="float32")
    audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, SR).numpy()
    return audio.astype(np.float32)


def espeak(text: str, voice: str = "en-us", speed: int = 150, trim: bool = True) -> np.ndarray:
    """espeak-ng speech at 16 kHz; `trim` cuts the leading/trailing silence espeak adds."""
    audio = _espeak(text, voice, speed).copy()
    if trim:
        a, b = speech_extent(audio)
        audio = audio[a:b]
    return audio


RAVDESS_SENTENCES = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
# Different actors, emotions and both sentences: a small, varied conversation.
_VARIED = ["03-01-03-02-01-01-01", "03-01-04-01-02-01-02", "03-01-05-02-01-02-03",
           "03-01-01-01-02-02-04", "03-01-08-02-01-01-05", "03-01-06-01-02-01-06"]


def ravdess_clips(count: int, actor: str | None = None) -> list[Path]:
    """`count` real RAVDESS speech files (16 kHz FLAC in the shared data folder), or skip the test.

    actor None: a varied set (different actors and emotions, both sentences); "Actor_01": that
    actor's first files by name (statements 01, 01, 02, 02 ...). Read them with `read_clips`."""
    folder = data_dir() / "ravdess_speech_16k"
    if actor is None:
        clips = [folder / f"Actor_{n[-2:]}" / f"{n}.flac" for n in _VARIED[:count]]
    else:
        clips = sorted((folder / actor).glob("*.flac"))[:count]
    missing = [c for c in clips if not c.is_file()]
    if len(clips) < count or missing:
        pytest.skip(f"RAVDESS clips not found in {folder} (set MOMKE_DATA_DIR)")
    return clips


def read_clips(paths: list[Path]) -> list[np.ndarray]:
    """Each file's samples, float32 mono (the RAVDESS copies are 16 kHz already)."""
    import soundfile as sf

    return [sf.read(str(path), dtype="float32")[0] for path in paths]


def speech_extent(audio: np.ndarray, rel: float = 0.03, frame: int = 320) -> tuple[int, int]:
    """Sample range of speech: first/last 20 ms frame whose RMS exceeds rel * the loudest."""
    n = len(audio) // frame
    rms = np.sqrt((audio[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    on = np.nonzero(rms > rel * rms.max())[0]
    return int(on[0] * frame), int((on[-1] + 1) * frame)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), dtype=np.float32)


def with_pauses(utterances: list[np.ndarray], pause_s: float = 1.0):
    """Join utterances with pause_s of silence (also before and after): (audio, true spans s)."""
    parts, spans, t = [silence(pause_s)], [], pause_s
    for utt in utterances:
        a, b = speech_extent(utt)
        spans.append((t + a / SR, t + b / SR))
        parts += [utt, silence(pause_s)]
        t += len(utt) / SR + pause_s
    return np.concatenate(parts), spans
