"""`momke-evaluate-media`: the live app's accuracy on labelled recordings, measured through the
app's own path.

    momke-evaluate-media labels.csv                       one session per file
    momke-evaluate-media labels.csv --conversation-column speaker --transcript-column text
    momke-evaluate-media labels.csv --privacy text,visual --json > report.json

labels.csv has the columns `file,label` (paths relative to the CSV's folder) and optionally
`conversation` and `transcript`; other columns are ignored. Each file (or each conversation:
its files joined into one stream, `--pause` seconds of silence between them) is replayed by a
`LiveSession(input_file=..., realtime=False)`, exactly as `momke-live --input FILE --fast` does,
and the EmotionEvents it emits are scored against the file's label. The checkpoint, the feature
profile and the speech-to-text model are loaded once and shared by every session.

A file's prediction: its EmotionEvents' fused `probabilities`, averaged with weights = each
event's duration (end - start); the label is the most probable class. In a conversation an event
belongs to the file whose time span holds most of it; an event in no file's span (in a pause)
is "stray" and counted apart. A file with no EmotionEvent is "no event": metrics are computed
over the files with an event (wa, ua, f1...), and wa_all / ua_all count the no-event files as
wrong.

Exit codes: 0 every file scored, 1 some files could not be replayed (listed under `failures`;
the rest is scored) or nothing could be scored, 2 usage error or bad input (CSV, columns, labels,
checkpoint), 3 some replays were incomplete (damaged parts skipped; the rest scored), 130 Ctrl-C.

Only the standard library is imported before the arguments and the CSV are checked: `--help`,
`--version` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...models.cli_common import (  # standard library only
    OneLineErrorParser,
    UsageProblem,
    VersionAction,
    check_file,
    check_output_file,
    discard_stdout,
)
from .cli import (  # standard library only
    MODALITIES,
    _JsonOut,
    _positive_float,
    _unit_float,
    check_asr,
    parse_privacy,
)

PROG = "momke-evaluate-media"
EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
NO_COLUMN = "none"  # --conversation-column none / --transcript-column none: do not use one


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description="Replay labelled recordings through the live app (as `momke-live --input FILE --fast` "
                    "does) and score its emotion events: WA, UA, F1, confusion matrix, calibration.",
        epilog="A file's prediction is the duration-weighted mean of its events' fused probabilities. "
               "Conversation mode (files grouped by a column) joins a group's files into one stream "
               "with --pause between them (videos with a grey picture in the pauses; a group may not mix "
               "video and sound-only files). "
               "Exit codes: 0 done, 1 some files failed (the rest is scored), 2 usage error or bad "
               "input, 3 some replays incomplete (damaged parts skipped), 130 Ctrl-C.",
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("labels_csv", metavar="LABELS.csv", type=Path,
                        help="CSV with columns file,label (paths relative to the CSV's folder), optionally "
                             "conversation and transcript; other columns are ignored")
    data = parser.add_argument_group("what to score")
    data.add_argument("--conversation-column", metavar="COL",
                      help="group the files by this column: the files of one value are replayed as one "
                           "conversation, in CSV order (default: the 'conversation' column when there is "
                           "one, else one session per file; 'none': one session per file)")
    data.add_argument("--transcript-column", metavar="COL",
                      help="each file's transcript (default: the 'transcript' column when there is one; "
                           "'none': no transcripts, speech-to-text per --asr)")
    data.add_argument("--label-map", metavar="MAP", default="",
                      help="rename labels before scoring, e.g. calm=neutral,joy=happy")
    data.add_argument("--labels", metavar="LIST",
                      help="score only rows with these (mapped) labels, e.g. happy,sad,neutral,angry "
                           "(default: every label the checkpoint predicts)")
    data.add_argument("--limit", metavar="N", type=_positive_int, help="score only the first N usable rows")
    data.add_argument("--pause", metavar="S", type=_non_negative_float, default=1.0,
                      help="seconds of silence between the files of one conversation (default 1.0)")

    model = parser.add_argument_group("model and processing (as in momke-live)")
    model.add_argument("--checkpoint", metavar="DIR", type=Path,
                       help="MoMKE checkpoint directory (default: the shipped one)")
    model.add_argument("--privacy", metavar="MODS", default="",
                       help="comma-separated modalities to switch off (audio,text,visual)")
    model.add_argument("--asr", metavar="SPEC", default="auto",
                       help="speech-to-text: whisper, whisper-tiny, whisper-base, pocketsphinx, none, or "
                            "whisper:DIR; auto (default) = none for a session given transcripts, else whisper")
    model.add_argument("--language", metavar="CODE", default="en", help="language spoken (default en)")
    model.add_argument("--min-transcript-confidence", metavar="X", type=_unit_float,
                       help="speech-to-text words less sure than X (0-1) are not used for emotion (default: momke-live's)")
    model.add_argument("--asr-timeout-factor", metavar="X", type=_positive_float,
                       help="give up on a transcript after X times the utterance's length")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where the model runs (default auto)")

    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="the report as one JSON document on stdout (the table goes to stderr)")
    out.add_argument("--report", metavar="FILE", type=Path, help="also write the JSON report to FILE")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --report file")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar or messages (with --json: no table either)")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def parse_label_map(text: str) -> dict[str, str]:
    mapping = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        source, sep, target = part.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise UsageProblem(f"--label-map: {part!r} is not FROM=TO (e.g. calm=neutral)")
        mapping[source.strip().lower()] = target.strip().lower()
    return mapping


def parse_label_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = list(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    if not names:
        raise UsageProblem("--labels: give at least one label, e.g. happy,sad,neutral,angry")
    return names


# --------------------------------------------------------------------------------- the CSV
@dataclass
class Row:
    line: int  # line in the CSV (the header is line 1)
    file: str  # as written in the CSV
    path: Path
    csv_label: str
    conversation: str | None = None
    transcript: str | None = None
    label: str = ""  # the checkpoint's spelling, after --label-map


@dataclass
class LabelledMedia:
    rows: list[Row]
    conversation_column: str | None
    transcript_column: str | None


def read_labels_csv(path: Path, conversation_column: str | None, transcript_column: str | None) -> LabelledMedia:
    """The CSV's rows (standard library only, so a bad CSV is refused before anything loads)."""
    check_file("", path, "a CSV file with columns file,label")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            raw = list(reader)
    except UnicodeDecodeError as error:
        raise UsageProblem(f"{path} is not UTF-8 text ({error.reason}); save the CSV as UTF-8") from error
    except (OSError, csv.Error) as error:
        raise UsageProblem(f"cannot read {path}: {error}") from error
    missing = [name for name in ("file", "label") if name not in header]
    if missing:
        found = ", ".join(header) if header else "none"
        raise UsageProblem(f"{path} lacks the column(s) {', '.join(missing)} (it has: {found}); "
                           "the first line must name the columns, e.g. file,label")
    conversation_column = _pick_column(path, header, conversation_column, "conversation", "--conversation-column")
    transcript_column = _pick_column(path, header, transcript_column, "transcript", "--transcript-column")
    if not raw:
        raise UsageProblem(f"{path} has no rows under its header")
    folder = path.parent
    rows = []
    for number, record in enumerate(raw, start=2):
        record = {(k or "").strip(): (v if isinstance(v, str) else "") for k, v in record.items()}
        name = record.get("file", "").strip()
        conversation = record.get(conversation_column, "").strip() if conversation_column else ""
        transcript = record.get(transcript_column, "").strip() if transcript_column else ""
        rows.append(Row(line=number, file=name, path=(folder / name) if name else folder,
                        csv_label=record.get("label", "").strip(), conversation=conversation or None,
                        transcript=transcript or None))
    return LabelledMedia(rows, conversation_column, transcript_column)


