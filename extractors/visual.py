"""The `lite` visual extractor: the speaker's face in frames sampled inside an utterance,
described by the FER2013 mini-Xception (see mini_xception.py and assets/weights/SOURCE.md).

Per utterance:
1. sample frames inside [start, end] at `frames_per_second` (default 3), by frame_times;
2. find faces with facenet-pytorch's MTCNN (its weights ship in its wheel) on a copy of each
   frame downscaled to at most `detection_max_side` pixels, for speed;
3. keep one face per frame, the speaker's (`face_choice`: "largest_central" by default);
4. crop it square, rotated so the eyes are level, framed like a FER2013 image, as 48x48
   grayscale: the live faces then go through exactly the same path as FER2013's images;
5. run the mini-Xception on all faces at once and average over the faces found:
   [pooled last-block features (128) | expression probabilities (7)] -> 135 float32, or with
   `expression_only` the 7 log-probabilities alone (the whisper profile: see below).
No face in any sampled frame -> None (the modality is missing for that utterance).

FER2013 framing: on FER2013 images the MTCNN box's width is ~0.86 and its height ~1.10 of the
image side (medians over 300 public-test images), so the crop side is the mean of the box's
width and height (`crop_scale` = 1.0), centred on the box.

Why `expression_only`: the mini-Xception was trained on FER2013's train faces, so on those faces
its pooled features are far more telling than on faces it never saw, and a head trained on them
learns to trust them too much. Logistic probes trained on 8,000 train faces, scored on unseen
public-test faces (4 classes): all 135 features 71.7 % WA, the 7 log-probabilities 73.3 %, the
mini-Xception's own argmax 73.0 %. Log-probabilities, not probabilities, so that a linear layer
can reproduce the classifier's own decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .base import ModalityExtractor, Utterance
from .mini_xception import FEATURE_DIM, FER2013_CLASSES, load_mini_xception, to_model_input
from .runtime import pick_device

FACE_SIZE = 48  # FER2013's image size: live crops are made like its images
FACE_CHOICES = ("largest_central", "largest", "central")
DETECTION_BATCH = 32  # frames per MTCNN call: bounds memory when a corpus is extracted in bulk
PROBABILITY_FLOOR = 1e-4  # log-probabilities are clipped at log(1e-4): no -inf, no outliers of -30


@dataclass
class FaceCrop:
    """The speaker's face in one sampled frame."""

    time: float
    box: np.ndarray  # x1, y1, x2, y2 in the frame's pixels
    confidence: float
    gray: np.ndarray  # uint8 [48, 48]


