"""Shared helpers for the realtime tests: test media made from real recordings, a small real
MoMKE for the lite profile, the lite extractors loaded once per test process, fake devices."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from momke.extractors.media import SAMPLE_RATE as RATE
from synth_speech import RAVDESS_SENTENCES, ravdess_clips


def speech_bounds(audio: np.ndarray, threshold_db: float = -35.0) -> tuple[float, float]:
    """First and last 10 ms frame louder than threshold_db below the clip's peak, in seconds."""
    hop = RATE // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9)
    loud = np.flatnonzero(level > level.max() + threshold_db)
    return loud[0] * hop / RATE, (loud[-1] + 1) * hop / RATE


def make_conversation(directory: Path, clips: list[Path], pause_s: float = 1.5, video: bool = True,
                      transcript: bool = True) -> dict:
    """RAVDESS clips joined by pauses (a wav, or an mp4 with a moving astronaut face).

    Returns {"path", "transcript" (path or None), "utterances": [(speech_start, speech_end, text)]}.
    """
    import soundfile as sf

    pieces, utterances, t = [np.zeros(int(0.5 * RATE), np.float32)], [], 0.5
    for clip in clips:
        audio, rate = sf.read(str(clip), dtype="float32")
        assert rate == RATE
        start, end = speech_bounds(audio)
        text = RAVDESS_SENTENCES[clip.stem.split("-")[4]]
        utterances.append((t + start, t + end, text))
        pieces += [audio, np.zeros(int(pause_s * RATE), np.float32)]
        t += (len(audio) + int(pause_s * RATE)) / RATE
    audio = np.concatenate(pieces)
    wav = directory / "conversation.wav"
    sf.write(str(wav), audio, RATE)
    result = {"path": wav, "transcript": None, "utterances": utterances, "duration": len(audio) / RATE}
    if transcript:
        path = directory / "transcript.json"
        path.write_text(json.dumps([{"start": s, "end": e, "text": x} for s, e, x in utterances]))
        result["transcript"] = path
    if video:
        result["path"] = mux_face_video(directory, wav, len(audio) / RATE)
    return result


def face_frames(count: int, size: tuple[int, int] = (240, 320), seed: int = 0):
    """The astronaut portrait, gently panning so consecutive frames differ (RGB uint8)."""
    import cv2
    from skimage import data

    image = data.astronaut()  # 512x512 RGB, public domain (NASA)
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(count):
        dx, dy = 20 + 8 * np.sin(i / 7.0), 10 + 6 * np.cos(i / 5.0)
        crop = image[int(dy): int(dy) + 330, int(dx) + 60: int(dx) + 60 + 440]
        frame = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
        noise = rng.integers(-3, 4, frame.shape, dtype=np.int16)
        yield np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def mux_face_video(directory: Path, wav: Path, duration: float, fps: int = 10) -> Path:
    import cv2

    silent = directory / "face.avi"
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for frame in face_frames(int(np.ceil(duration * fps))):
        writer.write(frame[:, :, ::-1].copy())
    writer.release()
    out = directory / "conversation.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(silent), "-i", str(wav), "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-c:a", "aac", "-ar", "16000", "-ac", "1",
         "-shortest", str(out)],
        check=True,
    )
    return out


@functools.cache
def lite_profile():
    """The lite extractors, loaded (and warmed) once per test process."""
    from momke.extractors.profiles import load_profile

    return load_profile("lite", device="cpu")


def small_model(dims=None, seed: int = 0):
    """A small, real (untrained) causal MoMKE reading the lite profile's features."""
    import torch
    from momke.models.config import MoMKEConfig
    from momke.models.momke import MoMKE

    torch.manual_seed(seed)
    if dims is None:
        from momke.extractors.profiles import profile_dims

        dims = profile_dims("lite")
    config = MoMKEConfig(feature_dims=tuple(dims), hidden_dim=32, num_blocks=1, router_hidden_dim=32,
                         dropout=0.0, context_mode="causal", feature_profile="lite")
    return MoMKE(config).eval()


def session_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("momke-") and t.is_alive()]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ------------------------------------------------------------------------------------------------
# Cheap extractors for fault-injection tests (the real ones are exercised by the e2e tests)

from momke.extractors.base import FeatureProfile, ModalityExtractor

FAKE_DIMS = (4, 8, 3)