def _pick_column(path: Path, header: list[str], asked: str | None, default: str, flag: str) -> str | None:
    if asked is None:
        return default if default in header else None
    if asked.strip().lower() == NO_COLUMN:
        return None
    if asked not in header:
        raise UsageProblem(f"{flag} {asked}: {path} has no such column (it has: {', '.join(header)})")
    return asked


def select_rows(rows: list[Row], model_labels: tuple[str, ...], label_map: dict[str, str],
                wanted: list[str] | None, limit: int | None) -> tuple[list[Row], dict[str, int]]:
    """Rows to score (label mapped to the checkpoint's spelling) and {label: rows skipped}."""
    spelling = {name.lower(): name for name in model_labels}
    if wanted is not None:
        unknown = [name for name in wanted if name not in spelling]
        if unknown:
            raise UsageProblem(f"--labels: {', '.join(unknown)} not among the checkpoint's labels "
                               f"({', '.join(model_labels)})")
    allowed = set(wanted) if wanted is not None else set(spelling)
    kept, skipped = [], {}
    for row in rows:
        mapped = label_map.get(row.csv_label.lower(), row.csv_label.lower())
        if mapped not in allowed:
            key = row.csv_label or "(empty)"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        if limit is not None and len(kept) >= limit:
            break
        row.label = spelling[mapped]
        kept.append(row)
    if not kept:
        found = ", ".join(sorted(skipped)) or "none"
        raise UsageProblem(f"no row has a label to score (found: {found}; the checkpoint predicts "
                           f"{', '.join(model_labels)}): map them with --label-map, e.g. calm=neutral")
    return kept, skipped


