"""Readers that turn a corpus on disk into dialogues of utterance sources (no features yet).

Every reader returns `list[DialogueSource]`: dialogues in a stable order, utterances in
conversation order, each with whatever the corpus has (transcript, audio/video path and time
span, label, speaker). `momke extract` (extract_corpus.py) turns them into features.

Formats:
- manifest (our own, CSV or JSONL, one row per utterance; paths relative to the manifest):
  `dialogue` (required), `order` (int, else row order), `utterance` (id), `speaker`,
  `transcript`, `audio`, `video` (file paths; a video's sound is used when `audio` is empty),
  `start` / `end` (seconds inside the file; whole file when empty), `label`, `split`
  (train/valid/test), `session`.
- IEMOCAP 4-class transcripts JSONL (one dialogue per line; text only): `{"dialogue", "session",
  "split_in_source" (or "split"), "utterances": [{"id", "speaker", "text", "label"}]}`; session =
  the IEMOCAP session 1-5 (folds for leave-one-session-out), split = the record's own split.

`--format auto` tells the formats apart by content: a .jsonl whose records hold `utterances`
lists is the IEMOCAP layout, one whose records are manifest rows is a manifest; anything else is
an error, never a guess. Every reader error names the `--format` it was read as.
- MELD `{train,dev,test}_sent_emo.csv`: dialogue `<split>_dia<Dialogue_ID>`, text only,
  label = Emotion; dev -> "valid".
- EmoryNLP `emorynlp_{train,dev,test}_final.csv`: dialogue = season/episode/scene, text only.
- DailyDialog as annotated by RECCON, `dailydialog_{train,valid,test}.json` (whichever are there):
  `{dialogue id: [[{"turn", "speaker", "utterance", "emotion"}, ...]]}`, text only, in turn
  order, label = emotion as written (happiness, sadness, anger, ...; a few happy, sad, excited).
  The utterances are kept as tokenised in the file ("Don ' t"); normalise them for training
  (models/training/asr_text.py whisper_style).
- RAVDESS speech folder (`Actor_XX/03-01-EE-II-SS-RR-AA.flac`): audio only by default
  (`with_transcripts=True` adds the fixed sentence), speaker = actor, session = actor number
  (split by actor, never by clip). `group="clip"` (default) makes every clip its own
  one-utterance dialogue, since RAVDESS clips are not conversations; `group="actor"` puts all
  of an actor's clips, in file-name order, into one dialogue.

`map_labels` applies a label mapping (e.g. IEMOCAP's excited -> happy, or MELD's 7 emotions to 4);
unmapped labels become None (unlabeled, kept as context).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

SPLIT_NAMES = {"train": "train", "dev": "valid", "valid": "valid", "val": "valid", "test": "test"}
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                    "07": "disgust", "08": "surprised"}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
MANIFEST_COLUMNS = ("dialogue", "order", "utterance", "speaker", "transcript", "audio", "video", "start", "end",
                    "label", "split", "session")
FORMATS = ("manifest", "iemocap", "meld", "emorynlp", "dailydialog", "ravdess")


@dataclass
class UtteranceSource:
    id: str
    speaker: str = ""
    transcript: str | None = None
    audio: Path | None = None
    video: Path | None = None
    start: float | None = None
    end: float | None = None
    label: str | None = None


@dataclass
class DialogueSource:
    id: str
    utterances: list[UtteranceSource] = field(default_factory=list)
    split: str | None = None
    session: int | str | None = None

    @property
    def media_kinds(self) -> set[str]:
        """Which modalities this dialogue can give: "audio", "text", "visual"."""
        kinds = set()
        for u in self.utterances:
            if u.audio is not None or u.video is not None:
                kinds.add("audio")
            if u.video is not None:
                kinds.add("visual")
            if u.transcript is not None:
                kinds.add("text")
        return kinds


def detect_format(source: str | Path) -> str:
    """Guess a corpus format from a path (see the module docstring)."""
    path = Path(source)
    if path.is_dir():
        if list(path.glob("*_sent_emo.csv")):
            return "meld"
        if list(path.glob("emorynlp_*_final.csv")):
            return "emorynlp"
        if list(path.glob("dailydialog_*.json")):
            return "dailydialog"
        if list(path.glob("Actor_*/03-*.*")) or list(path.glob("03-*-*-*-*-*-*.*")):
            return "ravdess"
        raise ValueError(f"cannot tell which corpus {path} holds; pass --format")
    if not path.is_file():
        raise ValueError(f"corpus not found: {path}")
    if path.suffix == ".jsonl":
        return _jsonl_format(path)
    if path.suffix in (".csv", ".json"):
        return "manifest"
    raise ValueError(f"cannot tell which corpus {path} holds (expected .csv/.jsonl or a folder); pass --format")


def _jsonl_format(path: Path) -> str:
    """"iemocap" or "manifest", judged by the first record's shape; ValueError when it is neither."""
    with path.open(encoding="utf-8") as stream:
        first = next((line for line in stream if line.strip()), None)
    if first is None:
        raise ValueError(f"{path} is empty: no corpus to read (--format auto)")
    try:
        record = json.loads(first)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the first line is not JSON ({error}) (--format auto)") from error
    keys = sorted(record) if isinstance(record, dict) else []
    if isinstance(record, dict) and isinstance(record.get("utterances"), list) and "dialogue" in record:
        return "iemocap"
    if keys and "dialogue" in record and set(keys) <= set(MANIFEST_COLUMNS):
        return "manifest"
    raise ValueError(
        f"cannot tell which corpus {path} holds: its first record has keys {keys or type(record).__name__}. "
        f"A manifest row has 'dialogue' and any of {', '.join(MANIFEST_COLUMNS[1:])}; an IEMOCAP record has "
        "'dialogue' and a list of 'utterances'. Fix the file or pass --format manifest|iemocap"
    )


