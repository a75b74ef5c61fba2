"""The converted mini-Xception on FER2013's public test, and the visual extractor's speed.

    python benchmarks/fer2013_accuracy.py [--data DIR] [--repeats 10] [--threads N]

1. Accuracy: 7-class accuracy over the 3,589 public-test faces (the original model's known
   figure is ~65-66 %), and on the faces labelled happy / sad / neutral / angry, the accuracy
   with the argmax restricted to those 4 classes (the default checkpoint's label set), plus
   its unweighted (mean per-class) accuracy. The faces go through
   `VisualExtractor.expression_probabilities`, the path FER2013 training features take.
2. Speed: `VisualExtractor.extract` on a 4 s utterance of 1280x720 frames at 30 fps (the
   extractor samples 12 of them at its default 3 per second), each holding a real face
   (scikit-image's astronaut, scaled into the frame as a webcam user at arm's length would be).
   Detection and classification are timed apart as well.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from momke.extractors.base import Utterance
from momke.extractors.visual import VisualExtractor

FOUR_CLASSES = ("happy", "sad", "neutral", "angry")


def default_data_dir() -> Path:
    env = os.environ.get("MOMKE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def accuracy_report(extractor: VisualExtractor, images: np.ndarray, labels: np.ndarray) -> list[str]:
    start = time.perf_counter()
    probs = extractor.expression_probabilities(images)
    seconds = time.perf_counter() - start
    classes = extractor.classes
    lines = [f"public_test faces: {len(images)} ({seconds:.1f} s, {1000 * seconds / len(images):.2f} ms/face)"]
    lines.append(f"7-class accuracy: {100 * np.mean(probs.argmax(1) == labels):.2f} %")
    recalls = [np.mean(probs[labels == c].argmax(1) == c) for c in range(len(classes))]
    lines.append("7-class recall: " + ", ".join(f"{n} {100 * r:.1f}" for n, r in zip(classes, recalls)))

    keep_ids = [classes.index(n) for n in FOUR_CLASSES]
    subset = np.isin(labels, keep_ids)
    restricted = np.asarray(keep_ids)[probs[subset][:, keep_ids].argmax(1)]
    truth = labels[subset]
    recalls4 = [np.mean(restricted[truth == c] == c) for c in keep_ids]
    lines.append(
        f"4-class subset ({', '.join(FOUR_CLASSES)}; {subset.sum()} faces, argmax over those 4): "
        f"accuracy {100 * np.mean(restricted == truth):.2f} %, "
        f"unweighted {100 * np.mean(recalls4):.2f} % "
        f"({', '.join(f'{n} {100 * r:.1f}' for n, r in zip(FOUR_CLASSES, recalls4))})"
    )
    return lines


def webcam_utterance(seconds: float = 4.0, fps: float = 30.0) -> Utterance:
    """1280x720 frames with the astronaut's face ~200 px wide near the centre (a webcam user
    at arm's length), moving a little from frame to frame."""
    from skimage import data

    person = cv2.resize(data.astronaut(), (1126, 1126), interpolation=cv2.INTER_LINEAR)  # face ~200 px
    times = np.arange(0, seconds, 1 / fps)
    frames = []
    for k, _ in enumerate(times):
        frame = np.full((720, 1280, 3), 90, np.uint8)
        x = 150 + int(20 * np.sin(k / 15))  # puts her face's centre near (640, 300)
        frame[40:720, x:x + 1126] = person[:680, :1280 - x]
        frames.append(frame)
    return Utterance(start=0.0, end=seconds, frames=frames, frame_times=list(times), id="bench")


def speed_report(extractor: VisualExtractor, repeats: int) -> list[str]:
    utt = webcam_utterance()
    assert extractor.extract(utt) is not None, "the benchmark face was not found"
    totals, cpu, detection, classification = [], [], [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        extractor.extract(utt)
        totals.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        start = time.perf_counter()
        crops = extractor.faces_in(utt)
        detection.append(time.perf_counter() - start)
        start = time.perf_counter()
        extractor.features_from_faces(np.stack([c.gray for c in crops]))
        classification.append(time.perf_counter() - start)
    n_faces = len(extractor.faces_in(utt))

    def fmt(xs):
        return f"median {1000 * statistics.median(xs):.0f} ms, min {1000 * min(xs):.0f} ms"

    return [
        (f"visual extractor, 4 s utterance, 1280x720 @ 30 fps, {n_faces} frames sampled with a face "
         f"(detection_max_side {extractor.detection_max_side}, min_face_size {extractor.min_face_size}), "
         f"{repeats} runs:"),
        f"  whole extract(): {fmt(totals)} wall; CPU time (all threads) {fmt(cpu)}",
        f"  sampling + MTCNN + crops: {fmt(detection)}",
        f"  mini-Xception on the crops: {fmt(classification)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--detection-max-side", type=int, default=320)
    parser.add_argument("--min-face-size", type=int, default=32)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    extractor = VisualExtractor(device=args.device, detection_max_side=args.detection_max_side,
                                min_face_size=args.min_face_size)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} threads {torch.get_num_threads()}, device {extractor.device}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    if not args.skip_accuracy:
        path = args.data / "fer2013_48x48.npz"
        if not path.is_file():
            raise SystemExit(f"FER2013 not found at {path} (pass --data or set MOMKE_DATA_DIR)")
        with np.load(path, allow_pickle=False) as d:
            images, labels = d["public_test_images"], d["public_test_labels"]
            assert tuple(d["classes"]) == extractor.classes
        print("\n".join(accuracy_report(extractor, images, labels)))
    print("\n".join(speed_report(extractor, args.repeats)))
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