def group_conversations(rows: list[Row]) -> list[list[Row]]:
    """Rows of one conversation value together (in CSV order, conversations in order of first
    appearance); a row with no value is a conversation of its own."""
    groups: dict[object, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.conversation if row.conversation is not None else ("row", row.line), []).append(row)
    return list(groups.values())


def conversation_has_video(rows: list[Row]) -> bool:
    from ..sources import has_video_track

    return any(row.file and row.path.is_file() and has_video_track(row.path) for row in rows)


def refuse_mixed_conversations(conversations: list[list[Row]]) -> None:
    """A conversation is joined as one stream: all of its files video, or all of them sound only."""
    from ..sources import has_video_track

    for rows in conversations:
        present = [row for row in rows if row.file and row.path.is_file()]
        kinds = {has_video_track(row.path) for row in present}
        if len(rows) > 1 and len(kinds) > 1:
            video = next(row for row in present if has_video_track(row.path))
            raise UsageProblem(
                f"the conversation of {video.file} (line {video.line}) mixes video and sound-only files; "
                f"join them as one kind, or evaluate one file per session (--conversation-column {NO_COLUMN})")


# --------------------------------------------------------------------------------- replay
@dataclass
class FileResult:
    row: Row
    span: tuple[float, float] | None = None  # seconds in the replayed stream (conversation mode)
    events: list = field(default_factory=list)  # EmotionEvents mapped to this file
    dropped: int = 0
    error: str | None = None  # could not be replayed
    incomplete: str | None = None  # replayed, but damaged parts were skipped
    wall_s: float = 0.0  # its session's wall time (shared among a conversation's files)


@dataclass
class Engine:
    """What every session shares: loaded once."""

    model: object
    profile: object
    device: str
    disabled: tuple[str, ...]
    asr_spec: str
    language: str
    asr_timeout_factor: float | None
    min_transcript_confidence: float | None = None
    _asr_backends: dict = field(default_factory=dict)
    asr_used: dict = field(default_factory=dict)

    def asr_for(self, has_transcript: bool):
        """The session's speech-to-text, as momke-live chooses it (auto: none when the session
        has a transcript, else whisper), built once per spec. None when text is switched off:
        it would never be asked."""
        if "text" in self.disabled:
            spec = "none"
        elif self.asr_spec == "auto":
            spec = "none" if has_transcript else "whisper"
        else:
            spec = self.asr_spec
        if spec not in self._asr_backends:
            from ..asr import make_asr

            self._asr_backends[spec] = make_asr(None if spec == "none" else spec, language=self.language,
                                                device=self.device)
        return self._asr_backends[spec]

    def session(self, input_file: Path, transcript: list[dict] | None):
        from ..options import LiveOptions
        from ..session import LiveSession

        settings = {"asr_language": self.language}
        if self.asr_timeout_factor is not None:
            settings["asr_timeout_factor"] = self.asr_timeout_factor
        if self.min_transcript_confidence is not None:
            settings["min_transcript_confidence"] = self.min_transcript_confidence
        asr = self.asr_for(bool(transcript))
        session = LiveSession(options=LiveOptions(
            input_file=input_file, transcript=transcript or None, realtime=False, asr=asr, checkpoint=self.model,
            device=self.device, disabled=self.disabled, profile=self.profile, **settings))
        name = getattr(asr, "name", "asr") if asr is not None else "none"
        self.asr_used[name] = self.asr_used.get(name, 0) + 1  # sessions per speech-to-text
        return session


def replay(engine: Engine, input_file: Path, transcript: list[dict] | None) -> dict:
    """One session over one file: its events, completeness and timings."""
    began = time.perf_counter()
    session = engine.session(input_file, transcript)
    from ..events import DroppedUtteranceEvent, EmotionEvent, ReadyEvent

    emotions, dropped = [], []
    ready_at = ended_at = None
    with session:
        for event in session.events():
            if isinstance(event, EmotionEvent):
                emotions.append(event)
            elif isinstance(event, DroppedUtteranceEvent):
                dropped.append(event)
            elif isinstance(event, ReadyEvent):
                ready_at = time.perf_counter()
        ended_at = time.perf_counter()
    stopped_at = time.perf_counter()
    problems = None
    if getattr(session, "replay_complete", None) is False:
        problems = "; ".join(getattr(session, "replay_problems", None) or []) or "damaged data"
    ready_at = ready_at if ready_at is not None else ended_at
    return {"emotions": emotions, "dropped": dropped, "incomplete": problems,
            "wall_s": stopped_at - began, "overhead_s": (ready_at - began) + (stopped_at - ended_at)}


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def owner(event_start: float, event_end: float, spans: list[tuple[float, float]]) -> int | None:
    """Index of the span holding most of [start, end] (a zero-length event: the span holding its
    time); None when no span holds any of it."""
    best, best_overlap = None, 0.0
    for index, (start, end) in enumerate(spans):
        shared = overlap(event_start, event_end, start, end)
        if event_end <= event_start and start <= event_start <= end:
            shared = max(shared, 1e-9)
        if shared > best_overlap:
            best, best_overlap = index, shared
    return best


