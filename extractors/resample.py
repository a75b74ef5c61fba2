"""Any device rate to 16 kHz, chunk by chunk, without clicks at chunk boundaries.

A microphone may only offer 44.1 or 48 kHz; the segmenter and the extractors read 16 kHz mono.
Downsampling first low-passes (a FIR whose state carries over between chunks, so no aliasing),
then interpolates at the output rate from a fractional position that also carries over.
"""

from __future__ import annotations

import numpy as np

from .media import SAMPLE_RATE, to_mono_float


class StreamResampler:
    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._step = self.in_rate / self.out_rate
        self._taps = None
        if self.in_rate > self.out_rate:
            from scipy import signal  # here, not at import: scipy.signal takes a second to import

            self._taps = signal.firwin(63, 0.45 * self.out_rate, fs=self.in_rate).astype(np.float64)
        self.reset()

    def reset(self) -> None:
        self._zi = np.zeros(len(self._taps) - 1) if self._taps is not None else None
        self._position = 0.0  # where the next output sample falls, in input samples of the next chunk
        self._previous = 0.0  # the last input sample, for interpolating across the boundary

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = to_mono_float(samples)
        if self.in_rate == self.out_rate or len(x) == 0:
            return x.astype(np.float32, copy=False)
        if self._taps is not None:
            from scipy import signal

            x, self._zi = signal.lfilter(self._taps, 1.0, x, zi=self._zi)
        positions = np.arange(self._position, len(x) - 1 + 1e-9, self._step)
        padded = np.concatenate([[self._previous], x])
        out = np.interp(positions + 1.0, np.arange(len(padded)), padded)
        last = positions[-1] if len(positions) else self._position - self._step
        self._position = last + self._step - len(x)
        self._previous = float(x[-1])
        return out.astype(np.float32)