class VisualExtractor(ModalityExtractor):
    """Frames of an utterance -> [mini-Xception pooled features (128) | 7 FER2013 probabilities],
    or with expression_only=True its 7 log-probabilities."""

    modality = "visual"
    dim = FEATURE_DIM + len(FER2013_CLASSES)  # 135, known without loading any network
    classes = FER2013_CLASSES

    def __init__(
        self,
        frames_per_second: float = 3.0,
        face_choice: str = "largest_central",
        detection_max_side: int = 320,
        min_face_size: int = 32,
        detection_thresholds: tuple[float, float, float] = (0.7, 0.8, 0.9),
        crop_scale: float = 1.0,
        align: bool = True,
        weights_path=None,
        device=None,
        batch_size: int = 256,
        expression_only: bool = False,
    ):
        if not frames_per_second > 0:
            raise ValueError(f"frames_per_second must be > 0, got {frames_per_second}")
        if face_choice not in FACE_CHOICES:
            raise ValueError(f"face_choice must be one of {FACE_CHOICES}, got {face_choice!r}")
        if detection_max_side < 48 or min_face_size < 12 or crop_scale <= 0:
            raise ValueError("detection_max_side >= 48, min_face_size >= 12 and crop_scale > 0 required")
        self.frames_per_second = float(frames_per_second)
        self.face_choice = face_choice
        self.detection_max_side = int(detection_max_side)
        self.min_face_size = int(min_face_size)  # in pixels of the downscaled detection image
        # MTCNN's three stages; stricter than its defaults (0.6, 0.7, 0.7): fewer candidate
        # boxes reach the later stages (~20 % less CPU) and the last keeps only clear faces
        self.detection_thresholds = tuple(float(t) for t in detection_thresholds)
        self.crop_scale = float(crop_scale)
        self.align = align
        self.weights_path = weights_path
        self.batch_size = batch_size
        self.expression_only = bool(expression_only)
        if self.expression_only:
            self.dim = len(FER2013_CLASSES)
        self.device = pick_device(device)
        self._classifier = None  # loaded on first use
        self._detector = None

    # ---- networks, loaded lazily ----

    def to(self, device) -> VisualExtractor:
        self.device = pick_device(device)
        if self._classifier is not None:
            self._classifier.to(self.device)
        self._detector = None  # MTCNN keeps its device as an attribute: rebuild on next use
        return self

    # Both networks run with channels-last weights: on CPU, torch's max-pooling and convolutions
    # are several times faster in that layout (MTCNN ~40 % and mini-Xception ~35 % less CPU, same
    # outputs to float rounding).

    @property
    def classifier(self):
        if self._classifier is None:
            model = load_mini_xception(self.weights_path, device=self.device)
            self._classifier = model.to(memory_format=torch.channels_last)
        return self._classifier

    @property
    def detector(self):
        if self._detector is None:
            from facenet_pytorch import MTCNN

            self._detector = MTCNN(
                keep_all=True, min_face_size=self.min_face_size, thresholds=list(self.detection_thresholds),
                post_process=False, device=self.device,
            ).eval().to(memory_format=torch.channels_last)
        return self._detector

    # ---- already-cropped faces (FER2013 images, training the default checkpoint) ----

    def features_from_faces(self, gray_faces: np.ndarray) -> np.ndarray:
        """Grayscale uint8 faces [N, H, W] (FER2013: 48x48) -> float32 [N, dim] per face.

        The same layout and normalisation as `extract`, which averages these over the faces
        of an utterance.
        """
        feats, probs = self._embed(gray_faces)
        if self.expression_only:
            return np.log(np.maximum(probs, PROBABILITY_FLOOR)).astype(np.float32)
        return np.concatenate([feats, probs], axis=1)

    def expression_probabilities(self, gray_faces: np.ndarray) -> np.ndarray:
        """Grayscale uint8 faces [N, H, W] -> float32 [N, 7] over `classes`."""
        return self._embed(gray_faces)[1]

    @torch.inference_mode()
    def _embed(self, gray_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gray_faces = np.asarray(gray_faces)
        if gray_faces.ndim == 2:
            raise ValueError("expected a batch of faces [N, H, W]; wrap a single face as face[None]")
        feats, probs = [], []
        for i in range(0, len(gray_faces), self.batch_size):
            x = to_model_input(gray_faces[i:i + self.batch_size]).to(self.device)
            f, p = self.classifier.embed(x)
            feats.append(f.float().cpu().numpy())
            probs.append(p.float().cpu().numpy())
        if not feats:
            to_model_input(gray_faces)  # validates an empty batch's dtype/shape
            return np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, len(self.classes)), np.float32)
        return np.concatenate(feats), np.concatenate(probs)

    # ---- utterances ----

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        return self.extract_batch([utterance])[0]

    def extract_batch(self, utterances: Sequence[Utterance]) -> list[np.ndarray | None]:
        """Faces of every utterance found together, then classified in one batch."""
        crops = self.faces_in_batch(utterances)
        counts = [len(c) for c in crops]
        if not any(counts):
            return [None] * len(utterances)
        per_face = self.features_from_faces(np.stack([c.gray for cs in crops for c in cs]))
        out, offset = [], 0
        for n in counts:
            out.append(per_face[offset:offset + n].mean(axis=0).astype(np.float32) if n else None)
            offset += n
        return out

    def faces_in(self, utterance: Utterance) -> list[FaceCrop]:
        """The speaker's face in each sampled frame where one was found."""
        return self.faces_in_batch([utterance])[0]

    def faces_in_batch(self, utterances: Sequence[Utterance]) -> list[list[FaceCrop]]:
        sampled = [self.sample_frames(u) for u in utterances]
        flat = [(i, t, frame) for i, frames in enumerate(sampled) for t, frame in frames]
        detections = self._detect([frame for _, _, frame in flat])
        crops: list[list[FaceCrop]] = [[] for _ in utterances]
        for (i, t, frame), found in zip(flat, detections):
            if found is None:
                continue
            box, confidence, landmarks = found
            gray = crop_face(frame, box, landmarks if self.align else None, self.crop_scale)
            crops[i].append(FaceCrop(t, box, confidence, gray))
        return crops

    def sample_frames(self, utterance: Utterance) -> list[tuple[float, np.ndarray]]:
        """(time, frame) pairs nearest to `frames_per_second` evenly spaced instants inside
        [start, end]; frames outside the window are ignored. Bad frames raise ValueError."""
        frames, times = utterance.frames, utterance.frame_times
        if len(frames) != len(times):
            raise ValueError(f"utterance {utterance.id!r}: {len(frames)} frames but {len(times)} frame_times")
        times = np.asarray(times, dtype=np.float64)
        if not np.all(np.isfinite(times)):
            raise ValueError(f"utterance {utterance.id!r}: frame_times must be finite numbers")
        inside = np.flatnonzero((times >= utterance.start) & (times <= utterance.end))
        if len(inside) == 0:
            return []
        n = max(1, round(utterance.duration * self.frames_per_second))
        targets = utterance.start + (np.arange(n) + 0.5) * (utterance.duration / n)
        chosen = sorted({int(inside[np.argmin(np.abs(times[inside] - t))]) for t in targets})
        for k in chosen:
            _check_frame(frames[k], k, utterance.id)
        return [(float(times[k]), frames[k]) for k in chosen]

    # ---- face detection ----

    @torch.inference_mode()
    def _detect(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, float, np.ndarray] | None]:
        """The speaker's (box, confidence, 5 landmarks) in each frame, in its own pixels, or None."""
        results: list = [None] * len(frames)
        groups: dict[tuple[int, int], list[int]] = {}  # MTCNN batches only equal-sized images
        small = []
        for k, frame in enumerate(frames):
            scale = min(1.0, self.detection_max_side / max(frame.shape[:2]))
            size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
            small.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if scale < 1 else frame)
            groups.setdefault(small[-1].shape[:2], []).append(k)
        chunks = [ks[i:i + DETECTION_BATCH] for ks in groups.values() for i in range(0, len(ks), DETECTION_BATCH)]
        for indices in chunks:
            boxes, probs, points = self.detector.detect([small[k] for k in indices], landmarks=True)
            for k, b, p, pts in zip(indices, boxes, probs, points):
                if b is None:
                    continue
                factor = frames[k].shape[1] / small[k].shape[1]
                b = np.asarray(b, dtype=np.float64) * factor
                p = np.asarray(p, dtype=np.float64)
                pts = np.asarray(pts, dtype=np.float64) * factor
                j = choose_face(b, frames[k].shape[:2], self.face_choice)
                results[k] = (b[j].astype(np.float32), float(p[j]), pts[j].astype(np.float32))
        return results


