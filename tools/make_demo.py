"""Builds the bundled demo conversation: assets/demo/conversation.mp4 + transcript.json.

Synthetic on purpose, so the project may redistribute it: each line is spoken by espeak-ng
(voice, pitch, speed and loudness varied per line so the prosody differs), lines are separated
by ~1 s pauses. The picture fits the words: during the two happy lines the camera shows a
smiling face (scikit-image's `astronaut`, a public-domain NASA portrait, with a slow pan and
zoom so that consecutive frames differ); during the other lines it shows a shared screen with no
face (a drawn slide), so the visual path is missing there rather than smiling at bad news.
It shows the pipeline working end to end on a machine with no camera or microphone.

Needs espeak-ng and ffmpeg on PATH (both installed by .ci/setup) and scikit-image.
Run from anywhere:  python tools/make_demo.py [--out-dir assets/demo]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16000
FPS = 12
WIDTH, HEIGHT = 320, 240
LEAD_IN_S = 0.6
PAUSE_S = 1.1
TAIL_S = 0.8
# Pauses inside a spoken line (commas, sentence ends) longer than this are shortened, so a
# voice-activity segmenter with a ~0.4 s minimum silence sees each line as one utterance.
MAX_INNER_PAUSE_S = 0.2


@dataclass(frozen=True)
class Line:
    text: str
    emotion: str  # what the words express; for SOURCE.md only, never a label the model sees
    voice: str
    pitch: int  # espeak-ng -p, 0..99
    speed: int  # espeak-ng -s, words per minute
    amplitude: int  # espeak-ng -a, 0..200
    face: bool = False  # the camera shows the smiling face during this line (else a slide)


# Two speakers: A (female variant), B (male variant).
SCRIPT = (
    Line("Hi, thanks for meeting me. I brought the report from last week.",
         "neutral", "en-us+f3", 50, 165, 100),
    Line("Oh wonderful, we got the grant! I am so happy, this is the best news all year!",
         "happy", "en-us+m3", 80, 200, 150, face=True),
    Line("I wish I could celebrate. My old dog died this morning and I feel so empty and alone.",
         "sad", "en-us+f3", 25, 120, 60),
    Line("And then the landlord yelled at me again! It is completely unfair and I am furious!",
         "angry", "en-us+f3", 60, 215, 190),
    Line("I am so sorry. That is really heartbreaking.",
         "sad", "en-us+m3", 20, 115, 65),
    Line("Let us look at the schedule for tomorrow. The meeting starts at nine.",
         "neutral", "en-us+m3", 45, 160, 100),
    Line("Thank you, really. Talking with you makes me feel much better!",
         "happy", "en-us+f3", 75, 185, 140, face=True),
)


def synthesize(line: Line, workdir: Path, index: int) -> np.ndarray:
    """One line as float32 mono at SAMPLE_RATE, leading/trailing silence removed."""
    wav = workdir / f"line{index}.wav"
    subprocess.run(
        ["espeak-ng", "-v", line.voice, "-p", str(line.pitch), "-s", str(line.speed),
         "-a", str(line.amplitude), "-w", str(wav), line.text],
        check=True,
    )
    audio, rate = sf.read(wav, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = resample_poly(audio, SAMPLE_RATE, rate).astype(np.float32)
    return squeeze_silences(audio)


def squeeze_silences(audio: np.ndarray) -> np.ndarray:
    """Trims the ends and shortens inner pauses to MAX_INNER_PAUSE_S (10 ms energy frames)."""
    hop = SAMPLE_RATE // 100
    n_frames = len(audio) // hop
    frames = audio[: n_frames * hop].reshape(n_frames, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    voiced = rms > max(1e-3, 0.02 * rms.max())
    idx = np.flatnonzero(voiced)
    if idx.size == 0:
        raise ValueError("espeak-ng produced silence")
    first, last = idx[0], idx[-1]
    keep_max = int(MAX_INNER_PAUSE_S * 100)
    pieces, run = [], 0
    for f in range(first, last + 1):
        run = 0 if voiced[f] else run + 1
        if run <= keep_max:
            pieces.append(frames[f])
    return np.concatenate(pieces)


def build_audio(workdir: Path) -> tuple[np.ndarray, list[dict]]:
    """The whole conversation's audio and its transcript with start/end times in seconds."""
    chunks = [np.zeros(int(LEAD_IN_S * SAMPLE_RATE), np.float32)]
    transcript, t = [], LEAD_IN_S
    for i, line in enumerate(SCRIPT):
        speech = synthesize(line, workdir, i)
        chunks.append(speech)
        end = t + len(speech) / SAMPLE_RATE
        transcript.append({"start": round(t, 3), "end": round(end, 3), "text": line.text})
        pause = PAUSE_S if i < len(SCRIPT) - 1 else TAIL_S
        chunks.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        t = end + pause
    audio = np.concatenate(chunks)
    # Peak-normalise the whole conversation once, keeping the loudness differences between lines.
    audio = (0.9 * audio / np.abs(audio).max()).astype(np.float32)
    return audio, transcript


