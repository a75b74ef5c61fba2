"""Which transcripts are trusted for emotion: the `--min-transcript-confidence` gate.

An ASR transcript whose confidence (extractors/transcript_confidence.py, an estimate of the share
of right words) is below the threshold is shown, marked unsure, but its words are not used for
emotion: English-sounding nonsense from speech in another language pulled most utterances to
"neutral" (issue 19). Words the user gives (pushed text, a transcript file) carry no confidence
and are always used.

The default was chosen on data (benchmarks/results/transcript_confidence.md): the highest 0.05
step that keeps >= 99 % of the English clips transcribed with WER <= 50 % by tiny.en (0.5: 99 % of
those kept, 1 of 125 clips of speech in other languages; benchmarks/results/transcript_confidence.md).
"""

from __future__ import annotations

import math

DEFAULT_MIN_TRANSCRIPT_CONFIDENCE = 0.5


def check_confidence_threshold(value) -> float:
    """A threshold in [0, 1] (0 uses every transcript), else ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"min_transcript_confidence must be a number in [0, 1], got {value!r}") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"min_transcript_confidence must be in [0, 1], got {value!r}")
    return number


def gate_reason(confidence: float | None, threshold: float) -> str | None:
    """Why a transcript's words are set aside, or None when they are used (None = trusted)."""
    if confidence is None or confidence >= threshold:
        return None
    return f"low transcript confidence {confidence:.2f} < {threshold:.2f}"
