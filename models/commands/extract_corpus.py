"""`momke extract`: a corpus of media / transcripts -> the feature-corpus format of momke.models.training.data.

    momke extract SOURCE --out FEATURES_DIR [--format auto|manifest|iemocap|meld|emorynlp|ravdess]
                  [--task auto|classification|regression]
                  [--profile lite|research] [--modalities a,t,v] [--labels happy,sad,...]
                  [--label-map excited=happy,...] [--cache DIR | --no-cache]

- SOURCE is read by models/commands/corpus_readers.py (a manifest CSV/JSONL of utterances, or one of the
  real corpora's own layouts). By default every modality the source has is extracted.
- Media are served as the live app serves them (extractors/served.py): each file is decoded,
  resampled and cut by the live segmenter, and its frames kept as the camera's are; an utterance
  gets the served utterance that overlaps its span most (a whole file: its longest). Where the
  app would hear no speech, the utterance has no audio (and no visual, unless the file has no
  sound: then the frames of its span). A model trained on this corpus sees what it is served.
- Labels are class names (`--task classification`) or numeric scores such as sentiment in
  [-3, 3] (`--task regression`: float labels, metrics Acc2 / F1 / MAE / Corr / Acc7). The
  default, `auto`, picks regression when every label is a number and some are fractional or
  negative, and says so on stderr.
- Output: one .npz per dialogue plus corpus.json, written by `models.training.data.CorpusWriter`, one
  dialogue at a time and atomically: an interrupted run, started again with the same arguments,
  skips the dialogues already written and carries on.
- Cache: one file per (profile, modality, content): media keyed by the SHA-256 of the file's
  bytes (plus the time span), text by the SHA-256 of the transcript. A second run, even into
  another output folder, reuses every vector. Default folder: $MOMKE_CACHE_DIR or
  ~/.cache/momke/features.
- Bad input (a file that cannot be read or decoded, non-finite samples) is reported on stderr
  and in `<out>/extract_report.json`; the utterance keeps its other modalities, an utterance
  left with nothing because of errors is dropped, and the rest of the corpus is written. The
  exit code is then 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...extractors.base import FeatureProfile, Utterance
from ...extractors.media_files import has_audio_track
from ...extractors.modalities import MODALITIES, parse_condition
from ...extractors.runtime import atomic_write, file_sha256, write_text_atomic
from ...extractors.served import ServingOptions, camera_frames, frames_between, served_utterances
from ..training.data import Conversation, CorpusMetadata, CorpusWriter, remove_corpus
from .corpus_readers import (
    DialogueSource,
    UtteranceSource,
    map_labels,
    parse_label_map,
    read_corpus,
)
from .extract_options import build_parser, check_paths

REPORT_FILE = "extract_report.json"


def default_cache_dir() -> Path:
    return Path(os.environ.get("MOMKE_CACHE_DIR") or Path.home() / ".cache" / "momke" / "features")


class FeatureCache:
    """Feature vectors on disk, one file per key; a stored "missing" is an empty .none file."""

    def __init__(self, directory: str | Path, profile_key: str) -> None:
        self.root = Path(directory) / profile_key
        self.hits = self.misses = 0

    def _path(self, modality: str, key: str) -> Path:
        return self.root / modality / key[:2] / key

    def get(self, modality: str, key: str) -> tuple[bool, np.ndarray | None]:
        path = self._path(modality, key)
        if path.with_suffix(".none").exists():
            self.hits += 1
            return True, None
        try:
            vector = np.load(path.with_suffix(".npy"), allow_pickle=False)
        except (OSError, ValueError):
            self.misses += 1
            return False, None
        self.hits += 1
        return True, vector

    def put(self, modality: str, key: str, vector: np.ndarray | None) -> None:
        path = self._path(modality, key)
        with atomic_write(path.with_suffix(".npy" if vector is not None else ".none")) as stream:
            if vector is not None:
                np.save(stream, np.asarray(vector, dtype=np.float32), allow_pickle=False)


class _NoCache(FeatureCache):
    def __init__(self) -> None:
        self.hits = self.misses = 0

    def get(self, modality, key):
        self.misses += 1
        return False, None

    def put(self, modality, key, vector):
        pass


def profile_key(profile: FeatureProfile, options: dict | None = None) -> str:
    """Names the features a profile makes: its name, dims and the options it was built with."""
    description = json.dumps({"name": profile.name, "dims": list(profile.dims), "options": options or {}},
                             sort_keys=True, default=str)
    return f"{profile.name}-{hashlib.sha1(description.encode()).hexdigest()[:12]}"


@dataclass
class ExtractionReport:
    written: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # already in the output folder, skipped
    failures: list[dict] = field(default_factory=list)
    dropped_utterances: list[str] = field(default_factory=list)
    # Labels found in the corpus but not among the class names: those utterances stay unlabeled.
    unknown_labels: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0

    def to_dict(self) -> dict:
        return {"written": len(self.written), "resumed": len(self.resumed), "failures": self.failures,
                "dropped_utterances": self.dropped_utterances, "unknown_labels": self.unknown_labels,
                "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses}


class _FileHasher:
    """SHA-256 of file contents, computed once per file per run."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._known:
            self._known[path] = file_sha256(path)
        return self._known[path]


