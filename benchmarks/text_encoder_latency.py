"""Per-utterance latency of the live text extractor with and without the conversation delta.

    python benchmarks/text_encoder_latency.py [--lines 200] [--threads 1]

Both extractors (LiteTextExtractor as the whisper-prosody and whisper-prosody-conv profiles build
it) embed the same transcripts one at a time, as the live path does, alternating line by line so
that load on a shared CPU hits both alike; prints the median and 90th percentile in ms. The delta
is merged into the weights at load, so the two should be equal.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from momke.extractors.base import Utterance
from momke.extractors.profiles import load_profile
from momke.models.commands.default_recipe import (
    CONVERSATION_RECIPE,
    DATA_DIR,
    load_recipe,
    text_dialogues,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dialogues = [d for d in text_dialogues("meld", DATA_DIR / "meld", load_recipe(CONVERSATION_RECIPE)) if d.split == "valid"]
    lines = [u.transcript for d in dialogues for u in d.utterances if u.transcript.strip()][: args.lines]
    extractors = {name: load_profile(name, device="cpu").extractor("text") for name in ("whisper-prosody", "whisper-prosody-conv")}
    for extractor in extractors.values():
        extractor.extract(Utterance(transcript="Warm up."))  # loads the weights (and merges the delta)
    times = {name: [] for name in extractors}
    for line in lines:
        for name, extractor in extractors.items():
            started = time.perf_counter()
            extractor.extract(Utterance(transcript=line))
            times[name].append(1000 * (time.perf_counter() - started))
    result = {name: {"median_ms": round(float(np.median(t)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2)}
              for name, t in times.items()}
    print(json.dumps({"lines": len(lines), "threads": args.threads, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
