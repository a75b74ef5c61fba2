"""Live pipeline benchmark: latency from utterance end to event, real-time factor, CPU load.

    python benchmarks/bench_live.py [--input FILE --transcript JSON] [--checkpoint DIR] [--asr SPEC]
                                    [--out benchmarks/results/bench_live.json]

Input: the bundled demo conversation (assets/demo: 37 s, 7 utterances, speech + a face video +
transcript), replayed through LiveSession exactly as a live session runs, with the default
checkpoint (or --checkpoint) and its own feature profile. Three runs:

1. real time, transcript replayed (no ASR): latency per utterance;
2. real time, the ASR named by --asr (no transcript): latency per utterance;
3. as fast as possible, all three modalities: real-time factor = processing time / media time.

Latency "total" runs from the moment the VAD closed the utterance to the event; "endpoint" is
how long after the speech ended the VAD closed it (its hangover, min_silence_s = 0.4 s, minus the
0.1 s end padding); their sum is the delay from the last word to the event.
CPU load: process CPU seconds (user + system) per wall second, over each run (2.0 = both cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def load_model(directory: Path):
    from momke.models.checkpoint import load_checkpoint

    name = str(directory.relative_to(ROOT)) if directory.is_relative_to(ROOT) else str(directory)
    return load_checkpoint(directory, device="cpu"), name


def run(profile, model, media: Path, transcript, realtime: bool, asr: str) -> dict:
    from momke.realtime import DroppedUtteranceEvent, EmotionEvent, LiveOptions, LiveSession

    session = LiveSession(options=LiveOptions(input_file=media, transcript=transcript, realtime=realtime, asr=asr,
                                              checkpoint=model, profile=profile, device="cpu"))
    first_event = None
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    events = []
    with session:
        for event in session.events():
            if first_event is None and isinstance(event, (EmotionEvent, DroppedUtteranceEvent)):
                first_event = time.perf_counter()
            events.append(event)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    dropped = [e for e in events if isinstance(e, DroppedUtteranceEvent)]
    total = [e.latency_ms["total"] for e in emotions]
    result = {
        "realtime": realtime, "asr": asr, "transcript": transcript is not None,
        "utterances": len(emotions) + len(dropped), "emotion_events": len(emotions), "dropped": len(dropped),
        "modalities": sorted({"+".join(e.modalities) for e in emotions}),
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_load_cores": round(cpu / wall, 2),
        "latency_total_ms": {"median": round(statistics.median(total), 1), "p95": round(percentile(total, 95), 1),
                             "max": round(max(total), 1)} if total else None,
    }
    stages = sorted({k for e in emotions for k in e.latency_ms})
    result["stage_median_ms"] = {
        k: round(statistics.median([e.latency_ms[k] for e in emotions if k in e.latency_ms]), 1) for k in stages
    }
    if realtime and emotions and all("endpoint" in e.latency_ms for e in emotions):
        speech_end = [e.latency_ms["endpoint"] + e.latency_ms["total"] for e in emotions]
        result["latency_from_speech_end_ms"] = {"median": round(statistics.median(speech_end), 1),
                                                "p95": round(percentile(speech_end, 95), 1)}
    result["transcripts"] = [e.transcript for e in emotions]
    return result


def media_duration(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration / 1_000_000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT / "assets" / "demo" / "conversation.mp4")
    parser.add_argument("--transcript", type=Path, default=ROOT / "assets" / "demo" / "transcript.json")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_live.json")
    parser.add_argument("--skip-asr", action="store_true")
    parser.add_argument("--checkpoint", type=Path, help="the checkpoint timed (default: the shipped one); its profile is used")
    parser.add_argument("--asr", default="whisper-base", help="the ASR timed as the default (the live app's: whisper-base)")
    args = parser.parse_args(argv)

    import torch
    from momke.extractors.profiles import load_profile

    t0 = time.perf_counter()
    from momke.models.checkpoint import DEFAULT_CHECKPOINT

    model, model_name = load_model((args.checkpoint or DEFAULT_CHECKPOINT).resolve())
    profile = load_profile(model.config.feature_profile, device="cpu")
    duration = media_duration(args.input)
    report = {
        "input": str(args.input.relative_to(ROOT) if args.input.is_relative_to(ROOT) else args.input),
        "media_s": round(duration, 2), "model": model_name, "profile": profile.name,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in os.getloadavg()]},
    }
    # Warm-up pass (loads every network, fills OS caches): not measured.
    run(profile, model, args.input, args.transcript, realtime=False, asr="none")
    report["setup_s"] = round(time.perf_counter() - t0, 1)

    fast = run(profile, model, args.input, args.transcript, realtime=False, asr="none")
    fast["real_time_factor"] = round(fast["wall_s"] / duration, 3)
    report["fast_all_modalities"] = fast
    report["realtime_no_asr"] = run(profile, model, args.input, args.transcript, realtime=True, asr="none")
    if not args.skip_asr:
        report["default_asr"] = args.asr
        report["realtime_default_asr"] = run(profile, model, args.input, None, realtime=True, asr=args.asr)
        fast_asr = run(profile, model, args.input, None, realtime=False, asr=args.asr)
        fast_asr["real_time_factor"] = round(fast_asr["wall_s"] / duration, 3)
        report["fast_default_asr"] = fast_asr
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
