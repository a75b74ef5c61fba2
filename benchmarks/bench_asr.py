"""Cost of utterance segmentation (silero-vad) and of the default ASR (PocketSphinx) on this CPU.

- VAD: `UtteranceSegmenter` fed 20 ms chunks of real speech with pauses (RAVDESS clips from the
  shared data when present, else espeak-ng sentences): milliseconds of CPU per second of audio,
  per 32 ms window, and the segments found. Also the raw cost of one window on one thread versus
  torch's default thread pool (why the segmenter runs its windows single-threaded).
- ASR: PocketSphinx (default decoder settings: the faster beams tried cost clearly more words)
  on 4-second utterances (espeak-ng speech, and RAVDESS clips padded to 4 s):
  latency median / p95 and real-time factor (latency / 4 s), wall and CPU of the decoding
  thread, direct and through `ASRWorker`. Model load time separately. The machine is shared:
  the load average before and after is recorded with the figures.

    python benchmarks/bench_asr.py [--repeats 10] [--json benchmarks/results/asr.json]
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
import threading
import time
from pathlib import Path

import numpy as np
from momke.extractors.media import SAMPLE_RATE as SR

SENTENCES = (
    "I really did not expect to see you here today, but I am glad that you came.",
    "She went to the market yesterday and bought some fresh bread.",
    "Please call me tomorrow morning before you leave the house.",
)


def espeak(text: str) -> np.ndarray:
    import soundfile
    import torch
    import torchaudio

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        samples, rate = soundfile.read(path, dtype="float32")
    return torchaudio.functional.resample(torch.from_numpy(samples), rate, SR).numpy()


def ravdess(n: int) -> list[np.ndarray]:
    import soundfile

    root = Path(
        os.environ.get("MOMKE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    files = sorted((root / "ravdess_speech_16k").glob("Actor_*/*.flac"))[::37][:n]
    return [soundfile.read(f, dtype="float32")[0] for f in files]


def fit(audio: np.ndarray, seconds: float) -> np.ndarray:
    """Exactly `seconds` long: cut, or padded with silence."""
    n = int(seconds * SR)
    return (
        audio[:n]
        if len(audio) >= n
        else np.concatenate([audio, np.zeros(n - len(audio), np.float32)])
    )


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 4),
        "n": len(ordered),
    }


def bench_vad(clips: list[np.ndarray]) -> dict:
    from momke.extractors.segmentation import UtteranceSegmenter

    pause = np.zeros(SR, np.float32)
    audio = np.concatenate([x for clip in clips for x in (pause, clip)] + [pause])
    seconds = len(audio) / SR
    segmenter = UtteranceSegmenter()
    chunk = 320  # 20 ms, a typical device callback
    t0 = time.process_time()
    w0 = time.perf_counter()
    segments = []
    for i in range(0, len(audio), chunk):
        segments += segmenter.push(audio[i : i + chunk], i / SR)
    segments += segmenter.flush()
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    windows = len(audio) // 512
    return {
        "audio_s": round(seconds, 2),
        "chunk_samples": chunk,
        "utterances_in_audio": len(clips),
        "segments_found": len(segments),
        "cpu_ms_per_audio_s": round(1000 * cpu / seconds, 2),
        "wall_ms_per_audio_s": round(1000 * wall / seconds, 2),
        "wall_ms_per_window": round(1000 * wall / windows, 3),
        "real_time_factor": round(wall / seconds, 4),
    }


def window_cost(threads: int, n: int = 200, main_thread: bool = False) -> float:
    """ms per 32 ms window with `threads` torch threads, on a fresh thread or the main one."""
    import torch
    from momke.extractors.segmentation import UtteranceSegmenter

    seg = UtteranceSegmenter()
    window = (0.1 * np.random.default_rng(0).standard_normal(512)).astype(np.float32)
    result = {}

    def run():
        torch.set_num_threads(threads)
        for _ in range(20):
            seg.speech_prob(window)
        t = time.perf_counter()
        for _ in range(n):
            seg.speech_prob(window)
        result["ms"] = 1000 * (time.perf_counter() - t) / n

    if main_thread:
        before = torch.get_num_threads()
        run()
        torch.set_num_threads(before)
    else:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    return round(result["ms"], 3)


def bench_asr(utterances: dict[str, list[np.ndarray]], repeats: int) -> dict:
    from momke.realtime.asr import ASRWorker, PocketSphinxASR

    t = time.perf_counter()
    asr = PocketSphinxASR()
    out = {"load_s": round(time.perf_counter() - t, 3)}
    for name, clips in utterances.items():
        times, cpu, texts = [], [], []
        for r in range(repeats):
            for clip in clips:
                t, c = time.perf_counter(), time.thread_time()
                text = asr.transcribe(clip)
                times.append(time.perf_counter() - t)
                cpu.append(time.thread_time() - c)
                if r == 0:
                    texts.append(text)
        s = summary(times)
        s["real_time_factor_median"] = round(s["median_s"] / (len(clips[0]) / SR), 4)
        # CPU seconds of the decoding thread: less sensitive than wall time to other processes
        s["cpu_s_median"] = round(statistics.median(cpu), 4)
        s["cpu_real_time_factor_median"] = round(s["cpu_s_median"] / (len(clips[0]) / SR), 4)
        s["utterance_s"] = len(clips[0]) / SR
        s["transcripts"] = texts
        out[name] = s
    with ASRWorker(asr, timeout_s=30.0) as worker:
        clip = next(iter(utterances.values()))[0]
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            worker.transcribe(clip)
            times.append(time.perf_counter() - t)
        out["through_worker"] = summary(times)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    load = os.getloadavg()
    spoken = [espeak(s) for s in SENTENCES]
    real = ravdess(6)
    vad_clips = real if real else spoken
    summary_ = {
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": [round(x, 2) for x in load],
        "vad": {"speech": "ravdess" if real else "espeak-ng", **bench_vad(vad_clips)},
        "vad_window_ms": {
            "one_thread": window_cost(1),
            "default_threads_fresh_thread": window_cost(torch.get_num_threads()),
            "default_threads_main_thread": window_cost(torch.get_num_threads(), main_thread=True),
        },
    }
    utterances = {"espeak_4s": [fit(x, 4.0) for x in spoken]}
    if real:
        utterances["ravdess_4s"] = [fit(x, 4.0) for x in real[:3]]
    summary_["pocketsphinx"] = bench_asr(utterances, args.repeats)
    summary_["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(summary_, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
