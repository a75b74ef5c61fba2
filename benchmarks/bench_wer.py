"""Word error rate and CPU real-time factor of each live ASR backend on real speech (issue 9).

Backends go through the app's own path, `make_asr(spec, language="en").transcribe(samples)`:
whisper-tiny (tiny.en), whisper-base (multilingual, English forced), pocketsphinx.

Sets (read from ../shared/data, or $MOMKE_DATA_DIR; never copied into the repository):
- commonvoice: commonvoice_en_dev50, 50 read sentences by 50 speakers (several accents).
- ravdess: RAVDESS speech clips of the chosen actors (default 17-20: 240 clips, every emotion
  and both intensities), reference = the clip's sentence from its file name (SS 01 "Kids are
  talking by the door", 02 "Dogs are sitting by the door"); WER also by emotion and intensity.
- testdata: Debian's pocketsphinx-testdata (`apt-get install pocketsphinx-testdata`): the wav
  files that have reference transcripts in the package (librivox/, 5 LibriVox lines; cards/,
  5 card names); the .raw/.mfc files there have no references and are not used.

Text normalisation (both sides): lower case, dashes and slashes become spaces, every other
punctuation character (Unicode category P*) is deleted, nothing is expanded (so "22" against
"twenty two" counts as errors). WER = word-level Levenshtein distance / reference words, summed
over the clips of a set.

Cost: each clip is read before the clock starts; `time.process_time()` around `transcribe` is
the CPU of the whole process (CTranslate2's worker threads included), `time.thread_time()` the
calling thread's, `perf_counter` the wall. CPU real-time factor = CPU seconds / audio seconds,
summed over a set (one untimed warm-up call first). The machine is shared, so wall figures
are inflated by other jobs; the load average before and after is recorded.

Per-clip results are kept in $MOMKE_CACHE/bench/wer_clips.jsonl so an interrupted run resumes.

    MOMKE_CACHE=/tmp/mc python benchmarks/bench_wer.py \
        [--backends whisper-tiny whisper-base pocketsphinx] [--sets commonvoice ravdess testdata] \
        [--actors 17 18 19 20] [--json benchmarks/results/wer.json] [--md benchmarks/results/wer.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np
from report_files import write_report  # benchmarks/ is on the path when run as a script

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOMKE_DATA_DIR", REPO.parent / "shared" / "data"))
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
RAVDESS_SENTENCES = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
            "06": "fearful", "07": "disgust", "08": "surprised"}
INTENSITIES = {"01": "normal", "02": "strong"}
TARGETS = {"commonvoice": 0.20, "ravdess": 0.05}  # issue 9: varied read speech / RAVDESS
_DASHES = re.compile(r"[-\u2010-\u2015/]")


def normalise(text: str) -> list[str]:
    text = _DASHES.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return "".join(c for c in text if not unicodedata.category(c).startswith("P")).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word))
    return row[-1]


# ----------------------------------------------------------------------------------- the sets
def commonvoice() -> list[dict]:
    folder = DATA / "commonvoice_en_dev50"
    clips = []
    for line in (folder / "transcripts.jsonl").read_text().splitlines():
        item = json.loads(line)
        clips.append({"id": item["file"], "path": str(folder / item["file"]), "reference": item["text"],
                      "accent": item.get("accent") or "unknown"})
    return clips


def ravdess(actors: list[int]) -> list[dict]:
    clips = []
    for actor in actors:
        for path in sorted((DATA / "ravdess_speech_16k" / f"Actor_{actor:02d}").glob("*.flac")):
            _, _, emotion, intensity, statement, _, _ = path.stem.split("-")
            clips.append({"id": path.stem, "path": str(path), "reference": RAVDESS_SENTENCES[statement],
                          "emotion": EMOTIONS[emotion], "intensity": INTENSITIES[intensity]})
    # A fixed shuffled order: a run cut short has still heard a fair sample of emotions and actors.
    return [clips[i] for i in np.random.default_rng(0).permutation(len(clips))]


def testdata() -> list[dict]:
    """The pocketsphinx-testdata wav files with a reference line `<s> words </s> (id)`."""
    clips = []
    for sub, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        path = TESTDATA / sub / listing
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*$", line)
            if match and (TESTDATA / sub / f"{match.group(2)}.wav").is_file():
                clips.append({"id": f"{sub}/{match.group(2)}", "path": str(TESTDATA / sub / f"{match.group(2)}.wav"),
                              "reference": match.group(1).strip(), "part": sub})
    return clips


def read_clip(path: str) -> np.ndarray:
    from momke.extractors.media import load_audio, resample_to_target

    samples, rate = load_audio(path)
    return resample_to_target(samples, rate).numpy()


# ----------------------------------------------------------------------------------- running
def run_backend(spec: str, sets: dict[str, list[dict]], cache: Path, done: dict) -> dict:
    from momke.extractors.media import SAMPLE_RATE
    from momke.realtime.asr import make_asr

    wall0 = time.perf_counter()
    asr = make_asr(spec, language="en")
    load_s = time.perf_counter() - wall0
    first = next(clip for clips in sets.values() for clip in clips)
    asr.transcribe(read_clip(first["path"]))  # warm-up, not timed
    for set_name, clips in sets.items():
        for clip in clips:
            key = (spec, set_name, clip["id"])
            if key in done:
                continue
            samples = read_clip(clip["path"])
            cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
            text = asr.transcribe(samples)
            row = {"backend": spec, "set": set_name, "id": clip["id"], "hypothesis": text,
                   "audio_s": len(samples) / SAMPLE_RATE, "cpu_s": time.process_time() - cpu0,
                   "thread_cpu_s": time.thread_time() - thread0, "wall_s": time.perf_counter() - wall0}
            done[key] = row
            with open(cache, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{spec:13s} {set_name:11s} {clip['id']:40s} {row['cpu_s']:.2f}s  {text}", flush=True)
    asr.close()
    return {"load_s": round(load_s, 2)}


def score(rows: list[tuple[dict, dict]]) -> dict:
    """rows: (clip, result) pairs -> WER and cost over them."""
    errors = sum(word_errors(normalise(c["reference"]), normalise(r["hypothesis"])) for c, r in rows)
    words = sum(len(normalise(c["reference"])) for c, _ in rows)
    audio = sum(r["audio_s"] for _, r in rows)
    return {
        "clips": len(rows), "reference_words": words, "word_errors": errors,
        "wer": round(errors / max(words, 1), 4),
        "audio_s": round(audio, 1),
        "cpu_rtf": round(sum(r["cpu_s"] for _, r in rows) / audio, 4),
        "thread_cpu_rtf": round(sum(r["thread_cpu_s"] for _, r in rows) / audio, 4),
        "wall_rtf": round(sum(r["wall_s"] for _, r in rows) / audio, 4),
        "cpu_s_median_per_clip": round(statistics.median(r["cpu_s"] for _, r in rows), 3),
        "exact_clips": sum(normalise(c["reference"]) == normalise(r["hypothesis"]) for c, r in rows),
    }


def breakdown(rows: list[tuple[dict, dict]], field: str) -> dict:
    groups = defaultdict(list)
    for clip, result in rows:
        groups[clip[field]].append((clip, result))
    return {name: {k: v for k, v in score(group).items() if k in ("clips", "wer", "word_errors", "reference_words")}
            for name, group in sorted(groups.items())}


BREAKDOWNS = {"commonvoice": ("accent",), "ravdess": ("emotion", "intensity"), "testdata": ("part",)}


def summarise(specs: list[str], sets: dict[str, list[dict]], done: dict) -> dict:
    out = {}
    for spec in specs:
        out[spec] = {}
        for set_name, clips in sets.items():
            rows = [(c, done[(spec, set_name, c["id"])]) for c in clips if (spec, set_name, c["id"]) in done]
            if not rows:
                continue
            entry = score(rows)
            common = [(c, r) for c, r in rows if all((s, set_name, c["id"]) in done for s in specs)]
            if common and len(common) < len(clips):  # a run cut short: also score the clips every backend heard
                entry["of_set_clips"] = len(clips)
                entry["on_clips_all_backends_heard"] = {k: v for k, v in score(common).items()
                                                        if k in ("clips", "wer", "word_errors", "reference_words")}
            for field in BREAKDOWNS[set_name]:
                entry[f"by_{field}"] = breakdown(rows, field)
            entry["examples"] = [{"id": c["id"], "reference": c["reference"], "hypothesis": r["hypothesis"]}
                                 for c, r in rows if normalise(c["reference"]) != normalise(r["hypothesis"])][:8]
            out[spec][set_name] = entry
    return out


# ----------------------------------------------------------------------------------- report
def _coverage(entry: dict) -> str:
    """ " (of N clips; WER x % on the n every backend heard)" for a set a run did not finish."""
    if "of_set_clips" not in entry:
        return ""
    common = entry.get("on_clips_all_backends_heard")
    both = f"; WER {100 * common['wer']:.1f} % on the {common['clips']} all backends heard" if common else ""
    return f" (of {entry['of_set_clips']}{both})"


def _load_range(report: dict) -> str:
    loads = [r[k][0] for r in report["runs"] for k in ("load_average_before", "load_average_after")]
    return f"{min(loads)}-{max(loads)}" if loads else "unknown"


def _cell(report: dict, spec: str, set_name: str, field: str, group: str) -> str:
    entry = report["results"][spec][set_name][f"by_{field}"].get(group)
    return "-" if entry is None else f"{100 * entry['wer']:.1f}"


def markdown(report: dict) -> str:
    sets = report["sets"]
    lines = [
        "# ASR word error rate and CPU real-time factor (issue 9)", "",
        f"Command: `{report['command']}`  ",
        (f"Machine: {report['machine']}, {report['cpu_count']} cores shared with other jobs, no GPU; "
        f"1-min load average {_load_range(report)} at the start and end of the {len(report['runs'])} runs "
        "that made these figures (listed in `wer.json`). "
        "CPU figures (process CPU time around `transcribe`, CTranslate2's threads included) are the steady "
        "ones; wall figures are inflated by the other jobs. Raw figures and per-set breakdowns: `wer.json`."), "",
        "Sets: " + "; ".join(f"{name} {info['clips']} clips, {info['audio_s']} s ({info['what']})"
                             for name, info in sets.items()), "",
        ("Normalisation: lower case, dashes/slashes to spaces, other punctuation deleted, nothing expanded. "
        "WER = word edit distance / reference words, summed over the set."), "",
        "| backend | set | WER | exact clips | CPU RTF (process) | CPU RTF (calling thread) | wall RTF | model load s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec, per_set in report["results"].items():
        for set_name, e in per_set.items():
            lines.append(f"| {spec} | {set_name} | {100 * e['wer']:.1f} % ({e['word_errors']}/{e['reference_words']}) | "
                         f"{e['exact_clips']}/{e['clips']}{_coverage(e)} | {e['cpu_rtf']:.3f} | {e['thread_cpu_rtf']:.3f} | "
                         f"{e['wall_rtf']:.3f} | {report['load_s'].get(spec, '')} |")
    lines += ["", "Targets (issue 9): WER <= 20 % on varied read speech (Common Voice), <= 5 % on RAVDESS.", ""]
    for spec, per_set in report["results"].items():
        met = [f"{s} {100 * per_set[s]['wer']:.1f} % {'met' if per_set[s]['wer'] <= t else 'NOT met'}"
               for s, t in TARGETS.items() if s in per_set]
        lines.append(f"- {spec}: " + ", ".join(met))
    if any("ravdess" in p for p in report["results"].values()):
        lines += ["", "RAVDESS WER by emotion and intensity (%):", ""]
        specs = [s for s, p in report["results"].items() if "ravdess" in p]
        lines += ["| group | " + " | ".join(specs) + " |", "|---" * (len(specs) + 1) + "|"]
        first = report["results"][specs[0]]["ravdess"]
        for field in ("emotion", "intensity"):
            for group in first[f"by_{field}"]:
                cells = [_cell(report, s, "ravdess", field, group) for s in specs]
                lines.append(f"| {field} {group} | " + " | ".join(cells) + " |")
    if any("commonvoice" in p for p in report["results"].values()):
        lines += ["", "Common Voice WER by accent (%; clips per accent in brackets):", ""]
        specs = [s for s, p in report["results"].items() if "commonvoice" in p]
        lines += ["| accent | " + " | ".join(specs) + " |", "|---" * (len(specs) + 1) + "|"]
        first = report["results"][specs[0]]["commonvoice"]["by_accent"]
        for group, info in first.items():
            cells = [_cell(report, s, "commonvoice", "accent", group) for s in specs]
            lines.append(f"| {group} ({info['clips']}) | " + " | ".join(cells) + " |")
    lines += ["", "Some errors (reference -> hypothesis):", ""]
    for spec, per_set in report["results"].items():
        for set_name, e in per_set.items():
            for ex in e["examples"][:3]:
                lines.append(f"- {spec}, {set_name} {ex['id']}: \"{ex['reference']}\" -> \"{ex['hypothesis']}\"")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["whisper-tiny", "whisper-base", "pocketsphinx"])
    parser.add_argument("--sets", nargs="+", default=["commonvoice", "ravdess", "testdata"], choices=list(BREAKDOWNS))
    parser.add_argument("--actors", nargs="+", type=int, default=[17, 18, 19, 20])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--fresh", action="store_true", help="ignore per-clip results of earlier runs")
    parser.add_argument("--report-only", action="store_true", help="transcribe nothing: report the kept per-clip results")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    what = {"commonvoice": "commonvoice_en_dev50, 50 speakers",
            "ravdess": f"RAVDESS actors {', '.join(f'{a:02d}' for a in args.actors)}, every clip",
            "testdata": "pocketsphinx-testdata wav files with references: librivox/ and cards/"}
    builders = {"commonvoice": commonvoice, "ravdess": lambda: ravdess(args.actors), "testdata": testdata}
    sets = {name: builders[name]() for name in args.sets}
    for name, clips in sets.items():
        if not clips:
            print(f"set {name}: no clips found (skipped)", file=sys.stderr)
    sets = {name: clips for name, clips in sets.items() if clips}

    from momke.extractors.runtime import cache_root

    cache = cache_root() / "bench" / "wer_clips.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    if args.fresh and cache.exists():
        cache.unlink()
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interrupted run
                continue
            done[(row["backend"], row["set"], row["id"])] = row
    runs_log = cache.with_name("wer_runs.jsonl")
    if args.fresh and runs_log.exists():
        runs_log.unlink()
    if not args.report_only:
        run = {"backends": args.backends, "sets": list(sets), "start": time.strftime("%H:%M:%S"),
               "load_average_before": [round(x, 2) for x in os.getloadavg()]}
        run["load_s"] = {spec: run_backend(spec, sets, cache, done)["load_s"] for spec in args.backends}
        run |= {"end": time.strftime("%H:%M:%S"), "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        with open(runs_log, "a") as handle:
            handle.write(json.dumps(run) + "\n")
    runs = [json.loads(line) for line in runs_log.read_text().splitlines()] if runs_log.exists() else []
    audio_s = {(name, row["id"]): row["audio_s"] for (_, name, _), row in done.items()}
    command = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    report = {
        "command": "MOMKE_CACHE=/tmp/mc python benchmarks/bench_wer.py " + " ".join(command),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "load_average_before": min((r["load_average_before"] for r in runs), default=[0.0]),
        "load_average_after": max((r["load_average_after"] for r in runs), default=[0.0]),
        "runs": runs,
        "load_s": {spec: s for r in runs for spec, s in r["load_s"].items()},
        "sets": {name: {"clips": len(clips), "what": what[name],
                        "audio_s": round(sum(audio_s.get((name, c["id"]), 0.0) for c in clips), 1)}
                 for name, clips in sets.items()},
        "targets": TARGETS,
        "results": summarise(args.backends, sets, done),
    }
    write_report(report, markdown(report), args.json, args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