def _media_key(hasher: _FileHasher, path: Path, utterance: UtteranceSource, extra: str = "") -> str:
    return hashlib.sha256(f"{hasher(path)}|{utterance.start}|{utterance.end}|{extra}".encode()).hexdigest()


def _text_key(transcript: str) -> str:
    return hashlib.sha256(transcript.encode("utf-8")).hexdigest()


class _MediaReader:
    """Each media file served once, as the live app serves it (extractors/served.py: decoding,
    16 kHz, the live segmenter and its padding, the camera's frame rate and checks), keeping the
    last file's utterances so that the spans of one recording are served once."""

    def __init__(self, options: ServingOptions = ServingOptions()) -> None:
        self.options = options
        self._last: tuple[tuple, str, list] | None = None  # (file key, "speech" | "frames", what was served)

    def utterance(self, source: UtteranceSource, modality: str) -> Utterance | None:
        """The served utterance that overlaps the source's span most (a whole file: its longest),
        or None when the app would find no speech there. A video without sound is judged by the
        frames of the span, as the app judges a camera with no speech to cut by."""
        audio_path = source.audio or source.video
        key = (audio_path, source.video, modality)
        if self._last is None or self._last[0] != key:
            self._last = (key, *self._serve(audio_path, source.video, modality))
        _, kind, served = self._last
        start, end = source.start or 0.0, math.inf if source.end is None else source.end
        if kind == "frames":  # no sound track: the span's frames
            frames = served
            last = frames[-1][0] if frames else start
            picked = frames_between(frames, start, min(end, last))
            return Utterance(start=start, end=min(end, last), frames=[f for _, f in picked],
                             frame_times=[t for t, _ in picked], id=source.id)
        overlaps = [min(end, u.end) - max(start, u.start) for u in served]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best < 0 or overlaps[best] <= 0:
            return None
        return replace(served[best], id=source.id)

    def _serve(self, audio_path: Path, video_path: Path | None, modality: str) -> tuple[str, list]:
        """("speech", the served utterances), or ("frames", the camera's frames) for a video without
        sound: decoded once per file, however many spans it has."""
        if modality == "visual" and not has_audio_track(audio_path):
            return "frames", camera_frames(video_path, self.options)
        return "speech", served_utterances(audio_path, self.options, (modality,), video=video_path)


def extract_corpus(
    dialogues: Sequence[DialogueSource],
    profile: FeatureProfile,
    out_dir: str | Path,
    modalities: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    cache: FeatureCache | None = None,
    description: str = "",
    extra: dict | None = None,
    progress: bool = True,
    task: str = "classification",
    overwrite: bool = False,
) -> ExtractionReport:
    """Extract every dialogue not yet in `out_dir` and write it there (see the module docstring).

    task: "classification" (labels are class names) or "regression" (labels are numeric scores,
    e.g. sentiment in [-3, 3]; `labels` must then be None). overwrite: remove the corpus already
    in `out_dir` and start over, instead of resuming it.
    """
    from tqdm.auto import tqdm

    available = set().union(*(d.media_kinds for d in dialogues)) if dialogues else set()
    modalities = [m for m in MODALITIES if m in (available if modalities is None else set(modalities))]
    if not modalities:
        raise ValueError("nothing to extract: the corpus has none of the requested modalities")
    if task == "regression":
        if labels:
            raise ValueError("--labels names classes; a regression corpus has numeric scores, not classes")
        labels = ()
        regression_scores(dialogues)  # refuses a label that is not a number before any work
    elif labels is None:
        labels = sorted({u.label for d in dialogues for u in d.utterances if u.label is not None})
    metadata = CorpusMetadata(profile.name, profile.dims, tuple(labels), task, description,
                              {**(extra or {}), "modalities": modalities})
    if overwrite:  # only now, after every check of the input: a mistake there loses nothing
        remove_corpus(out_dir)
    writer = CorpusWriter(out_dir, metadata)
    cache = cache or _NoCache()
    report = ExtractionReport()
    label_index = {label: i for i, label in enumerate(labels)} if task == "classification" else None
    hasher, media = _FileHasher(), _MediaReader()
    todo = [d for d in dialogues if not writer.has(d.id)]
    report.resumed = [d.id for d in dialogues if writer.has(d.id)]
    bar = tqdm(total=sum(len(d.utterances) for d in todo), unit="utt", desc="extracting", disable=not progress,
               file=sys.stderr)
    try:
        for dialogue in todo:
            conversation = _extract_dialogue(dialogue, profile, modalities, label_index, cache, hasher, media, report)
            bar.update(len(dialogue.utterances))
            if conversation is None:
                continue
            writer.write(conversation)
            report.written.append(dialogue.id)
    finally:
        bar.close()
        report.cache_hits, report.cache_misses = cache.hits, cache.misses
        _write_report(Path(out_dir), report)
    return report


