"""How far a Whisper transcript can be trusted: one number in [0, 1] from what the decoder knows.

The inputs are the ones faster-whisper reports per segment (see `whisper.Decoded`): the average
log-probability of the generated tokens, the probability that the window held no speech, and the
gzip compression ratio of the text (a decoder that loops repeats itself). A logistic function of
the three estimates the share of words that are right, 1 - WER (clipped to [0, 1]).

The coefficients were fitted by benchmarks/transcript_confidence.py (soft-target logistic
regression with a small L2 penalty) on what the app hears with tiny.en and language "en",
each clip cut as the app cuts it (extractors/served.py): Common Voice dev 50, RAVDESS actors
01-16, nEMO (Polish) and Korean emotional speech of their training and validation speakers, and
espeak-ng speech in German, Spanish, French and English. Its figures (rank correlation with word
error, per-set means, the gating threshold) are in benchmarks/results/transcript_confidence.md.
"""

from __future__ import annotations

import math

# Fitted by benchmarks/transcript_confidence.py (see the module docstring); order of FEATURES.
FEATURES = ("avg_logprob", "no_speech_prob", "compression_ratio")
COEFFICIENTS = (3.131, -0.242, -0.529)
INTERCEPT = 2.350


def features(decoded) -> tuple[float, float, float] | None:
    """The decoder's numbers for one transcript, or None when it has none (nothing was said)."""
    values = tuple(getattr(decoded, name, None) for name in FEATURES)
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return values  # type: ignore[return-value]


def transcript_confidence(decoded, coefficients=COEFFICIENTS, intercept: float = INTERCEPT) -> float | None:
    """Estimated share of right words (0-1) of a `whisper.Decoded`; None without scores."""
    values = features(decoded)
    if values is None or not getattr(decoded, "text", ""):
        return None
    z = intercept + sum(c * v for c, v in zip(coefficients, values))
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
