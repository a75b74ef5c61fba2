"""Emotional-speech corpora for the voice path, served as the app serves them.

Every clip is turned into features the way the live app would hear it: the file's samples
(optionally an augmented variant, models/training/augment.py) go through the live segmenter
(extractors/served.py, fed in the replay's chunks) and the audio extractor reads the utterance
the segmenter cut, its longest where it cut several; a clip in which the app hears no speech
gives none. A voice path trained on whole studio files (half of them silence) and served the
VAD's cut read the share of silence as emotion: 38.5 % UA through the app on RAVDESS actors
17-20, against 79 % on whole files.

Corpora (each folder under the shared data; labels mapped by the recipe's label maps):
- `ravdess`: RAVDESS speech, `Actor_XX/03-01-EE-II-SS-RR-AA.flac` (English, 20 actors);
- folders with a `labels.csv` (`file,label,speaker,...`): nEMO (Polish, 9 speakers) and the
  Korean emotional TTS sample (15 speakers), or any corpus laid out the same way.

Splits are by speaker, never by clip. Training clips get `copies` augmented variants besides the
clean one; the clips of one speaker are shuffled into pseudo-dialogues of `clips_per_dialogue`
(one voice over time, as live), `train_repeats` times with new shuffles, each repeat reading
the next variant. Features are cached per (clip bytes, variant, serving options, profile).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...extractors.base import Utterance
from ...extractors.media import SAMPLE_RATE
from ...extractors.served import ServingOptions, speech_segments_of
from ..training.augment import augment
from ..training.data import Conversation, CorpusMetadata, CorpusWriter, FeatureCorpus, load_corpus
from .corpus_readers import RAVDESS_EMOTIONS

AUGMENT_VERSION = 1  # bump when augment() changes, so cached variants are not reused


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str  # mapped to the recipe's classes
    speaker: str  # "<corpus>-<speaker>"
    split: str


def read_clips(corpus: str, folder: Path, settings: dict[str, Any], label_map: dict[str, str]) -> list[Clip]:
    """The corpus's clips with a mapped label, each with its speaker's split."""
    mapping = {k.lower(): v for k, v in label_map.items()}
    if corpus == "ravdess":
        rows = [(path, RAVDESS_EMOTIONS.get(path.stem.split("-")[2]), path.stem.split("-")[-1])
                for path in sorted(folder.glob("Actor_*/03-*.flac"))]
    else:
        table = folder / "labels.csv"
        if not table.is_file():
            raise ValueError(f"{table} not found: a speech corpus folder needs labels.csv (file,label,speaker)")
        with table.open(encoding="utf-8", newline="") as stream:
            rows = [(folder / row["file"], row["label"], row["speaker"]) for row in csv.DictReader(stream)]
    valid, test = set(settings.get("valid_speakers", ())), set(settings.get("test_speakers", ()))
    clips = []
    for path, label, speaker in rows:
        mapped = mapping.get(str(label).lower())
        if mapped is None:
            continue
        split = "test" if speaker in test else "valid" if speaker in valid else "train"
        clips.append(Clip(path, mapped, f"{corpus}-{speaker}", split))
    if not clips:
        raise ValueError(f"no clip of {folder} has a label in the recipe's map for {corpus}")
    return clips


class ServedVoice:
    """Clip (+ variant) -> the audio features the app computes from it, cached on disk."""

    def __init__(self, extractor, cache, options: ServingOptions = ServingOptions(), seed: int = 0) -> None:
        self.extractor, self.cache, self.options, self.seed = extractor, cache, options, seed

    def features(self, clip: Clip, variant: int) -> np.ndarray | None:
        import soundfile

        data = clip.path.read_bytes()
        key = hashlib.sha256(data + json.dumps(
            [variant, self.seed, AUGMENT_VERSION, self.options.to_dict()], sort_keys=True).encode()).hexdigest()
        hit, vector = self.cache.get("audio", key)
        if hit:
            return vector
        samples, rate = soundfile.read(str(clip.path), dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        if variant:  # seeded by the clip's bytes, so a variant is the same in every run
            rng = np.random.default_rng([self.seed, variant, int(hashlib.sha1(data).hexdigest()[:8], 16)])
            samples = augment(samples, rng, rate)
        segments = speech_segments_of(samples, rate, self.options)
        vector = None
        if segments:
            longest = max(segments, key=lambda s: s.end - s.start)
            vector = self.extractor.extract(Utterance(start=longest.start, end=longest.end, audio=longest.audio,
                                                      sample_rate=SAMPLE_RATE))
        self.cache.put("audio", key, vector)
        return vector


def speech_corpus(
    corpus: str, clips: Sequence[Clip], voice: ServedVoice, grouping: dict[str, Any], labels: Sequence[str],
    out: Path, metadata: CorpusMetadata, progress: bool = True,
) -> FeatureCorpus:
    """Pseudo-dialogues of served features (see the module docstring), written to `out` once."""
    writer = CorpusWriter(out, metadata)
    if writer.dialogue_ids:
        return load_corpus(out)
    from tqdm.auto import tqdm

    copies, repeats = int(grouping.get("copies", 0)), int(grouping.get("train_repeats", 1))
    size, seed = int(grouping["clips_per_dialogue"]), int(grouping.get("seed", 0))
    by_speaker: dict[tuple[str, str], list[Clip]] = {}
    for clip in clips:
        by_speaker.setdefault((clip.split, clip.speaker), []).append(clip)
    total = sum(len(c) * (1 + copies if split == "train" else 1) for (split, _), c in by_speaker.items())
    bar = tqdm(total=total, unit="clip", desc=f"serving {corpus}", disable=not progress, file=sys.stderr)
    missing = 0
    try:
        for (split, speaker), own in sorted(by_speaker.items()):
            variants = range(1 + copies) if split == "train" else range(1)
            vectors = {}
            for variant in variants:
                for clip in own:
                    vectors[clip.path, variant] = voice.features(clip, variant)
                    missing += vectors[clip.path, variant] is None
                    bar.update(1)
            for repeat in range(repeats if split == "train" else 1):
                variant = repeat % len(variants)
                rng = np.random.default_rng([seed, int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16), repeat])
                order = [own[i] for i in rng.permutation(len(own)) if vectors[own[i].path, variant] is not None]
                for k in range(0, len(order), size):
                    group = order[k:k + size]
                    ids = [f"{c.path.stem}#{variant}" for c in group]
                    writer.write(Conversation(
                        dialogue_id=f"{speaker}-r{repeat}-{k // size}", utterance_ids=ids, speakers=[speaker] * len(group),
                        features={"audio": np.stack([vectors[c.path, variant] for c in group]).astype(np.float32)},
                        present=np.tile([True, False, False], (len(group), 1)),
                        labels=np.array([list(labels).index(c.label) for c in group], dtype=np.int64),
                        split=split, session=speaker,
                    ))
    finally:
        bar.close()
    if missing:
        print(f"{corpus}: the app hears no speech in {missing} clip variant(s); left out", file=sys.stderr)
    return load_corpus(out)