def _extract_dialogue(dialogue, profile, modalities, label_index, cache, hasher, media, report):
    count = len(dialogue.utterances)
    vectors: dict[str, list[np.ndarray | None]] = {m: [None] * count for m in modalities}
    failed = [False] * count

    def fail(index: int, modality: str, error: Exception) -> None:
        source = dialogue.utterances[index]
        path = source.transcript if modality == "text" else (source.audio or source.video)
        report.failures.append({"dialogue": dialogue.id, "utterance": source.id, "modality": modality,
                                "path": str(path), "error": str(error)})
        print(f"momke extract: skipped {modality} of {dialogue.id}/{source.id}: {error}", file=sys.stderr)
        failed[index] = True

    for modality in modalities:
        extractor = profile.extractor(modality)
        pending: list[tuple[int, str]] = []
        for index, source in enumerate(dialogue.utterances):
            try:
                key = _cache_key(modality, source, hasher, media)
            except (OSError, ValueError) as error:
                fail(index, modality, error)
                continue
            if key is None:
                continue
            hit, vector = cache.get(modality, key)
            if hit:
                vectors[modality][index] = vector
            else:
                pending.append((index, key))
        if modality == "text":
            # Text batches well and cannot fail on a file; audio/visual go one by one.
            batch = extractor.extract_batch([Utterance(transcript=dialogue.utterances[i].transcript) for i, _ in pending])
            results = list(zip(pending, batch))
        else:
            results = []
            for index, key in pending:
                try:
                    utterance = media.utterance(dialogue.utterances[index], modality)
                    results.append(((index, key), None if utterance is None else extractor.extract(utterance)))
                except (OSError, ValueError) as error:
                    fail(index, modality, error)
        for (index, key), vector in results:
            cache.put(modality, key, vector)
            vectors[modality][index] = vector

    keep = [i for i in range(count) if not failed[i] or any(vectors[m][i] is not None for m in modalities)]
    report.dropped_utterances += [f"{dialogue.id}/{dialogue.utterances[i].id}" for i in range(count) if i not in keep]
    if not keep:
        return None
    present = np.zeros((len(keep), len(MODALITIES)), dtype=bool)
    features = {}
    for column, modality in enumerate(MODALITIES):
        if modality not in modalities:
            continue
        rows = [vectors[modality][i] for i in keep]
        present[:, column] = [v is not None for v in rows]
        if present[:, column].any():
            dim = profile.extractor(modality).dim
            features[modality] = np.stack([v if v is not None else np.zeros(dim, np.float32) for v in rows])
    utterances = [dialogue.utterances[i] for i in keep]
    if label_index is None:  # regression: the score itself, NaN = unlabeled
        labels = np.array([np.nan if u.label is None else float(u.label) for u in utterances], dtype=np.float32)
    else:
        for u in utterances:
            if u.label is not None and u.label not in label_index:
                report.unknown_labels[u.label] = report.unknown_labels.get(u.label, 0) + 1
        labels = np.array([label_index.get(u.label, -1) for u in utterances], dtype=np.int64)
    return Conversation(
        dialogue_id=dialogue.id, utterance_ids=[u.id for u in utterances], speakers=[u.speaker for u in utterances],
        features=features, present=present, labels=labels, split=dialogue.split, session=dialogue.session,
    )