class SpyExtractor(ModalityExtractor):
    """Simple real statistics of its modality; records what it was given; can be told to fail."""

    def __init__(self, modality: str, dim: int, record: bool = True) -> None:
        self.modality, self.dim = modality, dim
        self.record = record  # False: count calls only (a soak must not keep every utterance)
        self.calls: list = []
        self.fail_on: dict[int, str] = {}  # call index -> "raise" | "nan" | "none"
        self.warmups = 0  # warm-up calls (the session loads extractors before the first utterance)
        self.warm_up_s = 0.0  # how long a warm-up takes (a network loading)
        self.extract_s = 0.0  # how long an utterance takes (a slow network)

    def extract(self, utterance):
        if utterance.id == "warm-up":
            self.warmups += 1
            time.sleep(self.warm_up_s)
            return None
        time.sleep(self.extract_s)
        index = len(self.calls)
        self.calls.append(utterance if self.record else None)
        mode = self.fail_on.get(index)
        if mode == "raise":
            raise RuntimeError("injected extractor failure")
        if mode == "nan":
            return np.full(self.dim, np.nan, np.float32)
        if mode == "none":
            return None
        if self.modality == "audio":
            a = utterance.audio
            return np.array([a.mean(), a.std(), np.abs(a).max(), len(a) / RATE], np.float32)
        if self.modality == "text":
            codes = np.frombuffer(utterance.transcript.encode()[:64].ljust(64), np.uint8).astype(np.float32)
            return codes.reshape(8, 8).mean(axis=1) / 255.0
        return np.mean([f.reshape(-1, 3).mean(axis=0) for f in utterance.frames], axis=0).astype(np.float32) / 255.0


def spy_profile(record: bool = True) -> FeatureProfile:
    return FeatureProfile("spy", *(SpyExtractor(m, d, record) for m, d in zip(("audio", "text", "visual"), FAKE_DIMS)))


def spy_model():
    import torch
    from momke.models.config import MoMKEConfig
    from momke.models.momke import MoMKE

    torch.manual_seed(0)
    config = MoMKEConfig(feature_dims=FAKE_DIMS, hidden_dim=16, num_blocks=1, router_hidden_dim=16,
                         dropout=0.0, context_mode="causal", feature_profile="spy")
    return MoMKE(config).eval()


class FakeMicrophone:
    """A live microphone delivering a recording at real-time pace, at `rate` (resampled by the
    session); `raise_at` block indices raise a device error, `zeros_from` switches to silence."""

    live = True
    interruptible = True
    read_timeout_s = 0.5

    def __init__(self, audio: np.ndarray, rate: int = 48_000, block_s: float = 0.032, raise_at=(), stall_at=None):
        import torch
        import torchaudio.functional as AF

        self.sample_rate = rate
        self.audio = AF.resample(torch.from_numpy(audio), RATE, rate).numpy() if rate != RATE else audio
        self.block = int(rate * block_s)
        self.block_s = block_s
        self.raise_at = set(raise_at)
        self.stall_at = stall_at
        self.index = 0
        self.opens = 0
        self.is_open = False
        self._closed = threading.Event()
        self._next = None

    def open(self):
        self.opens += 1
        self.is_open = True
        self._closed.clear()
        self._next = time.monotonic()

    def read(self):
        if not self.is_open:
            raise RuntimeError("closed")
        i = self.index
        self.index += 1
        if i in self.raise_at:
            raise OSError("injected: device unplugged")
        if self.stall_at is not None and i == self.stall_at:
            self._closed.wait(3.0)  # a read that hangs until the device is closed
        self._next += self.block_s
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        chunk = self.audio[i * self.block: (i + 1) * self.block]
        if len(chunk) < self.block:
            chunk = np.zeros(self.block, np.float32)
        return chunk, None

    def close(self):
        self.is_open = False
        self._closed.set()


class CountingCamera:
    """A live camera that counts how often it is opened."""

    live = True
    interruptible = False
    read_timeout_s = 1.0

    def __init__(self):
        self.opens = 0
        self.frames = face_frames(10_000)

    def open(self):
        self.opens += 1

    def read(self):
        time.sleep(0.05)
        return next(self.frames), None

    def close(self):
        pass


def replay_session(conversation: dict, profile: FeatureProfile | None = None, read_transcript: bool = False,
                   **options):
    """A LiveSession replaying `conversation` as fast as it can on the spy model and profile, with no
    ASR unless `asr` is given. read_transcript: its transcript file gives the words said."""
    from momke.realtime import LiveSession

    options.setdefault("asr", "none")
    if read_transcript:
        options.setdefault("transcript", conversation["transcript"])
    return LiveSession(input_file=conversation["path"], realtime=False, checkpoint=spy_model(),
                       profile=profile or spy_profile(), **options)


def all_events(session) -> list:
    """Run a session to its end and return its events, once its threads have all ended."""
    with session:
        events = list(session.events())
    assert wait_for(lambda: session_threads() == [], 5), session_threads()
    return events
