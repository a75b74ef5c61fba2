"""Media as the live app serves it: the one way from a media file to per-utterance inputs.

A model learns what it is shown. The live replay (realtime/) and the corpus builders (`momke
extract`, the default recipe) therefore take a file to utterances through the same steps, with
the same objects and settings:

1. audio read in chunks by `FileAudioDevice` (media_files.py) and resampled to 16 kHz chunk by
   chunk by `StreamResampler`, as the capture thread does;
2. cut into utterances by `UtteranceSegmenter` (silero-vad, the live settings and padding): the
   audio extractor hears the speech the app cut, never the whole studio file with its silences;
3. video frames read by `FileVideoDevice` and kept by `FrameGate` (at most `camera_fps` a
   second; corrupt, black and frozen frames are left out, as the camera's health check does);
4. per utterance, at most `max_frames` of the frames inside it, spread evenly (`pick_frames`).

`served_utterances(path)` runs the four steps on a whole file; `tests/test_served_path.py`
holds its features equal to those a `LiveSession` replay of the same file computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .base import Utterance
from .media import SAMPLE_RATE
from .media_files import CHUNK_S, FileAudioDevice, FileVideoDevice, has_video_track
from .resample import StreamResampler


@dataclass(frozen=True)
class ServingOptions:
    """How the live app cuts speech and samples the camera (the live defaults)."""

    threshold: float = 0.5
    min_silence_s: float = 0.4
    min_speech_s: float = 0.25
    max_utterance_s: float = 12.0
    pad_s: float = 0.1
    camera_fps: float = 5.0
    max_frames: int = 3

    def segmenter(self):
        from .segmentation import UtteranceSegmenter

        return UtteranceSegmenter(threshold=self.threshold, min_silence_s=self.min_silence_s,
                                  min_speech_s=self.min_speech_s, max_utterance_s=self.max_utterance_s,
                                  pad_s=self.pad_s)

    def to_dict(self) -> dict:
        return asdict(self)


class FrameGate:
    """Which camera frames are kept: at most `fps` a second, and none that is corrupt, black
    (lens covered) or frozen (unchanged for `frozen_s`). Owns its state; `reset()` forgets it."""

    def __init__(self, fps: float = 5.0, frozen_s: float = 2.0, black_level: float = 8.0) -> None:
        self.min_interval = 1.0 / fps
        self.frozen_s = frozen_s
        self.black_level = black_level
        self.reset()

    def reset(self) -> None:
        self._last_kept = -float("inf")
        self._thumbnail = None
        self._same_since: float | None = None

    def admit(self, frame, t: float) -> tuple[bool, str | None]:
        """(keep, problem): problem says why a frame due now is unusable; frames arriving faster
        than `fps` are passed over without a problem."""
        if t - self._last_kept < self.min_interval - 1e-6:
            return False, None
        problem = self.check(frame, t)
        if problem:
            return False, problem
        self._last_kept = t
        return True, None

    def check(self, frame, t: float) -> str | None:
        """None for a usable frame, else why it is not."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 \
                or frame.shape[0] < 8 or frame.shape[1] < 8:
            shape = getattr(frame, "shape", None)
            return f"corrupt frame (shape {shape}, dtype {getattr(frame, 'dtype', type(frame).__name__)})"
        thumbnail = frame[:: max(1, frame.shape[0] // 32), :: max(1, frame.shape[1] // 32)].astype(np.float32)
        if thumbnail.mean() < self.black_level:
            return "black frames (lens covered or camera dark)"
        if self._thumbnail is not None and self._thumbnail.shape == thumbnail.shape \
                and float(np.abs(self._thumbnail - thumbnail).mean()) < 0.5:
            if self._same_since is None:
                self._same_since = t
            if t - self._same_since >= self.frozen_s:
                return f"frozen frames (unchanged for over {self.frozen_s:g} s)"
        else:
            self._same_since = None
        self._thumbnail = thumbnail
        return None


def pick_frames(inside: Sequence[tuple[float, np.ndarray]], max_frames: int) -> list[tuple[float, np.ndarray]]:
    """At most `max_frames` of an utterance's (time, frame) pairs, spread evenly over it: the
    whole utterance is seen at a bounded cost (face detection is the costliest step on a CPU)."""
    if len(inside) <= max_frames:
        return list(inside)
    picks = np.linspace(0, len(inside) - 1, max_frames).round().astype(int)
    return [inside[i] for i in picks]


def speech_segments(path: str | Path, options: ServingOptions = ServingOptions()) -> list:
    """The utterances the live app cuts from a file's audio: `SpeechSegment`s (start, end on the
    file's clock, the 16 kHz samples the extractor hears). ValueError when it cannot be read."""
    device = FileAudioDevice(path)
    try:
        device.open()
    except Exception as error:  # soundfile and FFmpeg raise many kinds
        raise ValueError(f"cannot read {path}: {error}") from error

    def chunks():
        while True:
            try:
                yield device.read()
            except EOFError:
                return

    try:
        return _segmented(chunks(), lambda: device.sample_rate, options)
    finally:
        device.close()


def speech_segments_of(samples: np.ndarray, sample_rate: int, options: ServingOptions = ServingOptions()) -> list:
    """`speech_segments` of audio already in memory (e.g. a training clip after augmentation),
    fed in the replay's chunks: the same segments as the file it came from would give."""
    samples = np.asarray(samples, dtype=np.float32)
    step = max(1, round(CHUNK_S * sample_rate))
    chunks = ((samples[i:i + step], i / sample_rate) for i in range(0, len(samples), step))
    return _segmented(chunks, lambda: sample_rate, options)


def _segmented(chunks, sample_rate, options: ServingOptions) -> list:
    """(samples, t) chunks at sample_rate() -> 16 kHz, as the capture thread resamples them, ->
    the segmenter, as the segmentation loop feeds it; then the end of the stream."""
    segmenter, resampler, segments = options.segmenter(), None, []
    for samples, t in chunks:
        if resampler is None or resampler.in_rate != sample_rate():
            resampler = StreamResampler(sample_rate(), SAMPLE_RATE)
        segments += segmenter.push(resampler.process(np.asarray(samples, dtype=np.float32)), t)
    return segments + segmenter.flush()


def camera_frames(path: str | Path, options: ServingOptions = ServingOptions()) -> list[tuple[float, np.ndarray]]:
    """The (time, RGB frame) pairs the live app keeps from a video file (none without a video track)."""
    if not has_video_track(path):
        return []
    device, gate, kept = FileVideoDevice(path), FrameGate(options.camera_fps), []
    device.open()
    try:
        while True:
            try:
                frame, t = device.read()
            except EOFError:
                break
            if gate.admit(frame, t)[0]:
                kept.append((t, frame))
    finally:
        device.close()
    return kept


def served_utterances(path: str | Path, options: ServingOptions = ServingOptions(),
                      modalities: Sequence[str] = ("audio", "visual"), video: str | Path | None = None) -> list[Utterance]:
    """A media file -> the utterances the live app would judge: per speech segment its audio (if
    "audio" is asked for) and the frames inside it (if "visual" is; from `video` when the picture
    is in another file than the sound). Times on the file's clock."""
    frames = camera_frames(video or path, options) if "visual" in modalities else []
    utterances = []
    for segment in speech_segments(path, options):
        picked = frames_between(frames, segment.start, segment.end, options)
        utterances.append(Utterance(
            audio=segment.audio if "audio" in modalities else None, sample_rate=SAMPLE_RATE,
            frames=[f for _, f in picked], frame_times=[t for t, _ in picked],
            start=segment.start, end=segment.end,
        ))
    return utterances


def frames_between(frames: Sequence[tuple[float, np.ndarray]], start: float, end: float,
                   options: ServingOptions = ServingOptions()) -> list[tuple[float, np.ndarray]]:
    """The frames an utterance from start to end is judged by (as the segmentation loop takes them)."""
    return pick_frames([(t, f) for t, f in frames if start <= t <= end], options.max_frames)
