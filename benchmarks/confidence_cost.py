"""What the transcript confidence costs per utterance (issue 19): tiny.en's decode with and without
the scores and the no-speech probability, interleaved in one process on the same clips, so a
shared machine's load falls on both alike.

    python benchmarks/confidence_cost.py [--clips 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from bench_wer import commonvoice, read_clip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from momke.extractors.whisper import WINDOW_SAMPLES, shared_engine

    engine = shared_engine("tiny.en", "cpu")
    tokenizer = engine._Tokenizer(engine._tokenizer_file, False, task="transcribe", language=None)
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    encoded = []
    for clip in commonvoice()[: args.clips]:
        samples = read_clip(clip["path"])[:WINDOW_SAMPLES]
        mel = engine._mel(np.pad(samples, (0, WINDOW_SAMPLES - len(samples))))[:, :3000]
        encoded.append(engine._model.encode(engine._storage(mel[None]), to_cpu=False))
    times = {"plain": [], "scored": []}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for states in encoded:
            for name, extra in (("plain", {}), ("scored", {"return_scores": True, "return_no_speech_prob": True})):
                began = time.perf_counter()
                engine._model.generate(states, [prompt], beam_size=1, max_length=120, **extra)
                times[name].append((time.perf_counter() - began) * 1000)
    out = {name: round(statistics.median(v), 1) for name, v in times.items()}
    out["difference_ms"] = round(out["scored"] - out["plain"], 1)
    out["decodes_each"] = len(times["plain"])
    out["load_average"] = f"{load:.1f}-{os.getloadavg()[0]:.1f}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
