"""Every headline accuracy figure measured through the live app (`momke-evaluate-media`).

    python benchmarks/served_accuracy.py                       # every set; writes results/served_accuracy.{json,md}
    python benchmarks/served_accuracy.py --limit 4             # a quick end-to-end run (4 files a set)
    python benchmarks/served_accuracy.py --sets ravdess-a,matched-atv --matched-conditions atv,a

Each set is a labelled CSV replayed by `momke-evaluate-media` (realtime/ui/evaluate_media.py,
called in-process: the checkpoint and the extractors load once for every set), so every file
goes through the same `LiveSession` as `momke-live --input FILE --fast`: the live segmenter,
speech-to-text, the served extractors, the model and its context. Speakers are the test speakers
of the checkpoint's recipe (its `speech_corpora`), never seen in training or validation.

Sets:
- `ravdess-a`: RAVDESS test actors, 4 classes (calm counts as neutral), one session per file,
  voice only (`--privacy text,visual`). The headline {a} figure.
- `ravdess-at`: the same clips, words from the default speech-to-text (`--privacy visual`).
- `ravdess-a-conversation`: the same clips, each actor's clips (seeded shuffled order) joined
  into one conversation (`--pause 1.0`): {a} with the voice's own context.
- `nemo-a`, `kor-a` and their `-conversation` twins: nEMO (Polish) and the Korean emotional TTS
  sample, their test speakers, voice only.
- `matched-atv`: label-matched tri-modal media: for each RAVDESS test clip an mp4 whose picture
  is a FER2013 face of the same class (from the public-test half the recipe keeps for testing)
  drifting slowly over a grey frame, with the clip as its sound track, and a MELD test line of
  the same class as its transcript; scored under the seven modality conditions (`--privacy`).
  One session per file, and {a,t,v} once more with each actor's videos joined into one
  conversation (a grey picture and silence in the pauses).

Generated media and CSVs go to --work (default runs/served-bench, never committed); existing
media are reused, every draw is seeded. `--limit N` keeps N files a set, taken from a seeded
class-balanced order (conversation sets: N files from the first ceil(N/4) speakers); its
default output files are then in --work, not in results/.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import functools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from report_files import write_report  # benchmarks/ is on the path when run as a script

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = Path(os.environ.get("MOMKE_DATA_DIR") or REPO.parent / "shared" / "data")
WORK = REPO / "runs" / "served-bench"
SEED = 0

# set name -> (speech corpus of the recipe, one session per file or conversations by speaker)
SPEECH_SETS = {
    "ravdess-a": ("ravdess", False),
    "ravdess-at": ("ravdess", False),
    "ravdess-a-conversation": ("ravdess", True),
    "nemo-a": ("nemo", False),
    "nemo-a-conversation": ("nemo", True),
    "kor-a": ("kor_emotiontts", False),
    "kor-a-conversation": ("kor_emotiontts", True),
}
SETS = (*SPEECH_SETS, "matched-atv")
# matched-atv conditions: short name -> (condition, --privacy)
MATCHED_CONDITIONS = {
    "atv": ("{a,t,v}", ""),
    "v": ("{v}", "audio,text"),
    "t": ("{t}", "audio,visual"),
    "a": ("{a}", "text,visual"),
    "av": ("{a,v}", "text"),
    "tv": ("{t,v}", "audio"),
    "at": ("{a,t}", "visual"),
}
TARGETS = {  # the targets
    "ravdess-a": "UA >= 75 % and every class recall >= 55 %",
    "matched-atv {a,t,v}": "WA >= 85 %",
}
# The matched videos: a FER2013 face (48 px) upscaled to FACE_PX, on a mid-grey FRAME, drifting
# 1-2 px a frame at FPS (the camera health check must not call the picture frozen).
FRAME_H, FRAME_W, FACE_PX, FPS, GREY = 480, 640, 200, 15, 128
MIN_WORDS = 3  # MELD lines shorter than this are not used as transcripts
BLANK_STD = 5.0  # FER2013 images this flat are not faces (the public test has a black one and a near-black one)


@dataclass(frozen=True)
class Item:
    path: Path
    label: str  # the checkpoint's class
    speaker: str  # "<corpus>-<speaker>"


# ------------------------------------------------------------------------------ the recipe's test sets
def test_clips(source: str, recipe: dict, data: Path) -> list[Item]:
    """The recipe's test-speaker clips of one speech corpus, labels mapped by its label map
    (models/commands/speech_corpora.py read_clips: the split the training used)."""
    from momke.models.commands.speech_corpora import read_clips

    settings = recipe["speech_corpora"][source]
    clips = read_clips(source, data / settings["folder"], settings, recipe["label_maps"][source])
    return sorted((Item(c.path, c.label, c.speaker) for c in clips if c.split == "test"), key=lambda i: str(i.path))


def _rng(*keys) -> np.random.Generator:
    return np.random.default_rng([SEED, *(zlib.crc32(str(k).encode()) for k in keys)])


def balanced_order(items: list[Item], labels: list[str], name: str) -> list[Item]:
    """Items in a seeded order that cycles through the classes (each class's items shuffled), so
    that the first N of them are class-balanced."""
    rng = _rng("balanced", name)
    pools = {label: [i for i in items if i.label == label] for label in labels}
    pools = {label: [pool[k] for k in rng.permutation(len(pool))] for label, pool in pools.items() if pool}
    order = []
    while pools:
        for label in list(pools):
            order.append(pools[label].pop(0))
            if not pools[label]:
                del pools[label]
    return order


def conversation_order(items: list[Item], limit: int | None) -> list[Item]:
    """Each speaker's items in a seeded shuffled order, speaker after speaker; with a limit, N
    items from the first ceil(N / 4) speakers (as evenly as possible)."""
    speakers = sorted({i.speaker for i in items})
    orders = {}
    for speaker in speakers:
        own = [i for i in items if i.speaker == speaker]
        orders[speaker] = [own[k] for k in _rng("conversation", speaker).permutation(len(own))]
    if limit is None:
        return [i for s in speakers for i in orders[s]]
    used = speakers[: max(1, min(len(speakers), math.ceil(limit / 4)))]
    quota = [limit // len(used) + (k < limit % len(used)) for k in range(len(used))]
    return [i for s, q in zip(used, quota) for i in orders[s][:q]]


def chosen_items(items: list[Item], labels: list[str], conversation: bool, limit: int | None, name: str) -> list[Item]:
    if conversation:
        return conversation_order(items, limit)
    order = balanced_order(items, labels, name)
    return order if limit is None else order[:limit]


# ------------------------------------------------------------------------------ matched tri-modal media
def fer_test_faces(recipe: dict, data: Path) -> dict[str, list[str]]:
    """{class: FER2013 public-test face names} of the half the recipe keeps for TESTING, drawn
    by the recipe's own split (default_recipe.fer_splits)."""
    from momke.models.commands.default_recipe import FER_FILE, fer_splits

    labels = list(recipe["labels"])
    faces: dict[str, list[str]] = {label: [] for label in labels}
    with np.load(data / FER_FILE, allow_pickle=False) as arrays:
        for split, part, rows, label_index in fer_splits(arrays, recipe):
            if split == "test":
                for name, label in zip(arrays[f"{part}_names"][rows], label_index):
                    faces[labels[int(label)]].append(str(name))
    return faces


def usable_faces(faces: dict[str, list[str]], names: np.ndarray, images: np.ndarray) -> tuple[dict[str, list[str]], list[str]]:
    """The faces minus FER2013's blank images (pixel std < BLANK_STD); ({class: names}, dropped)."""
    row_of = {str(n): k for k, n in enumerate(names)}
    kept, dropped = {}, []
    for label, own in faces.items():
        kept[label] = [n for n in own if images[row_of[n]].std() >= BLANK_STD]
        dropped += [n for n in own if images[row_of[n]].std() < BLANK_STD]
    return kept, dropped


def meld_test_lines(recipe: dict, data: Path) -> dict[str, list[str]]:
    """{class: MELD test utterances of MIN_WORDS words or more}, labels by the recipe's map."""
    mapping = {k.lower(): v for k, v in recipe["label_maps"]["meld"].items()}
    lines: dict[str, list[str]] = {label: [] for label in recipe["labels"]}
    with open(data / "meld" / "test_sent_emo.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = mapping.get(row["Emotion"].strip().lower())
            text = " ".join(row["Utterance"].split())
            if label is not None and len(text.split()) >= MIN_WORDS:
                lines[label].append(text)
    return lines


def matched_picks(items: list[Item], faces: dict[str, list[str]], lines: dict[str, list[str]]) -> dict[Path, dict]:
    """Per clip (all test clips, sorted, so a --limit run makes the same media): a face and a
    line of its class, drawn without replacement in a seeded order."""
    face_pools = {c: [names[k] for k in _rng("faces", c).permutation(len(names))] for c, names in faces.items()}
    line_pools = {c: [texts[k] for k in _rng("lines", c).permutation(len(texts))] for c, texts in lines.items()}
    used: dict[str, int] = {}
    picks = {}
    for item in sorted(items, key=lambda i: str(i.path)):
        k = used.get(item.label, 0)
        used[item.label] = k + 1
        picks[item.path] = {"face": face_pools[item.label][k % len(face_pools[item.label])],
                            "transcript": line_pools[item.label][k % len(line_pools[item.label])]}
    return picks


def drift(i: int, speed: float, amplitude: float) -> int:
    """A triangle wave: moves `speed` px a frame between -amplitude and +amplitude."""
    return round(amplitude - abs((i * speed) % (4 * amplitude) - 2 * amplitude))


def face_frames(face48: np.ndarray, count: int):
    """BGR frames: the face upscaled (cubic) to FACE_PX on a mid-grey frame, drifting 1-2 px a
    frame (1.5 px across, 1 px down, as triangle waves)."""
    import cv2

    face = cv2.resize(face48, (FACE_PX, FACE_PX), interpolation=cv2.INTER_CUBIC)
    face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    x0, y0 = (FRAME_W - FACE_PX) // 2, (FRAME_H - FACE_PX) // 2
    for i in range(count):
        frame = np.full((FRAME_H, FRAME_W, 3), GREY, np.uint8)
        x, y = x0 + drift(i, 1.5, 60), y0 + drift(i, 1.0, 30)
        frame[y: y + FACE_PX, x: x + FACE_PX] = face
        yield frame


def make_matched_video(clip: Path, face48: np.ndarray, out: Path) -> Path:
    """An mp4 (H.264 yuv420p, FPS; AAC 16 kHz mono) as long as the clip: the drifting face with
    the clip as its sound track. Written beside `out` and renamed, so a half-written file is never
    taken for a finished one; an existing `out` is kept."""
    if out.is_file():
        return out
    import soundfile

    duration = soundfile.info(str(clip)).duration
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".partial.mp4")
    command = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{FRAME_W}x{FRAME_H}", "-r", str(FPS), "-i", "-", "-i", str(clip),
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast",
               "-c:a", "aac", "-ar", "16000", "-ac", "1", "-shortest", str(partial)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    try:
        for frame in face_frames(face48, math.ceil(duration * FPS)):
            process.stdin.write(frame.tobytes())
        process.stdin.close()
        if process.wait() != 0:
            raise RuntimeError(f"ffmpeg failed on {clip} (exit {process.returncode})")
    except BaseException:
        process.kill()
        process.wait()
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return out


# ------------------------------------------------------------------------------ CSVs
def write_csv(path: Path, rows: list[dict]) -> Path:
    """A momke-evaluate-media CSV; files relative to its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "file": os.path.relpath(row["file"], path.parent)})
    tmp.replace(path)
    return path


@dataclass
class Run:
    """One momke-evaluate-media call."""

    set: str
    condition: str
    csv: Path
    privacy: str
    conversation: bool
    transcript: bool
    n_full: int  # files of the set without --limit (for the cost estimate)


def plan(args, recipe: dict, labels: list[str]) -> tuple[list[Run], dict]:
    """The runs for the chosen sets; builds their CSVs and media. Returns (runs, notes)."""
    suffix = f"-limit{args.limit}" if args.limit else ""
    runs: list[Run] = []
    notes: dict = {"generation_s": {}}
    clips_of: dict[str, list[Item]] = {}

    def clips(source: str) -> list[Item]:
        if source not in clips_of:
            clips_of[source] = test_clips(source, recipe, args.data)
        return clips_of[source]

    for name in args.sets:
        if name in SPEECH_SETS:
            source, conversation = SPEECH_SETS[name]
            items = chosen_items(clips(source), labels, conversation, args.limit, source)
            rows = [{"file": i.path, "label": i.label, "speaker": i.speaker} for i in items]
            path = write_csv(args.work / "csv" / f"{name}{suffix}.csv", rows)
            privacy = "visual" if name == "ravdess-at" else "text,visual"
            condition = "{a,t} (words from speech-to-text)" if name == "ravdess-at" else (
                "{a}, conversation by speaker" if conversation else "{a}")
            runs.append(Run(name, condition, path, privacy, conversation, False, len(clips(source))))
        elif name == "matched-atv":
            began = time.perf_counter()
            items = clips("ravdess")
            fer = np.load(args.data / "fer2013_48x48.npz", allow_pickle=False)
            images = fer["public_test_images"]
            faces, blank = usable_faces(fer_test_faces(recipe, args.data), fer["public_test_names"], images)
            picks = matched_picks(items, faces, meld_test_lines(recipe, args.data))
            split_s = time.perf_counter() - began
            row_of = {str(n): k for k, n in enumerate(fer["public_test_names"])}
            chosen = chosen_items(items, labels, False, args.limit, "ravdess")
            rows, made, began = [], 0, time.perf_counter()
            for item in chosen:
                pick = picks[item.path]
                # Named by clip and face: media made for other picks are never reused.
                out = args.work / "media" / "matched" / f"{item.path.stem}_{Path(pick['face']).stem}.mp4"
                made += not out.is_file()
                make_matched_video(item.path, images[row_of[pick["face"]]], out)
                rows.append({"file": out, "label": item.label, "speaker": item.speaker, "transcript": pick["transcript"],
                             "face": pick["face"], "clip": item.path.name})
            notes["generation_s"]["matched-atv"] = {
                "videos_made": made, "videos_reused": len(chosen) - made, "seconds": round(time.perf_counter() - began, 2),
                "s_per_video": round((time.perf_counter() - began) / made, 3) if made else None,
                "fer_split_and_picks_s": round(split_s, 2)}
            notes["fer_test_faces"] = {label: len(names) for label, names in faces.items()}
            notes["fer_blank_faces_left_out"] = blank
            path = write_csv(args.work / "csv" / f"matched-atv{suffix}.csv", rows)
            for short in args.matched_conditions:
                condition, privacy = MATCHED_CONDITIONS[short]
                runs.append(Run(name, condition, path, privacy, False, True, len(items)))
            # The same videos, each actor's joined into one conversation: {a,t,v} with context.
            runs.append(Run(name, "{a,t,v}, conversation by speaker", path, "", True, True, len(items)))
    return runs, notes


# ------------------------------------------------------------------------------ running
def share_loads() -> None:
    """momke-evaluate-media loads the checkpoint and the feature profile in each call; in this
    process they are loaded once and shared by every call (one call shares them across its
    sessions anyway). The extractors' networks, loaded lazily by the first session, stay loaded."""
    from momke.extractors import profiles
    from momke.models import checkpoint

    if not hasattr(checkpoint.load_checkpoint, "cache_info"):
        checkpoint.load_checkpoint = functools.cache(checkpoint.load_checkpoint)
    if not hasattr(profiles.load_profile, "cache_info"):
        profiles.load_profile = functools.cache(profiles.load_profile)


def evaluate(run: Run, args, report_path: Path) -> tuple[int, dict | None, float]:
    """momke-evaluate-media on one CSV (in-process); (exit code, its JSON report, wall seconds)."""
    from momke.realtime.ui.evaluate_media import main as evaluate_media

    argv = [str(run.csv), "--report", str(report_path), "--overwrite",
            "--conversation-column", "speaker" if run.conversation else "none",
            "--transcript-column", "transcript" if run.transcript else "none", "--pause", "1.0"]
    if args.checkpoint is not None:
        argv += ["--checkpoint", str(args.checkpoint)]
    if run.privacy:
        argv += ["--privacy", run.privacy]
    print(f"\n== {run.set} {run.condition}: momke-evaluate-media {' '.join(argv)}", file=sys.stderr, flush=True)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # its table: progress here; stdout carries the report
        code = evaluate_media(argv)
    wall = time.perf_counter() - began
    if code == 130:
        raise KeyboardInterrupt
    report = json.loads(report_path.read_text()) if report_path.is_file() and code != 2 else None
    return code, report, wall


def summary(run: Run, code: int, report: dict | None, wall: float, report_path: Path) -> dict:
    row = {"set": run.set, "condition": run.condition, "privacy": run.privacy or "none",
           "grouping": "conversations by speaker" if run.conversation else "one session per file",
           "transcripts": "off" if "text" in run.privacy else "MELD test lines (CSV)" if run.transcript else "speech-to-text",
           "exit_code": code, "wall_s": round(wall, 2), "n_full_set": run.n_full, "report": str(report_path)}
    if report is None:
        return row
    per_class = report["per_class"]
    recall_all = {}  # no-event files counted as wrong
    for name, pc in per_class.items():
        if pc["n"]:
            correct = (pc["recall"] or 0.0) * (pc["n"] - pc["no_event"])
            recall_all[name] = correct / pc["n"]
    t = report["timing"]
    per_file = t.get("mean_file_s") or (t["replay_s"] / report["n_replayed"] if report["n_replayed"] else None)
    row.update({
        "n_files": report["n_files"], "n_failed": report["n_failed"], "n_replayed": report["n_replayed"],
        "n_scored": report["n_scored"], "no_event_share": report["no_event_share"],
        "n_incomplete": report["n_incomplete"], "stray_events": report["stray_events"],
        "metrics": report["metrics"], "per_class_recall": report["per_class_recall"],
        "per_class_recall_all": recall_all, "per_class": per_class, "confusion": report["confusion"],
        "mean_probability": report["mean_probability"], "modalities": report["modalities"],
        "latency_ms": report["latency_ms"], "timing": t, "s_per_file": per_file,
        "asr_used": report["settings"].get("asr_used"), "failures": report["failures"],
        "files": [{"file": Path(f["file"]).name, "label": f["label"], "predicted": f["predicted"],
                   "p_true": None if f["probabilities"] is None else f["probabilities"][f["label"]],
                   "n_events": f["n_events"]} for f in report["files"]],
    })
    return row


# ------------------------------------------------------------------------------ the report
def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _used(row: dict) -> str:
    """Events per combination of modalities used, e.g. 'atv 130, at 14'."""
    counts = row["modalities"]["conditions"]
    short = {k: "".join(m[0] for m in k.split("+")) if k != "none" else "none" for k in counts}
    return ", ".join(f"{short[k]} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


def target_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if "metrics" not in row or row["metrics"].get("ua") is None:
            continue
        m = row["metrics"]
        if row["set"] == "ravdess-a":
            for kind, ua, recall in (("scored files", m["ua"], row["per_class_recall"]),
                                     ("no-event files counted wrong", m["ua_all"], row["per_class_recall_all"])):
                low = min(recall.values()) if recall else None
                met = ua is not None and ua >= 0.75 and low is not None and low >= 0.55
                lines.append(f"| ravdess-a {{a}} | {TARGETS['ravdess-a']} | {kind}: UA {_pct(ua)}, lowest class recall "
                             f"{_pct(low)} | {'met' if met else 'NOT met'} |")
        if row["set"] == "matched-atv" and row["condition"] == "{a,t,v}":
            for kind, wa in (("scored files", m["wa"]), ("no-event files counted wrong", m["wa_all"])):
                met = wa is not None and wa >= 0.85
                lines.append(f"| matched-atv {{a,t,v}} | {TARGETS['matched-atv {a,t,v}']} | {kind}: WA {_pct(wa)} | "
                             f"{'met' if met else 'NOT met'} |")
    return lines


def markdown(report: dict) -> str:
    meta, rows, labels = report["meta"], report["rows"], report["meta"]["labels"]
    limited = meta["limit"] is not None
    lines = [
        "# Served accuracy: every headline figure through the live app",
        "",
        ("Every figure below is measured through the live app: each labelled recording is replayed by "
        "`momke-evaluate-media` through a `LiveSession`, exactly as `momke-live --input FILE --fast` replays it "
        "(the live segmenter cuts the utterances, speech-to-text or the given transcript supplies the words, "
        "the served extractors and the checkpoint with its conversation context judge them), and a file's "
        "prediction is the duration-weighted mean of the fused probabilities of the events it produced. "
        "The speakers are the test speakers of the checkpoint's recipe (`speech_corpora`: "
        + "; ".join(f"{s} {', '.join(v)}" for s, v in meta["test_speakers"].items())
        + "), held out of training and validation; faces come from the FER2013 public-test half the recipe keeps "
        "for testing, transcripts from MELD's test split."),
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}; {meta['date']}; load average before / after: {meta['load_before']} / {meta['load_after']}",
        (f"- checkpoint: `{meta['checkpoint']}` (config.json sha256 {meta['config_sha256'][:16]}, "
         f"model.safetensors sha256 {meta['weights_sha256'][:16]}); recipe `{meta['recipe_file']}`; "
         f"momke {meta['version']}"),
        f"- wall time: {meta['wall_s']:.0f} s in all ({meta['load_s']:.0f} s loading)",
    ]
    if limited:
        lines += ["", (f"**Quick run: `--limit {meta['limit']}` files a set** (a seeded class-balanced pick; "
                       "conversation sets: the first speakers' shuffled clips). The figures are far too few files "
                       "to mean anything; they show the pipeline runs.")]
    lines += [
        "",
        ("WA / UA and the per-class recall are over the files that produced an emotion event; 'all' counts a "
         "no-event file as wrong. ECE: 15 equal-width bins over the files' probabilities."),
        "",
        ("| set | condition | files | no event | WA | UA | WA all | UA all | "
         + " | ".join(f"recall {name}" for name in labels) + " | ECE | events by modalities | s/file |"),
        "|---|---|---|---|---|---|---|---|" + "---|" * len(labels) + "---|---|---|",
    ]
    for row in rows:
        if "metrics" not in row:
            lines.append(f"| {row['set']} | {row['condition']} | - | failed (exit {row['exit_code']}) |" + " |" * (8 + len(labels)))
            continue
        m, recall = row["metrics"], row["per_class_recall"]
        n = f"{row['n_replayed']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
        ece = "-" if m.get("ece") is None else f"{m['ece']:.3f}"
        spf = "-" if row["s_per_file"] is None else f"{row['s_per_file']:.2f}"
        lines.append(f"| {row['set']} | {row['condition']} | {n} | {_pct(row['no_event_share'])} % | {_pct(m.get('wa'))} | "
                     f"{_pct(m.get('ua'))} | {_pct(m.get('wa_all'))} | {_pct(m.get('ua_all'))} | "
                     + " | ".join(_pct(recall.get(name)) for name in labels) + f" | {ece} | {_used(row)} | {spf} |")
    targets = target_lines(rows)
    if targets:
        lines += ["", "| target (issue) | asked | measured | |", "|---|---|---|---|", *targets]
    notes = report["notes"]
    lines += ["", "Notes:",
              ("- `matched-atv` is one session per file (no conversation context), except the row 'conversation by "
               "speaker', where each actor's videos are joined into one stream (momke-evaluate-media: a grey picture "
               "and 1 s of silence between them). "
              f"Each video: the FER2013 face (48 px, upscaled with cubic interpolation to {FACE_PX} px) on a "
              f"{FRAME_W}x{FRAME_H} mid-grey frame, drifting 1-2 px a frame at {FPS} fps, H.264 + AAC 16 kHz mono, "
              "as long as its RAVDESS clip; transcript: a MELD test line of the same class "
              f"(joy -> happy, sadness -> sad, neutral, anger -> angry; lines of {MIN_WORDS}+ words), given as the "
              "file's transcript (so no speech-to-text runs).")]
    if "fer_test_faces" in notes:
        lines.append("- FER2013 faces: drawn (seeded, without replacement within a class) from the public-test half "
                     "the recipe keeps for TESTING, drawn by the recipe's own split (`default_recipe.fer_splits`), "
                     "so it is exactly the training run's (test faces per class: "
                     + ", ".join(f"{k} {v}" for k, v in notes["fer_test_faces"].items()) + "); no validation face is used. "
                     f"Blank images (pixel std < {BLANK_STD:g}) are left out: {', '.join(notes['fer_blank_faces_left_out']) or 'none'}. "
                     "Faces the app's face detector (MTCNN) does not find stay in: on such a video the visual modality "
                     "is missing and the event uses the others ('events by modalities': a = audio, t = text, v = visual); "
                     "the {v} row's no-event share is the share of videos in which it found no face (on single frames of "
                     "160 test faces placed this way it found 87 %).")
    asr = [r["asr_used"] for r in rows if r["set"] == "ravdess-at" and r.get("asr_used")]
    if asr:
        lines.append("- `ravdess-at`: the words come from the default speech-to-text (`--asr auto`: Whisper tiny.en "
                     "on a CPU, base on a GPU); sessions per backend: "
                     + ", ".join(f"{k} {v}" for k, v in asr[0].items()) + ".")
    estimate = report["estimate"]
    lines += ["", f"Cost of a full run, estimated from this run's seconds per file on this machine: "
                  f"{estimate['total_s'] / 60:.0f} min ({estimate['files']} file replays"
                  + ("" if not estimate["videos"] else
                     f", plus making the {estimate['videos']} matched videos: not timed, this run found its videos in --work"
                     if estimate["generation_s"] is None else
                     f", plus {estimate['generation_s']:.0f} s making the {estimate['videos']} matched videos")
                  + "). Per set: "
                  + "; ".join(f"{k} {v['files']} x {v['s_per_file']:.2f} s" for k, v in estimate["per_run"].items()) + "."]
    return "\n".join(lines) + "\n"


def cost_estimate(rows: list[dict], notes: dict) -> dict:
    per_run, total, files = {}, 0.0, 0
    for row in rows:
        if row.get("s_per_file") is None:
            continue
        key = f"{row['set']} {row['condition']}"
        per_run[key] = {"files": row["n_full_set"], "s_per_file": round(row["s_per_file"], 3),
                        "s": round(row["n_full_set"] * row["s_per_file"], 1)}
        total += per_run[key]["s"]
        files += row["n_full_set"]
    generation = notes["generation_s"].get("matched-atv") or {}
    videos = next((r["n_full_set"] for r in rows if r["set"] == "matched-atv"), 0)
    per_video = generation.get("s_per_video")  # None: every video was already in --work
    gen_s = None if per_video is None else per_video * videos
    return {"per_run": per_run, "files": files, "videos": videos,
            "generation_s": None if gen_s is None else round(gen_s, 1), "total_s": round(total + (gen_s or 0.0), 1)}


def machine() -> str:
    try:
        import torch

        gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    except Exception:
        gpu = "no GPU"
    return f"{os.cpu_count()}-core {platform.machine()} CPU, {gpu}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="MoMKE checkpoint folder (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared corpora (default ../shared/data or $MOMKE_DATA_DIR)")
    parser.add_argument("--work", type=Path, default=WORK, help="generated media, CSVs and per-set reports (default runs/served-bench)")
    parser.add_argument("--limit", type=int, help="N files a set (a quick run)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    parser.add_argument("--matched-conditions", default=",".join(MATCHED_CONDITIONS),
                        help=f"matched-atv conditions to score (default all: {','.join(MATCHED_CONDITIONS)})")
    parser.add_argument("--json", type=Path, help="results JSON (default results/served_accuracy.json; with --limit, in --work)")
    parser.add_argument("--md", type=Path, help="results Markdown (default results/served_accuracy.md; with --limit, in --work)")
    args = parser.parse_args(argv)
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in args.sets if s not in SETS]
    if unknown or not args.sets:
        parser.error(f"--sets: unknown {unknown}; choose from {', '.join(SETS)}")
    args.matched_conditions = [c.strip() for c in args.matched_conditions.split(",") if c.strip()]
    unknown = [c for c in args.matched_conditions if c not in MATCHED_CONDITIONS]
    if unknown or not args.matched_conditions:
        parser.error(f"--matched-conditions: unknown {unknown}; choose from {', '.join(MATCHED_CONDITIONS)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    stem = "served_accuracy" + (f"-limit{args.limit}" if args.limit else "")
    folder = args.work if args.limit else RESULTS
    args.json = args.json or folder / f"{stem}.json"
    args.md = args.md or folder / f"{stem}.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"SKIP: {args.data} not found (the shared corpora; set --data or MOMKE_DATA_DIR)")
        return 0
    if "matched-atv" in args.sets and not shutil.which("ffmpeg"):
        raise SystemExit("matched-atv needs ffmpeg on the PATH")
    started = time.perf_counter()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    share_loads()
    from momke.extractors.runtime import file_sha256, pick_device
    from momke.models import checkpoint as checkpoints
    from momke.models.cli_common import version
    from momke.models.commands.default_recipe import recipe_of

    folder = args.checkpoint or checkpoints.DEFAULT_CHECKPOINT
    # As momke-evaluate-media loads it (same arguments: the cached model is the one it gets).
    model = checkpoints.load_checkpoint(folder, device=str(pick_device(None)))
    load_s = time.perf_counter() - started
    recipe = recipe_of(model.config)
    if "speech_corpora" not in recipe:
        raise SystemExit(f"the checkpoint's recipe ({model.config.metadata.get('recipe_file')}) has no speech_corpora")
    labels = list(model.config.labels)
    runs, notes = plan(args, recipe, labels)
    config_sha = file_sha256(folder / "config.json")
    rows = []
    for run in runs:
        short = next((k for k, (c, _) in MATCHED_CONDITIONS.items() if c == run.condition), "") if run.set == "matched-atv" else ""
        name = f"{run.set}{'-' + short if short else ''}{f'-limit{args.limit}' if args.limit else ''}.json"
        report_path = args.work / "reports" / config_sha[:12] / name
        code, result, wall = evaluate(run, args, report_path)
        rows.append(summary(run, code, result, wall, report_path))
    meta = {
        "command": "python benchmarks/served_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_before, "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "checkpoint": folder.name, "checkpoint_path": str(folder), "config_sha256": config_sha,
        "weights_sha256": file_sha256(folder / "model.safetensors") if (folder / "model.safetensors").is_file() else "",
        "recipe_file": model.config.metadata.get("recipe_file", "whisper_4class.json"), "version": version(),
        "labels": labels, "limit": args.limit, "sets": args.sets, "matched_conditions": args.matched_conditions,
        "test_speakers": {s: v["test_speakers"] for s, v in recipe["speech_corpora"].items()},
        "seed": SEED, "work": str(args.work), "wall_s": time.perf_counter() - started, "load_s": load_s,
    }
    report = {"meta": meta, "rows": rows, "notes": notes}
    report["estimate"] = cost_estimate(rows, notes)
    write_report(report, markdown(report), args.json, args.md)
    return 0 if all(r["exit_code"] in (0, 3) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
