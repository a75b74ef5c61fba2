"""Start benchmark: how soon `momke-live --demo --json` is ready, and how soon its first event comes.

    python benchmarks/bench_start.py [--runs 5] [--out benchmarks/results/bench_start.json]

Each run starts the CLI as a user does (a new process: `python -m momke.realtime.ui.cli --demo
--json`, the bundled conversation replayed in real time, warm disk caches after the first run) and
reads its stdout. Times are seconds from the process's spawn to:

- ready: the `ready` event (capture has begun; extractors may still be loading);
- warm: the last enabled modality leaving the "loading" state (every extractor loaded);
- first event: the first `emotion` event (the demo's first line ends 4.58 s into the replay,
  which plays from the CLI's launch, and is closed about 0.35 s later, so it cannot come before
  about 5 s).

The run is stopped (SIGTERM) after its first event. Targets (issue 20): ready <= 3 s median and
first event <= 6 s, on the project's 2-core CPU. The load average at each run is recorded: the
figures are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_LINE_END_S = 4.58  # the demo's first utterance ends here (assets/demo/transcript.json)


def one_run(timeout_s: float = 180.0) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    load = os.getloadavg()[0]
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "momke.realtime.ui.cli", "--demo", "--json"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    times: dict[str, float | None] = {"ready": None, "warm": None, "first_event": None}
    loading: set[str] = set()
    try:
        for line in process.stdout:
            now = time.perf_counter() - began
            event = json.loads(line)
            if event["type"] == "status":
                if event["state"] == "loading":
                    loading.add(event["modality"])
                elif event["modality"] in loading:
                    loading.discard(event["modality"])
                    if not loading and times["warm"] is None:
                        times["warm"] = now
            elif event["type"] == "ready" and times["ready"] is None:
                times["ready"] = now
                times["warmup_ms"] = event.get("warmup_ms")
            elif event["type"] == "emotion":
                times["first_event"] = now
                times["first_event_end_s"] = event["end"]
                break
            if now > timeout_s:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    times["load_average_1min"] = round(load, 2)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in times.items()}


def summarise(values: list[float | None]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "n": len(values)}


def markdown(result: dict) -> str:
    s = result["summary"]
    rows = "\n".join(f"| {name} | {s[key]['median']} | {s[key]['min']} | {s[key]['max']} | {target} |"
                     for name, key, target in (("ready (capture running)", "ready", "<= 3 s"),
                                               ("first emotion event", "first_event", "<= 6 s"),
                                               ("every extractor warm", "warm", "-")))
    runs = "\n".join(f"| {i + 1} | {r['ready']} | {r['warm']} | {r['first_event']} | {r['load_average_1min']} |"
                     for i, r in enumerate(result["runs"]))
    return f"""# Start: `momke-live --demo --json` (real time)

`python benchmarks/bench_start.py --runs {len(result['runs'])}` on {result['machine']}
({result['cpus']} CPUs), {result['date']}. Seconds from the process's spawn; the demo's first line
ends {FIRST_LINE_END_S} s into the replay, which plays from the CLI's launch (the pipeline catches up on
what played while it loaded), so the first event cannot come before about {FIRST_LINE_END_S} + 0.35 s.
Load average (1 min) of the machine at each run is listed: {result['note']}

| measure | median | min | max | target |
|---|---|---|---|---|
{rows}

| run | ready | warm | first event | load average |
|---|---|---|---|---|
{runs}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_start.json")
    parser.add_argument("--note", default="figures taken on a quiet machine are the ones to compare.")
    args = parser.parse_args(argv)
    one_run()  # warms the disk caches (not counted)
    runs = []
    for i in range(args.runs):
        runs.append(one_run())
        print(f"run {i + 1}: {runs[-1]}", file=sys.stderr, flush=True)
    result = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note,
        "runs": runs, "summary": {key: summarise([r[key] for r in runs]) for key in ("ready", "warm", "first_event")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