def read_corpus(source: str | Path, format: str = "auto", **options) -> list[DialogueSource]:
    format = detect_format(source) if format == "auto" else format
    readers = {"manifest": read_manifest, "iemocap": read_iemocap_jsonl, "meld": read_meld,
               "emorynlp": read_emorynlp, "dailydialog": read_dailydialog, "ravdess": read_ravdess}
    if format not in readers:
        raise ValueError(f"unknown corpus format {format!r}; expected one of {FORMATS} (--format)")
    try:
        dialogues = readers[format](source, **options)
    except (KeyError, TypeError, AttributeError, IndexError) as error:  # a structure the reader does not know
        raise ValueError(f"{source} does not look like --format {format} ({type(error).__name__}: {error})") from error
    except ValueError as error:
        raise ValueError(f"{error} (read as --format {format})") from error
    if not dialogues:
        raise ValueError(f"{source} holds no dialogues (read as --format {format})")
    return dialogues


def _split(value) -> str | None:
    if value in (None, ""):
        return None
    key = str(value).strip().lower()
    if key not in SPLIT_NAMES:
        raise ValueError(f"unknown split {value!r}; expected train, valid (dev) or test")
    return SPLIT_NAMES[key]


def _optional_float(value) -> float | None:
    return None if value in (None, "") else float(value)


def _session(value) -> int | str | None:
    if value in (None, ""):
        return None
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