def choose_face(boxes: np.ndarray, frame_hw: tuple[int, int], rule: str = "largest_central") -> int:
    """Index of the speaker's face among boxes [K, 4] (x1, y1, x2, y2).

    largest: the biggest box; central: the box centre nearest the frame centre;
    largest_central: size (sqrt of area, as a fraction of the frame's shorter side) times
    (1 - distance of its centre from the frame centre / half the frame diagonal).
    """
    h, w = frame_hw
    side = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    centre_distance = np.hypot((boxes[:, 0] + boxes[:, 2]) / 2 - w / 2, (boxes[:, 1] + boxes[:, 3]) / 2 - h / 2)
    if rule == "largest":
        return int(np.argmax(side))
    if rule == "central":
        return int(np.argmin(centre_distance))
    return int(np.argmax(side / min(h, w) * (1 - centre_distance / (math.hypot(h, w) / 2))))


def crop_face(frame: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None = None,
              crop_scale: float = 1.0, size: int = FACE_SIZE) -> np.ndarray:
    """RGB frame -> grayscale uint8 [size, size] face, framed like FER2013.

    The square has the mean of the box's width and height (times crop_scale) as its side and
    the box's centre as its centre; with landmarks (MTCNN's 5 points, eyes first) it is turned
    so the eyes are level. Large faces are shrunk with area averaging, as an image is
    downsampled, rather than by point sampling.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    side = max(1.0, ((x2 - x1) + (y2 - y1)) / 2 * crop_scale)
    angle = 0.0
    if landmarks is not None:
        (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    # warp first to an intermediate size near the face's own, then area-average down to `size`
    work = int(min(max(size, round(side)), 4 * size))
    matrix = cv2.getRotationMatrix2D(centre, angle, work / side)
    matrix[:, 2] += ((work - 1) / 2 - centre[0], (work - 1) / 2 - centre[1])
    face = cv2.warpAffine(frame, matrix, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if work != size:
        face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)


def _check_frame(frame, index: int, utterance_id: str) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(
            f"utterance {utterance_id!r}: frame {index} must be an RGB uint8 image [H, W, 3], got {desc}"
        )
