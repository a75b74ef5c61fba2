"""The MoMKE/GCNet feature layout reader, on a tiny fixture written here."""

import os
import pickle

import numpy as np
import pytest
from momke.models.training.paper_layout import (
    RestrictedUnpickler,
    read_paper_layout,
    restricted_load,
)


def write_iemocap_like(root):
    """Two IEMOCAP-style dialogues: a 6-entry label pickle and per-utterance .npy files."""
    ids = {"Ses01F_impro01": ["Ses01F_impro01_F000", "Ses01F_impro01_M000"], "Ses02M_script01": ["Ses02M_script01_F000"]}
    labels = {"Ses01F_impro01": [0, 3], "Ses02M_script01": [2]}
    speakers = {"Ses01F_impro01": ["F", "M"], "Ses02M_script01": ["F"]}
    sentences = {"Ses01F_impro01": ["hi", "hello"], "Ses02M_script01": ["bye"]}
    with open(root / "labels.pkl", "wb") as f:
        pickle.dump([ids, labels, speakers, sentences, {"Ses01F_impro01"}, {"Ses02M_script01"}], f, protocol=2)
    for modality in ("audio", "text", "visual"):
        (root / modality).mkdir()
    np.save(root / "audio" / "Ses01F_impro01_F000.npy", np.full(3, 1.0, np.float32))
    np.save(root / "audio" / "Ses01F_impro01_M000.npy", np.stack([np.zeros(3), np.full(3, 4.0)]))  # [time, dim]
    # Audio of Ses02M_script01_F000 is missing on purpose.
    for i, uid in enumerate(["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses02M_script01_F000"]):
        np.save(root / "text" / f"{uid}.npy", np.full((1, 2), float(i), np.float32))
    faces = root / "visual" / "Ses01F_impro01_M000"
    faces.mkdir()
    np.save(faces / "face_M_0.npy", np.array([2.0, 2.0]))
    np.save(faces / "face_F_0.npy", np.array([9.0, 9.0]))  # the other speaker's face: not used
    np.save(root / "visual" / "Ses02M_script01_F000.npy", np.array([1.0, 3.0]))


def test_reads_iemocap_layout(tmp_path):
    write_iemocap_like(tmp_path)
    corpus = read_paper_layout(
        tmp_path / "labels.pkl", tmp_path / "audio", tmp_path / "text", tmp_path / "visual",
        label_names=["happy", "sad", "neutral", "angry"],
    )
    assert corpus.metadata.feature_dims == (3, 2, 2)
    assert corpus.metadata.task == "classification"
    first, second = corpus.conversations
    assert first.dialogue_id == "Ses01F_impro01" and first.split == "train" and first.session == 1
    assert second.split == "test" and second.session == 2
    assert first.speakers == ["F", "M"]
    assert first.labels.tolist() == [0, 3]
    np.testing.assert_allclose(first.features["audio"][1], [2.0, 2.0, 2.0])  # time-averaged
    np.testing.assert_allclose(first.features["text"][1], [1.0, 1.0])
    np.testing.assert_allclose(first.features["visual"][1], [2.0, 2.0])  # the speaker's own face
    assert first.present.tolist() == [[True, True, False], [True, True, True]]
    assert second.present.tolist() == [[False, True, True]]


def test_regression_layout_with_valid_split(tmp_path):
    ids = {"v1": ["v1_1", "v1_2"], "v2": ["v2_1"], "v3": ["v3_1"]}
    labels = {"v1": [1.4, -0.6], "v2": [0.0], "v3": [2.2]}
    speakers = {k: [""] * len(v) for k, v in ids.items()}
    with open(tmp_path / "mosi.pkl", "wb") as f:
        pickle.dump([ids, labels, speakers, {}, ["v1"], ["v2"], ["v3"]], f)
    (tmp_path / "t").mkdir()
    for uids in ids.values():
        for uid in uids:
            np.save(tmp_path / "t" / f"{uid}.npy", np.ones(4, np.float32))
    corpus = read_paper_layout(tmp_path / "mosi.pkl", text_dir=tmp_path / "t")
    assert corpus.metadata.task == "regression"
    assert [c.split for c in corpus.conversations] == ["train", "valid", "test"]
    assert corpus.conversations[0].labels.tolist() == pytest.approx([1.4, -0.6])
    assert corpus.metadata.feature_dims == (1, 4, 1)  # absent modalities: placeholder dimension 1
    assert not corpus.conversations[0].present[:, [0, 2]].any()


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"d": ["u"]}, {"d": [0]}, {"d": ["A"]}, Exploit(), {"d"}, set()]))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system|refusing to load os.system"):
        read_paper_layout(path, text_dir=tmp_path)
    for payload in (pickle.dumps(Exploit()), pickle.dumps(eval), pickle.dumps(np.load)):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            restricted_load(payload)


def test_allowed_objects_round_trip():
    data = {"a": np.arange(3, dtype=np.float32), "b": {1, 2}, "c": (np.float64(1.5), [b"x", "y"], frozenset())}
    for protocol in (2, 4, 5):
        back = restricted_load(pickle.dumps(data, protocol=protocol))
        np.testing.assert_array_equal(back["a"], data["a"])
        assert back["b"] == {1, 2} and back["c"][0] == 1.5 and back["c"][1] == [b"x", "y"]
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


def test_layout_errors(tmp_path):
    write_iemocap_like(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        read_paper_layout(tmp_path / "labels.pkl", audio_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="at least one feature directory"):
        read_paper_layout(tmp_path / "labels.pkl")
    (tmp_path / "short.pkl").write_bytes(pickle.dumps([{}, {}]))
    with pytest.raises(ValueError, match="expected \\[ids, labels"):
        read_paper_layout(tmp_path / "short.pkl", text_dir=tmp_path / "text")
    np.save(tmp_path / "text" / "Ses02M_script01_F000.npy", np.ones(5))
    with pytest.raises(ValueError, match="dimension 5"):
        read_paper_layout(tmp_path / "labels.pkl", text_dir=tmp_path / "text")
