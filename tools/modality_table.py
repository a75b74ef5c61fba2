"""What the bundled demo shows under every combination of modalities (the table in SOURCE.md).

    python tools/modality_table.py [--checkpoint DIR]

Replays the demo as fast as possible, once per combination of switched-on modalities (the
transcript gives the words, as `momke-live --demo` does), and prints one markdown row per line:
the fused label and its probability under each combination.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from momke.models.config import MODALITIES, SHORT_NAMES
from momke.realtime import EmotionEvent, LiveSession

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def run(enabled: tuple[str, ...], checkpoint) -> dict[int, EmotionEvent]:
    disabled = [m for m in MODALITIES if m not in enabled]
    events = {}
    with LiveSession.demo(realtime=False, asr="none", disabled=disabled, checkpoint=checkpoint) as session:
        for event in session.events():
            if isinstance(event, EmotionEvent):
                events[event.utterance_id] = event
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args(argv)
    lines = json.loads((DEMO / "transcript.json").read_text())
    combinations = [c for k in (1, 2, 3) for c in itertools.combinations(MODALITIES, k)]
    results = {c: run(c, args.checkpoint) for c in combinations}
    names = ["{" + ",".join(SHORT_NAMES[m] for m in c) + "}" for c in combinations]
    print("| # | words | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for index, line in enumerate(lines):
        cells = []
        for combination in combinations:
            # Utterances are matched by time: ids differ between runs when a line is dropped.
            event = next((e for e in results[combination].values() if abs(e.start - line["start"]) < 1.0), None)
            cells.append("-" if event is None else f"{event.label} {event.probabilities[event.label]:.2f}"
                         + ("" if set(event.modalities) == set(combination) else f" ({'+'.join(SHORT_NAMES[m] for m in event.modalities)})"))
        print(f"| {index + 1} | {line['text'][:40]}... | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
