"""The three modalities and the modality conditions built from them: the words every layer shares.

At the bottom of the import graph (it imports nothing of the project): the extractors, the model
and the live app all name modalities and conditions the same way, without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

# Modality order used by every tensor in the project: masks are [..., 3] in this order.
MODALITIES: tuple[str, str, str] = ("audio", "text", "visual")
SHORT_NAMES: dict[str, str] = {"audio": "a", "text": "t", "visual": "v"}


def condition_name(condition: Sequence[str]) -> str:
    """("audio", "text") -> "at" (the paper's {a, t})."""
    return "".join(SHORT_NAMES[m] for m in MODALITIES if m in condition)


def parse_condition(text: str | Sequence[str]) -> tuple[str, ...]:
    """"at", "a,t" or ["audio", "text"] -> ("audio", "text") in MODALITIES order."""
    if isinstance(text, str):
        parts = [p for p in text.replace(",", " ").split()]
        if len(parts) == 1 and parts[0] not in MODALITIES:
            parts = list(parts[0])
    else:
        parts = list(text)
    by_short = {short: name for name, short in SHORT_NAMES.items()}
    chosen = set()
    for part in parts:
        name = by_short.get(part, part)
        if name not in MODALITIES:
            raise ValueError(f"unknown modality {part!r} in condition {text!r}; use a, t, v (audio, text, visual)")
        chosen.add(name)
    if not chosen:
        raise ValueError("a condition needs at least one modality")
    return tuple(m for m in MODALITIES if m in chosen)
