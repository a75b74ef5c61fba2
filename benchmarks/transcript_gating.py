"""The transcript-confidence gate on real speech-to-text output, through the app (issue 19).

Each set is replayed by `momke-evaluate-media` (in-process, one session per file, `--asr
whisper-tiny`, the default `--language en`, the shipped checkpoint) under three conditions:
- {a,t} gated: the default `--min-transcript-confidence` (words less sure are set aside);
- {a,t} ungated: `--min-transcript-confidence 0` (every transcript is used: the old behaviour);
- {a}: `--privacy text,visual` (the voice alone).

Sets: the recipe's test speakers (models/commands/recipes/whisper_4class.json speech_corpora):
nEMO (Polish: EB0, TP0) and the Korean sample (ned, nem, emh), speech in a language other than
the one set (target: {a,t} gated not below {a} by more than 2 points), and RAVDESS actors 17-20
(English: the gate must not lose the words' gain). `--limit N` keeps the first N files of a
seeded class-balanced order per set (benchmarks/served_accuracy.py `chosen_items`).

    python benchmarks/transcript_gating.py [--limit 80] [--sets nemo korean ravdess] \
        [--json benchmarks/results/transcript_gating.json] [--md benchmarks/results/transcript_gating.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from report_files import write_report
from served_accuracy import DATA, REPO, chosen_items, share_loads, test_clips, write_csv

SOURCES = {"nemo": "nemo", "korean": "kor_emotiontts", "ravdess": "ravdess"}
CONDITIONS = {"{a,t} gated": [], "{a,t} ungated": ["--min-transcript-confidence", "0"],
              "{a}": ["--privacy", "text,visual"]}


def run(csv: Path, extra: list[str], report_path: Path) -> tuple[dict, float]:
    from momke.realtime.ui.evaluate_media import main as evaluate_media

    argv = [str(csv), "--asr", "whisper-tiny", "--language", "en", "--conversation-column", "none",
            "--transcript-column", "none", "--report", str(report_path), "--overwrite", "--quiet", *extra]
    print(f"== momke-evaluate-media {' '.join(argv)}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        code = evaluate_media(argv)
    if code not in (0, 3):
        raise SystemExit(f"momke-evaluate-media exited {code} on {csv}")
    return json.loads(report_path.read_text()), time.perf_counter() - began


def text_use(report: dict) -> dict:
    """Of the events with a transcript: how many used the words, how many set them aside."""
    events = [e for f in report["files"] for e in f["events"] if e.get("transcript")]
    used = sum("text" in e["modalities"] for e in events)
    aside = sum(bool(e.get("text_set_aside")) for e in events)
    confidences = [e["transcript_confidence"] for e in events if e.get("transcript_confidence") is not None]
    return {"events_with_transcript": len(events), "text_used": used, "text_set_aside": aside,
            "mean_confidence": sum(confidences) / len(confidences) if confidences else None}


def markdown(report: dict) -> str:
    lines = ["# Transcript gating through the app (issue 19)", "",
             (f"`momke-evaluate-media --asr whisper-tiny --language en`, one session per file, shipped checkpoint; "
              f"gate threshold {report['threshold']:g} (the default). Test speakers of the recipe; "
              f"{report['limit_note']}. Machine: {report['machine']}; load average {report['load']} "
              "(the CPU was shared with other jobs: wall times are inflated)."), "",
             "| set | condition | files | WA | UA | events with words | words used | set aside | mean confidence | latency mean ms | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        m, u = row["metrics"], row["text"]
        conf = f"{u['mean_confidence']:.2f}" if u["mean_confidence"] is not None else "-"
        lines.append(f"| {row['set']} | {row['condition']} | {row['n_scored']} | {100 * m['wa']:.1f} | {100 * m['ua']:.1f} | "
                     f"{u['events_with_transcript']} | {u['text_used']} | {u['text_set_aside']} | {conf} | "
                     f"{row['latency_mean_ms']:.0f} | {row['wall_s']:.0f} |")
    lines += ["", "Gated {a,t} minus {a} (WA points; target for speech in another language: >= -2):"]
    for name, delta in report["gated_minus_a"].items():
        lines.append(f"- {name}: {delta:+.1f} (ungated {report['ungated_minus_a'][name]:+.1f})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", choices=tuple(SOURCES), default=list(SOURCES))
    parser.add_argument("--limit", type=int, help="first N files of a seeded class-balanced order per set")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "gating-bench")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args(argv)
    from momke.realtime.transcript_gate import DEFAULT_MIN_TRANSCRIPT_CONFIDENCE

    recipe = json.loads((REPO / "models" / "commands" / "recipes" / "whisper_4class.json").read_text())
    labels = list(recipe["labels"])
    share_loads()
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.sets:
        items = chosen_items(test_clips(SOURCES[name], recipe, DATA), labels, False, args.limit, name)
        csv = write_csv(args.work / f"{name}.csv", [{"file": i.path, "label": i.label} for i in items])
        for condition, extra in CONDITIONS.items():
            report, wall = run(csv, extra, args.work / f"{name}_{condition.replace(' ', '_')}.json")
            rows.append({"set": name, "condition": condition, "n_scored": report["n_scored"], "n_files": report["n_files"],
                         "metrics": report["metrics"], "per_class_recall": report["per_class_recall"],
                         "text": text_use(report), "latency_mean_ms": report["latency_ms"]["mean"] or 0.0,
                         "latency_ms": report["latency_ms"], "wall_s": wall})
    by = {(r["set"], r["condition"]): r["metrics"]["wa"] for r in rows}
    out = {"threshold": DEFAULT_MIN_TRANSCRIPT_CONFIDENCE, "limit": args.limit,
           "limit_note": f"the first {args.limit} files per set of a seeded class-balanced order" if args.limit else "every test file",
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only", "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}",
           "rows": rows,
           "gated_minus_a": {s: 100 * (by[(s, "{a,t} gated")] - by[(s, "{a}")]) for s in args.sets},
           "ungated_minus_a": {s: 100 * (by[(s, "{a,t} ungated")] - by[(s, "{a}")]) for s in args.sets}}
    write_report(out, markdown(out), args.json, args.md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