def read_manifest(path: str | Path) -> list[DialogueSource]:
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as stream:
            rows = list(csv.DictReader(stream))
    elif path.suffix == ".json":  # one JSON list of rows
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise ValueError(f"{path}: a .json manifest is a list of rows (objects), got {type(rows).__name__}")
    else:
        with path.open(encoding="utf-8") as stream:
            rows = [json.loads(line) for line in stream if line.strip()]
    dialogues: dict[str, DialogueSource] = {}
    keyed: dict[str, list[tuple[float, int, UtteranceSource]]] = {}
    for number, row in enumerate(rows, start=2 if path.suffix == ".csv" else 1):
        if not isinstance(row, dict):
            raise ValueError(
                f"{path} row {number}: expected an object of manifest columns, got {type(row).__name__}")
        unknown = set(row) - set(MANIFEST_COLUMNS)
        if unknown:
            raise ValueError(f"{path} line {number}: unknown columns {sorted(unknown)}; known: {MANIFEST_COLUMNS}")
        dialogue_id = str(row.get("dialogue") or "").strip()
        if not dialogue_id:
            raise ValueError(f"{path} line {number}: the dialogue column is empty")

        def media(key, row=row):
            value = row.get(key)
            return None if value in (None, "") else (path.parent / str(value)).resolve()

        utterance = UtteranceSource(
            id=str(row.get("utterance") or f"{dialogue_id}_{len(keyed.get(dialogue_id, []))}"),
            speaker=str(row.get("speaker") or ""),
            transcript=None if row.get("transcript") in (None, "") else str(row["transcript"]),
            audio=media("audio"), video=media("video"),
            start=_optional_float(row.get("start")), end=_optional_float(row.get("end")),
            label=None if row.get("label") in (None, "") else str(row["label"]),
        )
        if utterance.audio is None and utterance.video is None and utterance.transcript is None:
            raise ValueError(f"{path} line {number}: an utterance needs a transcript, an audio or a video file")
        dialogue = dialogues.setdefault(dialogue_id, DialogueSource(dialogue_id, split=_split(row.get("split")),
                                                                    session=_session(row.get("session"))))
        if (_split(row.get("split")), _session(row.get("session"))) != (dialogue.split, dialogue.session):
            # A dialogue lives in one split: rows that disagree would leak it across splits.
            raise ValueError(f"{path} line {number}: dialogue {dialogue_id!r} has split/session "
                             f"{row.get('split')!r}/{row.get('session')!r} here but {dialogue.split!r}/"
                             f"{dialogue.session!r} on an earlier row")
        order = _optional_float(row.get("order"))
        keyed.setdefault(dialogue_id, []).append((order if order is not None else float(number), number, utterance))
    for dialogue_id, items in keyed.items():
        dialogues[dialogue_id].utterances = [u for _, _, u in sorted(items, key=lambda item: item[:2])]
    return list(dialogues.values())


def read_iemocap_jsonl(path: str | Path) -> list[DialogueSource]:
    dialogues = []
    with Path(path).open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict) or "dialogue" not in record or not isinstance(record.get("utterances"), list):
                raise ValueError(f"{path} line {number}: an IEMOCAP record has 'dialogue' and a list of 'utterances'")
            utterances = [UtteranceSource(id=str(u["id"]), speaker=u.get("speaker", ""), transcript=u.get("text", ""),
                                          label=u.get("label")) for u in record["utterances"]]
            # The record's own split (IEMOCAP: session 5 = test) is kept: validation must never
            # be drawn from test dialogues.
            split = _split(record.get("split", record.get("split_in_source")))
            dialogues.append(DialogueSource(str(record["dialogue"]), utterances, split=split,
                                            session=record.get("session")))
    return dialogues


def _fix_mojibake(text: str) -> str:
    """MELD's CSVs hold UTF-8 read as cp1252 in places ("Iâ€™m"); undo that where it applies."""
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _read_split_csvs(folder: str | Path, file_pattern: str, row_reader) -> list[DialogueSource]:
    """Shared by MELD and EmoryNLP: one CSV per split, one row per utterance.

    row_reader(split, row) -> (dialogue id, position in the dialogue, UtteranceSource).
    """
    folder = Path(folder)
    dialogues: list[DialogueSource] = []
    for split in ("train", "dev", "test"):
        path = folder / file_pattern.format(split=split)
        if not path.is_file():
            continue
        by_id: dict[str, DialogueSource] = {}
        positions: dict[str, list[int]] = {}
        with path.open(newline="", encoding="utf-8") as stream:
            for row in csv.DictReader(stream):
                dialogue_id, position, utterance = row_reader(split, row)
                by_id.setdefault(dialogue_id, DialogueSource(dialogue_id, split=SPLIT_NAMES[split]))
                by_id[dialogue_id].utterances.append(utterance)
                positions.setdefault(dialogue_id, []).append(position)
        for dialogue_id, dialogue in by_id.items():
            order = np.argsort(positions[dialogue_id], kind="stable")
            dialogue.utterances = [dialogue.utterances[i] for i in order]
        dialogues += by_id.values()
    if not dialogues:
        raise ValueError(f"no {file_pattern.format(split='*')} files in {folder}")
    return dialogues


def _meld_row(split: str, row: dict) -> tuple[str, int, UtteranceSource]:
    dialogue_id = f"{split}_dia{int(row['Dialogue_ID'])}"
    position = int(row["Utterance_ID"])
    return dialogue_id, position, UtteranceSource(
        id=f"{dialogue_id}_utt{position}", speaker=row["Speaker"], transcript=_fix_mojibake(row["Utterance"]),
        label=row["Emotion"].strip().lower())


