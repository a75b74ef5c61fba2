"""The lite visual extractor on real images: scikit-image's astronaut (a smiling face),
its coffee cup (no face), and frames that are broken in the ways a camera can break."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from momke.extractors.base import Utterance
from momke.extractors.visual import VisualExtractor, choose_face, crop_face
from skimage import data

HAPPY = VisualExtractor.classes.index("happy")


@pytest.fixture(scope="module")
def extractor():
    return VisualExtractor(device="cpu")


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()  # RGB uint8 512x512, Eileen Collins smiling


@pytest.fixture(scope="module")
def coffee():
    return data.coffee()


def utterance(frames, times, start=0.0, end=1.0):
    return Utterance(start=start, end=end, frames=list(frames), frame_times=list(times), id="u1")


def test_dim_is_known_without_loading_a_network():
    extractor = VisualExtractor()
    assert VisualExtractor.dim == extractor.dim == 128 + 7
    assert VisualExtractor.modality == "visual"
    assert extractor._classifier is None and extractor._detector is None


def test_astronaut_face_is_found_and_called_happy(extractor, astronaut):
    features = extractor.extract(utterance([astronaut], [0.5]))
    assert features.dtype == np.float32 and features.shape == (extractor.dim,)
    assert np.all(np.isfinite(features))
    probs = features[-7:]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(probs)) == HAPPY and probs[HAPPY] > 0.5
    (crop,) = extractor.faces_in(utterance([astronaut], [0.5]))
    x1, y1, x2, y2 = crop.box  # her face, not the flag or the suit patch
    assert 150 < (x1 + x2) / 2 < 300 and 60 < (y1 + y2) / 2 < 180
    assert crop.gray.shape == (48, 48) and crop.gray.dtype == np.uint8


def test_expression_only_gives_the_classifiers_log_probabilities(extractor, astronaut):
    only = VisualExtractor(expression_only=True)
    only._classifier, only._detector = extractor.classifier, extractor.detector  # same networks, loaded once
    assert only.dim == 7 and VisualExtractor.dim == 135
    features = only.extract(utterance([astronaut], [0.5]))
    assert features.shape == (7,) and np.all(np.isfinite(features))
    full = extractor.extract(utterance([astronaut], [0.5]))
    # one face: the log of the same probabilities the full layout carries (floored at 1e-4)
    np.testing.assert_allclose(features, np.log(np.maximum(full[-7:], 1e-4)), rtol=1e-4, atol=1e-4)
    assert int(np.argmax(features)) == HAPPY


def test_live_faces_and_fer2013_faces_share_one_path(extractor, astronaut):
    (crop,) = extractor.faces_in(utterance([astronaut], [0.5]))
    per_face = extractor.features_from_faces(crop.gray[None])
    assert per_face.shape == (1, extractor.dim)
    np.testing.assert_allclose(extractor.extract(utterance([astronaut], [0.5])), per_face[0], rtol=1e-5, atol=1e-6)
    probs = extractor.expression_probabilities(crop.gray[None])
    assert probs.shape == (1, 7) and np.allclose(probs, per_face[:, -7:])
    # a face given at the network's own 64x64 size goes through the same normalisation
    bigger = extractor.expression_probabilities(cv2.resize(crop.gray, (64, 64))[None])
    assert np.argmax(bigger[0]) == HAPPY


def test_a_tilted_head_is_levelled_before_classification(extractor, astronaut):
    (upright,) = extractor.faces_in(utterance([astronaut], [0.5]))
    centre = tuple(float(v) for v in (upright.box[:2] + upright.box[2:]) / 2)
    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D(centre, 20, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)
    (levelled,) = extractor.faces_in(utterance([tilted], [0.5]))
    unaligned = crop_face(tilted, levelled.box, landmarks=None)
    corr = lambda a, b: np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1]
    # measured: 0.85 levelled vs 0.50 left tilted (the boxes differ a little between the two)
    assert corr(levelled.gray, upright.gray) > 0.75
    assert corr(levelled.gray, upright.gray) > corr(unaligned, upright.gray) + 0.2
    assert np.argmax(extractor.expression_probabilities(levelled.gray[None])[0]) == HAPPY


def test_no_face_is_missing(extractor, coffee):
    assert extractor.extract(utterance([coffee], [0.5])) is None
    plain = np.full((360, 640, 3), 128, np.uint8)
    assert extractor.extract(utterance([plain, plain], [0.2, 0.8])) is None


def test_empty_utterance_is_missing(extractor):
    assert extractor.extract(utterance([], [])) is None


def test_frames_outside_the_utterance_are_ignored(extractor, astronaut, coffee):
    # the only face comes after the utterance ended
    assert extractor.extract(utterance([coffee, astronaut], [0.5, 1.5])) is None
    # a faceless frame before the start changes nothing
    with_face_only = extractor.extract(utterance([astronaut], [0.5]))
    with_outside = extractor.extract(utterance([coffee, astronaut], [-0.5, 0.5]))
    np.testing.assert_array_equal(with_face_only, with_outside)


def test_frames_are_sampled_at_the_configured_rate_inside_the_window():
    tiny = np.zeros((4, 4, 3), np.uint8)
    times = np.arange(0, 6, 1 / 30)  # 30 fps camera, 6 s
    utt = utterance([tiny] * len(times), times, start=1.0, end=5.0)
    sampled = VisualExtractor(frames_per_second=3).sample_frames(utt)
    sampled_times = np.array([t for t, _ in sampled])
    assert len(sampled) == 12
    assert np.all((sampled_times >= 1.0) & (sampled_times <= 5.0))
    assert np.allclose(np.diff(sampled_times), 1 / 3, atol=1 / 30)
    assert len(VisualExtractor(frames_per_second=2).sample_frames(utt)) == 8
    # fewer frames than the rate asks for: each is used once
    assert len(VisualExtractor(frames_per_second=3).sample_frames(utterance([tiny] * 2, [2.0, 3.0], 1.0, 5.0))) == 2


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.full((64, 64, 3), np.nan, np.float32), "RGB uint8"),
        (np.zeros((64, 64), np.uint8), "RGB uint8"),
        (np.zeros((64, 64, 4), np.uint8), "RGB uint8"),
        ("not an image", "RGB uint8"),
    ],
)
def test_corrupt_frames_raise_a_clear_error(extractor, astronaut, frame, message):
    with pytest.raises(ValueError, match=message):
        extractor.extract(utterance([astronaut, frame], [0.3, 0.7]))


def test_inconsistent_timestamps_raise_a_clear_error(extractor, astronaut):
    with pytest.raises(ValueError, match="frame_times"):
        extractor.extract(utterance([astronaut, astronaut], [0.5]))
    with pytest.raises(ValueError, match="finite"):
        extractor.extract(utterance([astronaut], [float("nan")]))


def test_bad_settings_and_bad_faces_raise(extractor):
    with pytest.raises(ValueError):
        VisualExtractor(frames_per_second=0)
    with pytest.raises(ValueError):
        VisualExtractor(face_choice="loudest")
    with pytest.raises(ValueError, match="uint8"):
        extractor.features_from_faces(np.zeros((2, 48, 48), np.float32))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        extractor.features_from_faces(np.zeros((48, 48), np.uint8))
    assert extractor.features_from_faces(np.zeros((0, 48, 48), np.uint8)).shape == (0, extractor.dim)


def test_batch_matches_one_at_a_time(extractor, astronaut, coffee):
    small = cv2.resize(astronaut, (256, 256))  # a different frame size in the same batch
    utts = [utterance([astronaut], [0.5]), utterance([coffee], [0.5]), utterance([small, astronaut], [0.2, 0.8])]
    batch = extractor.extract_batch(utts)
    assert batch[1] is None
    for one, many in zip((extractor.extract(u) for u in utts), batch):
        if one is None:
            assert many is None
        else:
            # MTCNN's batched arithmetic moves boxes by a fraction of a pixel
            np.testing.assert_allclose(one, many, atol=5e-3)


def test_the_speaker_is_the_largest_most_central_face():
    frame_hw = (720, 1280)
    boxes = np.array([
        [40, 40, 240, 240],      # big, in the corner
        [560, 280, 720, 440],    # a bit smaller, centred
        [600, 300, 640, 340],    # small, centred
    ], dtype=float)
    assert choose_face(boxes, frame_hw, "largest") == 0
    assert choose_face(boxes, frame_hw, "central") in (1, 2)
    assert choose_face(boxes, frame_hw, "largest_central") == 1
