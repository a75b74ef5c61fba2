"""benchmarks/served_accuracy.py: the matched tri-modal media it makes, and which files a set holds."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from served_accuracy import (
    FRAME_H,
    FRAME_W,
    Item,
    balanced_order,
    conversation_order,
    make_matched_video,
)


def _streams(path: Path) -> dict:
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=codec_type,codec_name,width,height,sample_rate,channels,duration",
                            "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}


def test_matched_video_is_the_clip_with_a_moving_face(tmp_path):
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg is not installed")
    import cv2
    import soundfile
    from momke.extractors.served import FrameGate

    rate, seconds = 16000, 2.5
    t = np.arange(int(rate * seconds)) / rate
    clip = tmp_path / "clip.flac"
    soundfile.write(str(clip), (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    out = make_matched_video(clip, face, tmp_path / "item.mp4")

    streams = _streams(out)
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (FRAME_W, FRAME_H)
    assert streams["audio"]["codec_name"] == "aac"
    assert (int(streams["audio"]["sample_rate"]), streams["audio"]["channels"]) == (16000, 1)
    for kind in ("video", "audio"):
        assert abs(float(streams[kind]["duration"]) - seconds) < 0.15, (kind, streams[kind]["duration"])
    assert not list(tmp_path.glob("*.partial.mp4"))

    # The camera health check keeps every frame (the face drifts: never "frozen").
    gate, capture, problems, frames = FrameGate(), cv2.VideoCapture(str(out)), [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        problems.append(gate.admit(frame[:, :, ::-1].copy(), frames / 15)[1])
        frames += 1
    assert frames >= 30 and not any(problems)

    before = out.stat().st_mtime_ns  # an existing video is kept
    assert make_matched_video(clip, face, out) == out and out.stat().st_mtime_ns == before


def test_sets_pick_balanced_files_and_whole_conversations():
    items = [Item(Path(f"{speaker}-{label}-{k}.flac"), label, speaker)
             for speaker in ("s1", "s2", "s3") for label in ("happy", "sad", "neutral", "angry") for k in range(3)]
    labels = ["happy", "sad", "neutral", "angry"]
    order = balanced_order(items, labels, "x")
    assert sorted(order, key=str) == sorted(items, key=str) and order == balanced_order(items, labels, "x")
    assert [i.label for i in order[:8]] == labels * 2  # the first N are class-balanced

    full = conversation_order(items, None)
    assert sorted(full, key=str) == sorted(items, key=str)
    assert [i.speaker for i in full] == sorted(i.speaker for i in items)  # one speaker after another
    assert [i.path for i in full[:12]] != sorted(i.path for i in items if i.speaker == "s1")  # shuffled
    limited = conversation_order(items, 8)
    assert [i.speaker for i in limited] == ["s1"] * 4 + ["s2"] * 4
    assert limited[:4] == full[:4]