def regression_scores(dialogues: Sequence[DialogueSource]) -> list[float]:
    """Every label as a finite number; ValueError naming the first labels that are not."""
    scores, bad = [], []
    for dialogue in dialogues:
        for u in dialogue.utterances:
            if u.label is None:
                continue
            try:
                value = float(u.label)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                bad.append(f"{dialogue.id}/{u.id}: {u.label!r}")
            scores.append(value)
    if bad:
        raise ValueError(f"--task regression needs numeric labels; {len(bad)} are not, e.g. {', '.join(bad[:3])}")
    return scores


def infer_task(dialogues: Sequence[DialogueSource]) -> tuple[str, str | None]:
    """(task, message) for `--task auto`: regression when every label is a number and some are
    fractional or negative (scores such as sentiment); integers 0, 1, ... stay class names."""
    labels = [u.label for d in dialogues for u in d.utterances if u.label is not None]
    try:
        scores = np.array([float(label) for label in labels])
    except ValueError:
        return "classification", None
    if not labels or not np.isfinite(scores).all():
        return "classification", None
    if (scores != np.round(scores)).any() or (scores < 0).any():
        return "regression", (f"the {len(labels)} labels are numbers (from {scores.min():g} to {scores.max():g}): "
                               "extracting a regression corpus; pass --task classification to read them as class names")
    return "classification", (f"the labels are whole numbers {sorted(set(labels))[:8]}: reading them as class names; "
                              "pass --task regression if they are scores")


def _cache_key(modality: str, source: UtteranceSource, hasher, media: _MediaReader) -> str | None:
    """None when the utterance has nothing for this modality."""
    if modality == "text":
        return None if source.transcript is None else _text_key(source.transcript)
    path = source.video if modality == "visual" else (source.audio or source.video)
    if path is None:
        return None
    # Served features depend on both files (sound cuts, picture shows) and on how they are served.
    other = source.audio if modality == "visual" and source.audio is not None else None
    extra = json.dumps([media.options.to_dict(), hasher(other) if other else None], sort_keys=True)
    return _media_key(hasher, path, source, extra)


def _write_report(out_dir: Path, report: ExtractionReport) -> None:
    write_text_atomic(out_dir / REPORT_FILE, json.dumps(report.to_dict(), indent=1))


def _profile_options(args) -> dict:
    if args.profile == "lite":
        return {}
    layer = args.audio_layer if args.audio_layer == "features" else int(args.audio_layer)
    return {"audio_path": args.audio_path, "text_path": args.text_path, "audio_layer": layer,
            "audio_pooling": args.audio_pooling, "text_pooling": args.text_pooling,
            "text_layers": tuple(int(i) for i in args.text_layers.split(","))}


def main(argv: Sequence[str] | None = None) -> int:
    from ...extractors.profiles import load_profile
    from .corpus_readers import detect_format

    args = build_parser().parse_args(argv)
    try:
        check_paths(args)
        format = detect_format(args.source) if args.format == "auto" else args.format
        reader_options = {"group": args.ravdess_group, "with_transcripts": args.with_transcripts} \
            if format == "ravdess" else {}
        dialogues = read_corpus(args.source, format, **reader_options)
        dialogues = map_labels(dialogues, parse_label_map(args.label_map))[: args.limit]
        task = args.task
        if task == "auto":
            task, message = infer_task(dialogues)
            if message:
                print(f"momke extract: {message}", file=sys.stderr)
        options = _profile_options(args)
        profile = load_profile(args.profile, device=args.device, **options)
        cache = None if args.no_cache else FeatureCache(args.cache or default_cache_dir(), profile_key(profile, options))
        report = extract_corpus(
            dialogues, profile, args.out,
            modalities=parse_condition(args.modalities) if args.modalities else None,
            labels=args.labels.split(",") if args.labels else None, cache=cache,
            description=args.description or f"{format} corpus {args.source}",
            extra={"source": str(args.source), "format": format}, progress=not args.quiet, task=task,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError) as error:  # bad input: one line, exit 2, no traceback
        print(f"momke extract: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"momke extract: {len(report.written)} dialogue(s) written, {len(report.resumed)} already there, "
          f"{len(report.failures)} failure(s), cache {report.cache_hits} hit(s) / {report.cache_misses} miss(es) "
          f"-> {args.out}", file=sys.stderr)
    if report.unknown_labels:
        print(f"momke extract: labels that are not class names, left unlabeled: {report.unknown_labels}",
              file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
