"""Time each `lite` extractor on one 4-second utterance on this machine's CPU.

The utterance: 4 s of espeak-ng speech (22.05 kHz, so resampling is included), its transcript,
and video frames of a face (scikit-image's astronaut photo placed in a 640x480 frame) at 30 fps,
of which the visual extractor samples its own 2-4 per second. Target: the three together under
0.3 s per utterance. Model loading is timed separately (once per process, not per utterance).
Wall time and the process's CPU time are both recorded: on a shared machine the wall time
measures the neighbours as much as the extractors.

    python benchmarks/bench_extractors.py [--repeats 20] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCE = "I really did not expect to see you here today, but I am glad that you came."


def make_utterance(seconds: float = 4.0, fps: float = 30.0):
    import cv2
    import soundfile
    from momke.extractors.base import Utterance

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True)
        samples, rate = soundfile.read(path, dtype="float32")
    samples = np.resize(samples, int(seconds * rate))  # exactly 4 s (repeats the start if shorter)
    try:
        from skimage.data import astronaut

        face = astronaut()
    except ImportError:
        face = np.full((512, 512, 3), 128, np.uint8)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(face, (480, 480))
    times = list(np.arange(0.0, seconds, 1.0 / fps))
    return Utterance(start=0.0, end=seconds, audio=samples, sample_rate=rate, frames=[frame] * len(times),
                     frame_times=times, transcript=SENTENCE, id="bench")


def time_extractor(extractor, utterance, repeats: int) -> dict:
    started = time.perf_counter()
    first = extractor.extract(utterance)  # loads the network on first use
    first_call = time.perf_counter() - started
    timings, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        extractor.extract(utterance)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {"dim": extractor.dim, "missing": first is None, "first_call_s": round(first_call, 3),
            "median_s": round(statistics.median(timings), 4), "min_s": round(min(timings), 4),
            "median_cpu_s": round(statistics.median(cpu), 4), "repeats": repeats}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames-per-second", type=float, default=3.0, help="visual sampling rate (2-4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import torch
    from momke.extractors.profiles import load_profile

    if args.threads:
        torch.set_num_threads(args.threads)
    utterance = make_utterance()
    profile = load_profile("lite", device=args.device, visual_options={"frames_per_second": args.frames_per_second})
    results = {}
    for modality in ("audio", "text", "visual"):
        extractor = profile.extractor(modality)
        try:
            results[modality] = time_extractor(extractor, utterance, args.repeats)
        except RuntimeError as error:  # the visual extractor may not be installed
            results[modality] = {"error": str(error)}
    total = sum(r.get("median_s", 0.0) for r in results.values())
    total_min = sum(r.get("min_s", 0.0) for r in results.values())
    total_cpu = sum(r.get("median_cpu_s", 0.0) for r in results.values())
    summary = {
        "utterance": "4.0 s speech at 22.05 kHz, transcript of 17 words, 30 fps 640x480 face video",
        "visual_frames_per_second": args.frames_per_second,
        "device": args.device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg(), "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "extractors": results, "total_median_s": round(total, 4), "total_min_s": round(total_min, 4),
        "total_median_cpu_s": round(total_cpu, 4), "target_s": 0.3,
        "note": "median_s/min_s: wall clock per utterance; median_cpu_s: CPU time of this process (all its "
                "threads), which other processes on a shared machine inflate far less than wall time",
        "meets_target": total < 0.3 and all("median_s" in r for r in results.values()),
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