def slide():
    """A shared-screen frame with no face: a title and a bar chart, drawn."""
    import cv2

    image = np.full((HEIGHT, WIDTH, 3), 245, np.uint8)
    cv2.rectangle(image, (0, 0), (WIDTH, 36), (40, 70, 120), -1)
    cv2.putText(image, "Quarterly report", (12, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    for k, height in enumerate((60, 95, 80, 130, 150)):
        x = 40 + 52 * k
        cv2.rectangle(image, (x, 210 - height), (x + 32, 210), (70, 130, 180), -1)
    cv2.line(image, (30, 210), (WIDTH - 20, 210), (80, 80, 80), 1)
    return image


def frames(duration_s: float, face_spans: list[tuple[float, float]]):
    """RGB uint8 frames: the astronaut portrait (slow pan/zoom around the face) inside
    `face_spans` (seconds, the pause before a line included), else the slide."""
    import cv2
    from skimage import data

    image = data.astronaut()  # 512x512, face centred near (225, 120)
    shared_screen = slide()
    cx0, cy0 = 225.0, 140.0
    n = int(np.ceil(duration_s * FPS))
    for i in range(n):
        t = i / FPS
        if not any(start <= t <= end for start, end in face_spans):
            # A pointer moves over the slide, as on a shared screen: identical frames would read
            # as a frozen camera.
            frame = shared_screen.copy()
            cv2.circle(frame, (int(60 + 100 * (1 + np.sin(t / 1.7))), int(120 + 40 * np.sin(t / 1.1))), 5, (220, 40, 40), -1)
            yield frame
            continue
        zoom = 1.0 + 0.08 * np.sin(2 * np.pi * t / 9.0)
        w, h = 300.0 / zoom, 225.0 / zoom
        cx = cx0 + 14 * np.sin(2 * np.pi * t / 7.0)
        cy = cy0 + 8 * np.sin(2 * np.pi * t / 5.0)
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        crop = image[max(y0, 0): y0 + int(h), max(x0, 0): x0 + int(w)]
        yield cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def encode(audio: np.ndarray, face_spans: list[tuple[float, float]], out: Path, workdir: Path) -> None:
    wav = workdir / "conversation.wav"
    sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS),
        "-i", "-", "-i", str(wav),
        "-c:v", "libx264", "-preset", "slow", "-crf", "30", "-pix_fmt", "yuv420p", "-g", str(2 * FPS),
        "-c:a", "aac", "-b:a", "48k", "-ac", "1", "-ar", str(SAMPLE_RATE),
        "-map_metadata", "-1", "-fflags", "+bitexact", "-movflags", "+faststart", "-shortest",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for frame in frames(len(audio) / SAMPLE_RATE, face_spans):
        proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("ffmpeg failed to encode the demo video")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "assets" / "demo")
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (run `bash .ci/setup`)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        audio, transcript = build_audio(workdir)
        face_spans = [(item["start"] - PAUSE_S / 2, item["end"] + PAUSE_S / 2)
                      for item, line in zip(transcript, SCRIPT) if line.face]
        encode(audio, face_spans, args.out_dir / "conversation.mp4", workdir)
    (args.out_dir / "transcript.json").write_text(json.dumps(transcript, indent=1) + "\n")
    print(f"{len(transcript)} utterances, {len(audio) / SAMPLE_RATE:.1f} s -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