def not_there(row: Row) -> str | None:
    """Why a row's file cannot be read, before trying to decode it; None when it is there."""
    if not row.file:
        return "no file named on this line"
    if not row.path.exists():
        return "file not found"
    return None if row.path.is_file() else "not a file"


def run_single(engine: Engine, row: Row) -> tuple[list[FileResult], int, dict | None]:
    """One file replayed as it is (audio or video): ([its result], 0 stray events, the session's
    timings or None when it could not be replayed)."""
    result = FileResult(row, error=not_there(row))
    if result.error is not None:
        return [result], 0, None
    transcript = None
    if row.transcript and "text" not in engine.disabled:
        from ...extractors.media import load_audio

        try:
            samples, rate = load_audio(row.path)
        except ValueError as error:
            result.error = str(error)
            return [result], 0, None
        transcript = [{"start": 0.0, "end": round(len(samples) / rate, 3), "text": row.transcript}]
    try:
        outcome = replay(engine, row.path, transcript)
    except ValueError as error:  # LiveSession refuses a file it cannot open
        result.error = str(error)
        return [result], 0, None
    result.events = outcome["emotions"]
    result.dropped = len(outcome["dropped"])
    result.incomplete = outcome["incomplete"]
    result.wall_s = outcome["wall_s"]
    return [result], 0, _timing(outcome, 1)


def _timing(outcome: dict, files: int) -> dict:
    return {"wall_s": outcome["wall_s"], "overhead_s": outcome["overhead_s"], "files": files}


def run_conversation(engine: Engine, rows: list[Row], pause_s: float) -> tuple[list[FileResult], int, dict | None]:
    """The files of one conversation joined into one stream (pause_s of silence, and of a grey
    picture for videos, between them), replayed as one session; each event goes back to the file
    holding most of it. Returns the per-file results, the number of stray events (in no file's
    span) and the session's timings (None when no file could be decoded)."""
    import tempfile

    from ...extractors.media import SAMPLE_RATE, load_audio, resample_to_target

    results = [FileResult(row) for row in rows]
    pieces, transcript, spans, owners = [], [], [], []  # pieces: (file, samples at 16 kHz)
    position = 0.0  # seconds
    for result in results:
        row = result.row
        result.error = not_there(row)
        if result.error is not None:
            continue
        try:
            samples, rate = load_audio(row.path)
            if rate != SAMPLE_RATE:
                samples = resample_to_target(samples, rate).numpy()
        except ValueError as error:
            result.error = str(error)
            continue
        if pieces:
            position += pause_s
        result.span = (round(position, 3), round(position + len(samples) / SAMPLE_RATE, 3))
        position += len(samples) / SAMPLE_RATE
        pieces.append((row.path, samples))
        spans.append(result.span)
        owners.append(result)
        if row.transcript and "text" not in engine.disabled:
            transcript.append({"start": result.span[0], "end": result.span[1], "text": row.transcript})
    if not pieces:
        return results, 0, None
    with tempfile.TemporaryDirectory(prefix="momke-evaluate-") as folder:
        videos = conversation_has_video(rows)
        stream = _join_videos(pieces, pause_s, Path(folder)) if videos else _join_audio(pieces, pause_s, Path(folder))
        outcome = replay(engine, stream, transcript)
    stray = 0
    for event in outcome["emotions"]:
        index = owner(event.start, event.end, spans)
        if index is None:
            stray += 1
        else:
            owners[index].events.append(event)
    for event in outcome["dropped"]:
        index = owner(event.start, event.end, spans)
        if index is not None:
            owners[index].dropped += 1
    for result in owners:
        result.incomplete = outcome["incomplete"]
        result.wall_s = outcome["wall_s"]
    return results, stray, _timing(outcome, len(owners))