def _emorynlp_row(split: str, row: dict) -> tuple[str, int, UtteranceSource]:
    dialogue_id = f"{split}_s{int(row['Season']):02d}e{int(row['Episode']):02d}c{int(row['Scene_ID']):02d}"
    position = int(row["Utterance_ID"])
    speakers = re.findall(r"'([^']*)'|\"([^\"]*)\"", row["Speaker"])  # a Python list written as text
    return dialogue_id, position, UtteranceSource(
        id=f"{dialogue_id}_u{position:03d}", speaker=" & ".join(a or b for a, b in speakers) or row["Speaker"],
        transcript=row["Utterance"], label=row["Emotion"].strip().lower())


def read_meld(folder: str | Path) -> list[DialogueSource]:
    return _read_split_csvs(folder, "{split}_sent_emo.csv", _meld_row)


def read_emorynlp(folder: str | Path) -> list[DialogueSource]:
    return _read_split_csvs(folder, "emorynlp_{split}_final.csv", _emorynlp_row)


def read_dailydialog(folder: str | Path) -> list[DialogueSource]:
    folder = Path(folder)
    dialogues: list[DialogueSource] = []
    for split in ("train", "valid", "test"):
        path = folder / f"dailydialog_{split}.json"
        if not path.is_file():
            continue
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, dict):
            raise ValueError(f"{path}: expected an object of dialogue id -> [[turns]]")
        for dialogue_id, conversations in records.items():
            turns = sorted((t for conversation in conversations for t in conversation), key=lambda t: int(t["turn"]))
            utterances = [UtteranceSource(id=f"{split}_{dialogue_id}_t{int(t['turn']):02d}", speaker=str(t.get("speaker", "")),
                                          transcript=str(t["utterance"]), label=str(t["emotion"]).strip().lower() or None)
                          for t in turns]
            dialogues.append(DialogueSource(f"{split}_{dialogue_id}", utterances, split=split))
    if not dialogues:
        raise ValueError(f"no dailydialog_{{train,valid,test}}.json files in {folder}")
    return dialogues


def read_ravdess(folder: str | Path, group: str = "clip", with_transcripts: bool = False) -> list[DialogueSource]:
    if group not in ("clip", "actor"):
        raise ValueError(f"RAVDESS group must be 'clip' or 'actor', got {group!r}")
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".flac", ".wav")
                   and re.fullmatch(r"\d\d(-\d\d){6}", p.stem))
    if not files:
        raise ValueError(f"no RAVDESS clips (NN-NN-NN-NN-NN-NN-NN.flac) under {folder}")
    dialogues: dict[str, DialogueSource] = {}
    for path in files:
        _, _, emotion, _, statement, _, actor = path.stem.split("-")
        utterance = UtteranceSource(id=path.stem, speaker=f"actor{actor}", audio=path.resolve(),
                                    transcript=RAVDESS_STATEMENTS.get(statement) if with_transcripts else None,
                                    label=RAVDESS_EMOTIONS.get(emotion))
        dialogue_id = path.stem if group == "clip" else f"actor{actor}"
        dialogues.setdefault(dialogue_id, DialogueSource(dialogue_id, session=int(actor))).utterances.append(utterance)
    return list(dialogues.values())


def parse_label_map(text: str | None) -> dict[str, str] | None:
    """"excited=happy,happy=happy" or a JSON file path -> {source label: target label}."""
    if not text:
        return None
    path = Path(text)
    if path.suffix == ".json" and path.is_file():
        mapping = json.loads(path.read_text(encoding="utf-8"))
    else:
        mapping = {}
        for pair in text.split(","):
            if "=" not in pair:
                raise ValueError(f"label map entries look like source=target, got {pair!r}")
            source, target = (part.strip() for part in pair.split("=", 1))
            mapping[source] = target
    return {str(k).lower(): str(v) for k, v in mapping.items()}


def map_labels(dialogues: list[DialogueSource], mapping: dict[str, str] | None) -> list[DialogueSource]:
    """Apply a label mapping (case-insensitive source labels); unmapped labels become None."""
    if mapping is None:
        return dialogues
    return [replace(d, utterances=[replace(u, label=mapping.get((u.label or "").lower())) for u in d.utterances])
            for d in dialogues]
