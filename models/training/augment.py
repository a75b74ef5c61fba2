"""Training audio as other rooms and microphones would record it.

Studio corpora (RAVDESS, nEMO, the Korean TTS corpus) are clean, close-miked and level; the app
hears laptops, phones, rooms and fans. `augment` makes one seeded variant of a clip with what
differs between recordings, applied to the media before it is served (extractors/served.py),
so the segmenter and the extractor meet it exactly as they would live:

- speed 0.9-1.1 (half the variants; pitch and tempo move together, as another voice would);
- a room (40 %): an exponentially decaying noise impulse response, RT60 0.15-0.7 s;
- band-limiting (30 %): telephone (300-3400 Hz) or a small microphone (80-200 Hz to 4-7 kHz);
- 0.1-1.5 s of silence before and after (the share of silence must not read as emotion);
- noise (70 %): white or pink, at 5-30 dB SNR against the speech;
- gain: the peak between -30 and -1 dBFS.
"""

from __future__ import annotations

import numpy as np

from ...extractors.media import SAMPLE_RATE


def augment(samples: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One variant of mono float samples (any length > 0), float32 in [-1, 1]."""
    from scipy import signal

    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0 or not np.isfinite(x).all():
        raise ValueError("augment needs finite, non-empty audio")
    if rng.random() < 0.5:
        x = signal.resample_poly(x, 100, int(round(100 * rng.uniform(0.9, 1.1))))
    if rng.random() < 0.4:
        length = int(rng.uniform(0.15, 0.7) * sample_rate)
        response = rng.standard_normal(length) * np.exp(-6.9 * np.arange(length) / length)  # -60 dB at RT60
        response[0] = 1.0 / rng.uniform(0.3, 1.0)  # the direct sound, against the reverberation
        x = signal.fftconvolve(x, response)[: len(x) + length // 4]
        x /= np.abs(x).max() + 1e-9
    if rng.random() < 0.3:
        low, high = (300.0, 3400.0) if rng.random() < 0.5 else (rng.uniform(80, 200), rng.uniform(4000, 7000))
        x = signal.sosfilt(signal.butter(4, [low, high], btype="band", fs=sample_rate, output="sos"), x)
    x = np.concatenate([np.zeros(int(rng.uniform(0.1, 1.5) * sample_rate)), x,
                        np.zeros(int(rng.uniform(0.1, 1.5) * sample_rate))])
    if rng.random() < 0.7:
        loud = np.abs(x) > 0.05 * np.abs(x).max()
        speech_power = np.mean(x[loud] ** 2) if loud.any() else np.mean(x ** 2)
        noise = rng.standard_normal(len(x))
        if rng.random() < 0.5:
            noise = signal.lfilter([1.0], [1.0, -0.95], noise)  # pink-ish: most power low
        snr_db = rng.uniform(5, 30)
        x = x + noise * np.sqrt(speech_power / 10 ** (snr_db / 10) / (np.mean(noise ** 2) + 1e-20))
    x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-30, -1) / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