def _join_audio(pieces, pause_s: float, folder: Path) -> Path:
    """The pieces' 16 kHz samples with pause_s of silence between them, as one WAV."""
    import numpy as np
    import soundfile

    from ...extractors.media import SAMPLE_RATE

    gap = np.zeros(round(pause_s * SAMPLE_RATE), dtype=np.float32)
    joined = [part for k, (_, samples) in enumerate(pieces) for part in ([gap] if k else []) + [samples]]
    stream = folder / "conversation.wav"
    soundfile.write(str(stream), np.concatenate(joined).astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
    return stream


def _join_videos(pieces, pause_s: float, folder: Path) -> Path:
    """The videos back to back (ffmpeg), pause_s of silence and a grey picture between them, each
    cut or held to its sound's length so the spans computed from the sound stay exact; every
    picture scaled into the first one's frame. Matroska with PCM sound: nothing re-encodes it."""
    import shutil
    import subprocess

    from ...extractors.media import SAMPLE_RATE
    from ...extractors.media_files import FileVideoDevice

    if shutil.which("ffmpeg") is None:
        raise UsageProblem("joining the videos of a conversation needs ffmpeg on PATH")
    first = FileVideoDevice(pieces[0][0])
    first.open()
    try:
        height, width = first.read()[0].shape[:2]
    finally:
        first.close()
    width, height, fps = width - width % 2, height - height % 2, 15
    inputs, filters, labels = [], [], []
    for k, (path, samples) in enumerate(pieces):
        if k:  # the pause: a grey picture and silence
            inputs += ["-f", "lavfi", "-t", f"{pause_s}", "-i", f"color=c=gray:s={width}x{height}:r={fps}",
                       "-f", "lavfi", "-t", f"{pause_s}", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=mono"]
            v, a = _count_inputs(inputs) - 2, _count_inputs(inputs) - 1
            filters += [f"[{v}:v]format=yuv420p,setsar=1[v{len(labels)}]",
                        f"[{a}:a]aformat=sample_fmts=fltp:channel_layouts=mono[a{len(labels)}]"]
            labels.append(len(labels))
        inputs += ["-i", str(path)]
        index, seconds = _count_inputs(inputs) - 1, len(samples) / SAMPLE_RATE
        filters += [f"[{index}:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
                    f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p,"
                    f"tpad=stop_mode=clone:stop_duration={seconds:.3f},trim=duration={seconds:.6f},"
                    f"setpts=PTS-STARTPTS[v{len(labels)}]",
                    f"[{index}:a]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=mono,"
                    f"apad,atrim=duration={seconds:.6f},asetpts=PTS-STARTPTS[a{len(labels)}]"]
        labels.append(len(labels))
    filters.append("".join(f"[v{n}][a{n}]" for n in labels) + f"concat=n={len(labels)}:v=1:a=1[v][a]")
    stream = folder / "conversation.mkv"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex", ";".join(filters),
               "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
               "-c:a", "pcm_f32le", str(stream)]
    result = subprocess.run(command, capture_output=True, timeout=600, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"cannot join the conversation's videos: {message[-1] if message else 'ffmpeg failed'}")
    return stream


def _count_inputs(arguments: list[str]) -> int:
    return arguments.count("-i")


# --------------------------------------------------------------------------------- scoring
def file_probabilities(events, labels: tuple[str, ...]):
    """The duration-weighted mean of the events' fused probabilities, in `labels` order (equal
    weights when every event has zero length); None without events."""
    import numpy as np

    if not events:
        return None
    vectors = np.array([[float(e.probabilities.get(name, 0.0)) for name in labels] for e in events])
    weights = np.array([max(0.0, e.end - e.start) for e in events])
    if weights.sum() <= 0:
        weights = np.ones(len(events))
    return (weights[:, None] * vectors).sum(axis=0) / weights.sum()


def build_report(results: list[FileResult], labels: tuple[str, ...], stray: int, settings: dict,
                 skipped: dict[str, int], n_rows: int, timing: dict) -> dict:
    import numpy as np

    from ...models.calibration import expected_calibration_error
    from ...models.metrics import (
        classification_metrics,
        confusion_matrix,
        macro_f1,
        per_class_recall,
    )

    index = {name: i for i, name in enumerate(labels)}
    files, failures = [], []
    true_all, predicted_all, true_scored, predicted_scored, probabilities = [], [], [], [], []
    modality_counts: dict[str, int] = {}
    condition_counts: dict[str, int] = {}
    latencies = []
    for result in results:
        row = result.row
        if result.error is not None:
            failures.append({"file": row.file, "line": row.line, "label": row.label, "error": result.error})
            continue
        p = file_probabilities(result.events, labels)
        predicted = labels[int(np.argmax(p))] if p is not None else None
        true_all.append(index[row.label])
        predicted_all.append(index[predicted] if predicted is not None else -1)
        if p is not None:
            true_scored.append(index[row.label])
            predicted_scored.append(index[predicted])
            probabilities.append(p)
        used: dict[str, int] = {}
        for event in result.events:
            for m in event.modalities:
                used[m] = used.get(m, 0) + 1
                modality_counts[m] = modality_counts.get(m, 0) + 1
            condition = "+".join(m for m in MODALITIES if m in event.modalities) or "none"
            condition_counts[condition] = condition_counts.get(condition, 0) + 1
            total = (event.latency_ms or {}).get("total")
            if total is not None:
                latencies.append(float(total))
        files.append({
            "file": row.file, "line": row.line, "label": row.label, "csv_label": row.csv_label,
            "conversation": row.conversation, "predicted": predicted,
            "correct": None if predicted is None else predicted == row.label,
            "probabilities": None if p is None else {name: round(float(v), 6) for name, v in zip(labels, p)},
            "n_events": len(result.events), "n_dropped": result.dropped, "modalities": used,
            "span": list(result.span) if result.span is not None else None,
            "events": [{"start": e.start, "end": e.end, "label": e.label, "probabilities": e.probabilities,
                        "modalities": list(e.modalities), "transcript": e.transcript,
                        "transcript_confidence": getattr(e, "transcript_confidence", None),
                        "text_set_aside": getattr(e, "text_set_aside", None)} for e in result.events],
            "incomplete": result.incomplete, "wall_s": round(result.wall_s, 3),
        })
    n_replayed = len(true_all)
    n_scored = len(true_scored)
    report: dict = {
        "n_rows": n_rows,
        "n_skipped": sum(skipped.values()),
        "skipped_labels": skipped,
        "n_files": len(results),
        "n_failed": len(failures),
        "n_replayed": n_replayed,
        "n_scored": n_scored,
        "n_no_event": n_replayed - n_scored,
        "no_event_share": (n_replayed - n_scored) / n_replayed if n_replayed else None,
        "n_incomplete": sum(1 for r in results if r.error is None and r.incomplete),
        "stray_events": stray,
        "labels": list(labels),
    }
    metrics: dict = dict.fromkeys(("wa", "ua", "f1_macro", "f1_weighted", "ece"))
    per_class = {name: {"n": 0, "recall": None, "predicted": 0, "no_event": 0, "mean_p_true": None}
                 for name in labels}
    mean_probability = None
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    if n_scored:
        y, yhat, P = np.array(true_scored), np.array(predicted_scored), np.array(probabilities)
        basic = classification_metrics(y, yhat)
        metrics.update(wa=basic["wa"], ua=basic["ua"], f1_weighted=basic["f1"], f1_macro=macro_f1(y, yhat),
                       ece=expected_calibration_error(P, y))
        matrix = confusion_matrix(y, yhat, len(labels))
        for cls, recall in per_class_recall(y, yhat).items():
            per_class[labels[cls]]["recall"] = recall
            per_class[labels[cls]]["mean_p_true"] = float(P[y == cls, cls].mean())
        mean_probability = {name: float(P[:, i].mean()) for i, name in enumerate(labels)}
    if n_replayed:
        everything = classification_metrics(np.array(true_all), np.array(predicted_all))
        metrics.update(wa_all=everything["wa"], ua_all=everything["ua"])
    else:
        metrics.update(wa_all=None, ua_all=None)
    for cls, name in enumerate(labels):
        per_class[name]["n"] = int(sum(1 for t in true_all if t == cls))
        per_class[name]["predicted"] = int(sum(1 for t in predicted_scored if t == cls))
        per_class[name]["no_event"] = int(sum(1 for t, p in zip(true_all, predicted_all) if t == cls and p < 0))
    report["metrics"] = metrics
    report["per_class_recall"] = {name: per_class[name]["recall"] for name in labels if per_class[name]["n"]}
    report["per_class"] = per_class
    report["confusion"] = {"rows": "true", "columns": "predicted", "labels": list(labels),
                           "matrix": matrix.tolist(), "no_event": [per_class[n]["no_event"] for n in labels]}
    report["mean_probability"] = mean_probability
    report["modalities"] = {"events_using": modality_counts, "conditions": condition_counts}
    report["latency_ms"] = {"mean": float(np.mean(latencies)) if latencies else None,
                            "median": float(np.median(latencies)) if latencies else None}
    report["settings"] = settings
    report["timing"] = timing
    report["failures"] = failures
    report["files"] = files
    return _finite(report)


def _finite(value):
    """NaN and infinities -> None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _pct(value) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def format_table(report: dict) -> str:
    s, m = report["settings"], report["metrics"]
    labels = report["labels"]
    lines = [
        (f"{PROG}: {report['n_files']} file(s) from {s['csv']} · checkpoint {s['checkpoint']} · "
         f"privacy {','.join(s['privacy']) or 'none'} · asr {s['asr']} · {s['grouping']}"),
        f"  scored {report['n_scored']} / {report['n_replayed']} replayed "
        f"(no event: {report['n_no_event']}, {_pct(report['no_event_share']).strip()}); "
        f"failed {report['n_failed']}; skipped for their label {report['n_skipped']}"
        + (f"; stray events {report['stray_events']}" if s["grouping"] != "one session per file" else ""),
        "",
        (f"  WA {_pct(m['wa'])}   UA {_pct(m['ua'])}   macro F1 {_pct(m['f1_macro'])}   "
         f"weighted F1 {_pct(m['f1_weighted'])}   ECE {'-' if m['ece'] is None else format(m['ece'], '.3f')}"),
        f"  counting no-event files as wrong: WA {_pct(m['wa_all'])}   UA {_pct(m['ua_all'])}",
        "",
    ]
    width = max(10, *(len(n) for n in labels))
    header = "  " + "true \\ predicted".ljust(width + 8) + "".join(n[:8].rjust(9) for n in labels)
    lines.append(header + "  no event    n   recall  mean P(true)")
    for i, name in enumerate(labels):
        pc = report["per_class"][name]
        cells = "".join(str(v).rjust(9) for v in report["confusion"]["matrix"][i])
        mean_p = "-" if pc["mean_p_true"] is None else f"{pc['mean_p_true']:.3f}"
        lines.append(f"  {name.ljust(width + 8)}{cells}{str(pc['no_event']).rjust(10)}{str(pc['n']).rjust(5)}"
                     f"  {_pct(pc['recall'])}  {mean_p.rjust(12)}")
    if report["mean_probability"]:
        lines.append("  mean P over scored files: "
                     + ", ".join(f"{n} {p:.3f}" for n, p in report["mean_probability"].items()))
    used = report["modalities"]["conditions"]
    latency = report["latency_ms"]["mean"]
    lines.append("  events by modalities used: " + (", ".join(f"{k} {v}" for k, v in sorted(used.items())) or "none")
                 + (f" · mean latency {latency:.0f} ms" if latency is not None else ""))
    t = report["timing"]
    if t.get("mean_file_s") is None:
        lines.append(f"  time: loading {t['load_s']:.1f} s")
    else:
        first = " (one session: it includes loading the extractors)" if t["sessions"] == 1 else ""
        lines.append(f"  time: loading {t['load_s']:.1f} s, replays {t['replay_s']:.1f} s "
                     f"({t['mean_file_s']:.2f} s a file; session overhead {t['mean_overhead_s']:.2f} s a session{first})")
    for failure in report["failures"]:
        lines.append(f"  FAILED {failure['file']} (line {failure['line']}): {failure['error']}")
    for row in report["files"]:
        if row["incomplete"]:
            lines.append(f"  INCOMPLETE {row['file']}: {row['incomplete']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # argparse exits 2 on a usage error
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        return _main(args)
    except KeyboardInterrupt:
        print(f"{PROG}: stopped with Ctrl-C", file=sys.stderr)
        return EXIT_INTERRUPTED


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _main(args) -> int:
    # With --json, stdout carries the report alone: what C libraries or stray prints would
    # write there goes to stderr from the start.
    json_out = _JsonOut() if args.json else None
    try:
        return _evaluate(args, json_out)
    finally:
        if json_out is not None:
            json_out.close()
            if getattr(json_out, "reader_gone", False):  # `| head -c 100`: a normal way to stop
                discard_stdout()


def _evaluate(args, json_out) -> int:
    try:
        disabled = parse_privacy(args.privacy)
        if set(disabled) == set(MODALITIES):
            raise UsageProblem("--privacy: with every modality off there is nothing to score")
        check_asr(args.asr)
        label_map = parse_label_map(args.label_map)
        wanted = parse_label_list(args.labels)
        if args.report is not None:
            check_output_file("--report", args.report, "report.json", overwrite=args.overwrite)
        media = read_labels_csv(args.labels_csv, args.conversation_column, args.transcript_column)
        from .cli import check_device

        check_device(args.device)
        _say(args, f"{PROG}: loading the model and extractors…")
        began = time.perf_counter()
        from ...extractors.profiles import load_profile
        from ...extractors.runtime import pick_device
        from ...models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

        checkpoint = args.checkpoint if args.checkpoint is not None else DEFAULT_CHECKPOINT
        if not checkpoint.is_dir():
            raise UsageProblem(f"--checkpoint: {checkpoint} is not a checkpoint folder")
        device = str(pick_device(None if args.device == "auto" else args.device))
        model = load_checkpoint(checkpoint, device=device)
        config = model.config
        if config.task != "classification":
            raise UsageProblem(f"--checkpoint: {checkpoint} predicts a sentiment score; "
                               f"{PROG} scores classification checkpoints (class labels)")
        rows, skipped = select_rows(media.rows, tuple(config.labels), label_map, wanted, args.limit)
        grouped = media.conversation_column is not None
        conversations = group_conversations(rows) if grouped else [[row] for row in rows]
        refuse_mixed_conversations(conversations)
        profile = load_profile(config.feature_profile, device=device)
    except UsageProblem as problem:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as error:  # a broken checkpoint, a bad profile
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        print(f"{PROG}: error while loading: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURES

    engine = Engine(model=model, profile=profile, device=device, disabled=disabled, asr_spec=args.asr,
                    language=args.language, asr_timeout_factor=args.asr_timeout_factor,
                    min_transcript_confidence=args.min_transcript_confidence)
    load_s = time.perf_counter() - began
    results: list[FileResult] = []
    sessions: list[dict] = []
    stray = 0
    replay_began = time.perf_counter()
    from tqdm import tqdm

    with tqdm(total=len(rows), unit="file", file=sys.stderr, disable=args.quiet, desc=PROG) as progress:
        for group in conversations:
            try:
                if len(group) == 1:  # a file alone is replayed as it is (a video too)
                    found, lost, timed = run_single(engine, group[0])
                else:
                    found, lost, timed = run_conversation(engine, group, args.pause)
            except KeyboardInterrupt:
                raise
            except Exception as error:
                found = [FileResult(row, error=f"{type(error).__name__}: {error}") for row in group]
                lost, timed = 0, None
            results += found
            stray += lost
            if timed is not None:
                sessions.append(timed)
            progress.update(len(group))
    timing = session_timing(load_s, time.perf_counter() - replay_began, sessions)
    settings = {
        "csv": str(args.labels_csv),
        "checkpoint": checkpoint.name,
        "checkpoint_path": str(checkpoint),
        "feature_profile": config.feature_profile,
        "labels_scored": wanted if wanted is not None else list(config.labels),
        "label_map": label_map,
        "privacy": list(disabled),
        "asr": args.asr,
        "asr_used": dict(engine.asr_used),
        "language": args.language,
        "min_transcript_confidence": args.min_transcript_confidence,
        "transcript_column": media.transcript_column,
        "grouping": (f"conversations by column {media.conversation_column!r}" if grouped
                     else "one session per file"),
        "conversation_column": media.conversation_column,
        "pause_s": args.pause,
        "limit": args.limit,
        "device": device,
        "combination": "duration-weighted mean of the file's events' fused probabilities",
    }
    from ...models.cli_common import version

    settings["version"] = version()
    report = build_report(results, tuple(config.labels), stray, settings, skipped, len(media.rows), timing)
    return _write(args, report, json_out)


def session_timing(load_s: float, replay_s: float, sessions: list[dict]) -> dict:
    """Where the time went. The first session also loads the extractors' networks (they load
    lazily), so the per-session figures leave it out when there are others."""
    warm = sessions[1:] or sessions
    files = sum(s["files"] for s in warm)
    return {
        "load_s": round(load_s, 3),
        "replay_s": round(replay_s, 3),
        "sessions": len(sessions),
        "first_session_s": round(sessions[0]["wall_s"], 3) if sessions else None,
        # Mean wall time per file, and the part of it the session costs whatever the file: from
        # creating the LiveSession to its ReadyEvent, and from the last event to stop() returning.
        "mean_file_s": round(sum(s["wall_s"] for s in warm) / files, 3) if files else None,
        "mean_overhead_s": round(sum(s["overhead_s"] for s in warm) / len(warm), 3) if warm else None,
    }


def _write(args, report: dict, json_out) -> int:
    text = json.dumps(report, ensure_ascii=False, allow_nan=False)
    if args.report is not None:
        from ...extractors.runtime import write_text_atomic

        write_text_atomic(args.report, json.dumps(report, ensure_ascii=False, allow_nan=False, indent=1) + "\n")
    table = format_table(report)
    try:
        if json_out is not None:
            if not args.quiet:
                print(table, file=sys.stderr, flush=True)
            json_out.write(text)
        else:
            print(table, flush=True)
    except BrokenPipeError:  # the reader of stdout went away; the exit code still tells
        if json_out is None:
            discard_stdout()
        else:
            json_out.reader_gone = True
    if args.report is not None:
        _say(args, f"{PROG}: report written to {args.report}")
    if report["n_failed"]:
        print(f"{PROG}: {report['n_failed']} file(s) could not be replayed (listed under failures); "
              "the rest was scored", file=sys.stderr)
        return EXIT_FAILURES
    if report["n_scored"] == 0:
        print(f"{PROG}: no file produced an emotion event (no speech found?)", file=sys.stderr)
        return EXIT_FAILURES
    if report["n_incomplete"]:
        print(f"{PROG}: {report['n_incomplete']} replay(s) were incomplete (damaged parts skipped); "
              "what could be decoded was scored", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
