"""`momke extract`: manifest corpora with real speech, resume, cache, bad files, corpus readers."""

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from momke.extractors.profiles import load_profile
from momke.models.commands.corpus_readers import map_labels, parse_label_map, read_corpus
from momke.models.commands.extract_corpus import FeatureCache, extract_corpus, main
from momke.models.training.data import load_corpus

DATA = Path(os.environ.get("MOMKE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

LINES = [("d1", "Good morning, how are you?", "neutral"), ("d1", "I am absolutely furious with you!", "angry"),
         ("d1", "Oh, I am so glad you came.", "happy"), ("d2", "Nobody ever listens to me.", "sad"),
         ("d2", "That is wonderful news!", "happy")]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """A manifest CSV: two dialogues of espeak-ng speech with transcripts, plus one corrupt file."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path_factory.mktemp("corpus")
    rows = []
    for number, (dialogue, text, label) in enumerate(LINES):
        name = f"utt{number}.wav"
        subprocess.run(["espeak-ng", "-w", str(folder / name), text], check=True)
        rows.append({"dialogue": dialogue, "order": number, "utterance": f"{dialogue}_u{number}",
                     "speaker": "A" if number % 2 else "B", "transcript": text, "audio": name, "label": label,
                     "session": 1 if dialogue == "d1" else 2})
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio" * 4)
    rows.append({"dialogue": "d2", "order": 9, "utterance": "d2_bad", "speaker": "A", "transcript": "",
                 "audio": "corrupt.wav", "label": "sad", "session": 2})
    path = folder / "manifest.csv"
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def profile():
    return load_profile("lite", device="cpu")


def test_manifest_extraction_writes_the_feature_corpus_and_reports_bad_files(manifest, tmp_path, capsys):
    out = tmp_path / "features"
    code = main([str(manifest), "--out", str(out), "--modalities", "a,t", "--labels", "happy,sad,neutral,angry",
                 "--cache", str(tmp_path / "cache"), "--quiet"])
    assert code == 1  # one bad file: reported, the rest written
    assert "corrupt.wav" in capsys.readouterr().err
    corpus = load_corpus(out)
    assert corpus.metadata.feature_profile == "lite" and corpus.metadata.feature_dims == (166, 384, 135)
    by_id = {c.dialogue_id: c for c in corpus.conversations}
    assert set(by_id) == {"d1", "d2"}
    assert by_id["d1"].utterance_ids == ["d1_u0", "d1_u1", "d1_u2"]
    assert by_id["d1"].labels.tolist() == [2, 3, 0]
    assert by_id["d1"].present.tolist() == [[True, True, False]] * 3
    assert by_id["d2"].utterance_ids == ["d2_u3", "d2_u4"]  # the corrupt one had nothing else: dropped
    assert by_id["d2"].session == 2
    assert by_id["d1"].features["audio"].shape == (3, 166) and by_id["d1"].features["text"].shape == (3, 384)
    report = json.loads((out / "extract_report.json").read_text())
    assert [f["utterance"] for f in report["failures"]] == ["d2_bad"]
    assert report["dropped_utterances"] == ["d2/d2_bad"]
    assert report["unknown_labels"] == {}


@needs_espeak
def test_labels_outside_the_class_names_stay_unlabeled(manifest, profile, tmp_path):
    dialogues = [d for d in read_corpus(manifest) if d.id == "d1"]
    report = extract_corpus(dialogues, profile, tmp_path / "f", modalities=["audio"], labels=["happy", "angry"],
                            progress=False)
    assert report.unknown_labels == {"neutral": 1}
    assert load_corpus(tmp_path / "f").conversations[0].labels.tolist() == [-1, 1, 0]


class Interrupt(Exception):
    pass


class InterruptingAudio:
    """Wraps the real audio extractor; raises after `limit` calls, like a Ctrl-C mid-run."""

    def __init__(self, inner, limit):
        self.inner, self.limit, self.calls = inner, limit, 0
        self.modality, self.dim = inner.modality, inner.dim

    def extract(self, utterance):
        self.calls += 1
        if self.calls > self.limit:
            raise Interrupt()
        return self.inner.extract(utterance)


@needs_espeak
def test_interrupted_extraction_resumes_without_redoing_dialogues(manifest, profile, tmp_path):
    dialogues = read_corpus(manifest)
    labels = ["happy", "sad", "neutral", "angry"]
    out = tmp_path / "features"
    real_audio = profile.audio
    profile.audio = InterruptingAudio(real_audio, limit=4)  # d1 (3 utterances) completes, d2 does not
    try:
        with pytest.raises(Interrupt):
            extract_corpus(dialogues, profile, out, modalities=["audio"], labels=labels, progress=False)
        assert [c.dialogue_id for c in load_corpus(out).conversations] == ["d1"]
        profile.audio = InterruptingAudio(real_audio, limit=100)
        report = extract_corpus(dialogues, profile, out, modalities=["audio"], labels=labels, progress=False)
    finally:
        profile.audio = real_audio
    assert report.resumed == ["d1"] and report.written == ["d2"]
    assert profile.audio is real_audio
    assert [c.dialogue_id for c in load_corpus(out).conversations] == ["d1", "d2"]


@needs_espeak
def test_second_run_is_served_from_the_cache(manifest, profile, tmp_path):
    dialogues = [d for d in read_corpus(manifest) if d.id == "d1"]
    cache_dir = tmp_path / "cache"
    first = extract_corpus(dialogues, profile, tmp_path / "one", modalities=["audio", "text"],
                           cache=FeatureCache(cache_dir, "lite-test"), progress=False)
    second = extract_corpus(dialogues, profile, tmp_path / "two", modalities=["audio", "text"],
                            cache=FeatureCache(cache_dir, "lite-test"), progress=False)
    assert first.cache_misses == 6 and second.cache_misses == 0 and second.cache_hits == 6
    one, two = load_corpus(tmp_path / "one").conversations[0], load_corpus(tmp_path / "two").conversations[0]
    np.testing.assert_array_equal(one.features["audio"], two.features["audio"])
    np.testing.assert_array_equal(one.features["text"], two.features["text"])
    other = extract_corpus(dialogues, profile, tmp_path / "three", modalities=["audio"],
                           cache=FeatureCache(cache_dir, "another-profile"), progress=False)
    assert other.cache_hits == 0  # a different profile never reads these vectors


@needs_espeak
def test_audio_track_of_a_video_is_served_as_the_app_cuts_it(manifest, profile, tmp_path):
    """Spans of a recording get the served utterance they overlap most: two sentences with a
    pause are two utterances, the whole file is its longest, a silent span has no audio."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    import soundfile as sf

    first, rate = sf.read(str(manifest.parent / "utt1.wav"), dtype="float32")
    second, _ = sf.read(str(manifest.parent / "utt2.wav"), dtype="float32")
    pause = np.zeros(rate, np.float32)
    sf.write(str(tmp_path / "two.wav"), np.concatenate([first, pause, second, 2 * pause]), rate)
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:r=10", "-i", str(tmp_path / "two.wav"),
                    "-shortest", "-c:v", "mpeg4", "-c:a", "aac", str(video)], check=True)
    middle, end = (len(first) + rate / 2) / rate, (len(first) + len(pause) + len(second)) / rate
    rows = [{"dialogue": "v", "utterance": "whole", "video": "clip.mp4"},
            {"dialogue": "v", "utterance": "first", "video": "clip.mp4", "start": 0.0, "end": middle},
            {"dialogue": "v", "utterance": "second", "video": "clip.mp4", "start": middle, "end": end},
            {"dialogue": "v", "utterance": "silence", "video": "clip.mp4", "start": end + 0.6, "end": end + 1.9}]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "features"
    report = extract_corpus(read_corpus(path), profile, out, modalities=["audio"], labels=["a", "b"], progress=False)
    assert not report.failures
    conversation = load_corpus(out).conversations[0]
    audio, present = conversation.features["audio"], conversation.present[:, 0]
    assert present.tolist() == [True, True, True, False]
    assert np.isfinite(audio).all() and not np.allclose(audio[1], audio[2])
    longest = 1 if len(first) > len(second) else 2
    assert np.allclose(audio[0], audio[longest])


def test_manifest_errors_are_clear(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("dialogue,transcript,colour\nd,hello,red\n")
    with pytest.raises(ValueError, match="unknown columns"):
        read_corpus(path)
    path.write_text("dialogue,transcript\n,hello\n")
    with pytest.raises(ValueError, match="dialogue column is empty"):
        read_corpus(path)
    assert main([str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o")]) == 2


def test_label_map():
    mapping = parse_label_map("excited=happy, happy=happy,ANGRY=angry")
    dialogues = read_corpus_inline([("d", "x", "Excited"), ("d", "y", "frustrated"), ("d", "z", "angry")])
    labels = [u.label for u in map_labels(dialogues, mapping)[0].utterances]
    assert labels == ["happy", None, "angry"]


def read_corpus_inline(lines):
    from momke.models.commands.corpus_readers import DialogueSource, UtteranceSource

    return [DialogueSource("d", [UtteranceSource(id=i, transcript=t, label=label) for _, i, label in lines
                                 for t in ["text"]])]


@pytest.mark.skipif(not (DATA / "iemocap4_transcripts.jsonl").is_file(), reason=f"IEMOCAP transcripts absent from {DATA}")
def test_iemocap_reader_keeps_sessions_and_order():
    dialogues = read_corpus(DATA / "iemocap4_transcripts.jsonl")
    assert len(dialogues) == 151 and sum(len(d.utterances) for d in dialogues) == 5531
    assert sorted({d.session for d in dialogues}) == [1, 2, 3, 4, 5]
    assert {u.label for d in dialogues for u in d.utterances} == {"happy", "sad", "neutral", "angry"}
    assert dialogues[0].media_kinds == {"text"}
    # Each record's own split is kept (session 5 is the source's test split).
    assert {(d.session, d.split) for d in dialogues} == {(1, "train"), (2, "train"), (3, "train"), (4, "train"),
                                                         (5, "test")}


@pytest.mark.skipif(not (DATA / "meld").is_dir(), reason=f"MELD absent from {DATA}")
def test_meld_and_emorynlp_readers():
    meld = read_corpus(DATA / "meld")
    counts = {s: sum(len(d.utterances) for d in meld if d.split == s) for s in ("train", "valid", "test")}
    assert counts == {"train": 9989, "valid": 1109, "test": 2610}
    assert sum(d.split == "train" for d in meld) == 1038
    assert "’" in meld[0].utterances[0].transcript or "'" in meld[0].utterances[0].transcript
    emory = read_corpus(DATA / "emorynlp")
    counts = {s: sum(len(d.utterances) for d in emory if d.split == s) for s in ("train", "valid", "test")}
    assert counts == {"train": 7551, "valid": 954, "test": 984}
    assert {u.label for d in emory for u in d.utterances} == {"joyful", "mad", "peaceful", "neutral", "sad",
                                                                "powerful", "scared"}


@pytest.mark.skipif(not (DATA / "ravdess_speech_16k").is_dir(), reason=f"RAVDESS absent from {DATA}")
def test_ravdess_reader_groups_by_clip_or_actor():
    clips = read_corpus(DATA / "ravdess_speech_16k")
    assert len(clips) == 1200 and all(len(d.utterances) == 1 for d in clips)
    assert clips[0].media_kinds == {"audio"} and clips[0].utterances[0].label == "neutral"
    actors = read_corpus(DATA / "ravdess_speech_16k", group="actor", with_transcripts=True)
    assert len(actors) == 20 and {d.session for d in actors} == set(range(1, 21))
    assert actors[0].utterances[0].transcript.endswith("by the door.")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_jsonl_formats_are_told_apart_by_content(tmp_path):
    from momke.models.commands.corpus_readers import detect_format

    rows = [{"dialogue": "d1", "utterance": "u1", "transcript": "hello", "label": "happy", "split": "train"},
            {"dialogue": "d1", "utterance": "u2", "transcript": "go away", "label": "angry", "split": "train"},
            {"dialogue": "d2", "utterance": "u3", "transcript": "so sad", "label": "sad", "split": "test"}]
    manifest = write_jsonl(tmp_path / "manifest.jsonl", rows)
    assert detect_format(manifest) == "manifest"
    dialogues = read_corpus(manifest)
    assert [(d.id, d.split, [u.id for u in d.utterances]) for d in dialogues] == [
        ("d1", "train", ["u1", "u2"]), ("d2", "test", ["u3"])]

    records = [{"dialogue": "x", "session": 2, "split": "test", "utterances": [{"id": "x0", "text": "hi", "label": "happy"}]}]
    iemocap = write_jsonl(tmp_path / "iemocap.jsonl", records)
    assert detect_format(iemocap) == "iemocap"
    assert [(d.id, d.session, d.split) for d in read_corpus(iemocap)] == [("x", 2, "test")]

    # Records of dialogues without a 'dialogue' key are neither layout: refused, not misread.
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "x", "utterances": [{"id": "x0", "text": "hi"}]}])
    with pytest.raises(ValueError, match="cannot tell which corpus.*keys \\['id', 'utterances'\\].*--format"):
        read_corpus(other)
    with pytest.raises(ValueError, match="--format iemocap"):
        read_corpus(other, "iemocap")
    with pytest.raises(ValueError, match="IEMOCAP record has 'dialogue'.*read as --format iemocap"):
        read_corpus(manifest, "iemocap")
    with pytest.raises(ValueError, match="unknown columns.*read as --format manifest"):
        read_corpus(iemocap, "manifest")
    write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(ValueError, match="empty.*--format auto"):
        read_corpus(tmp_path / "empty.jsonl")


def test_extract_names_the_format_in_one_line(tmp_path, capsys):
    manifest = write_jsonl(tmp_path / "manifest.jsonl", [{"dialogue": "d", "transcript": "hi", "label": "a"}])
    assert main([str(manifest), "--format", "iemocap", "--out", str(tmp_path / "o"), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--format iemocap" in err and "Traceback" not in err


def test_rows_of_one_dialogue_must_agree_on_its_split(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("dialogue,transcript,split\nd,hello,train\nd,bye,test\n")
    with pytest.raises(ValueError, match="line 3: dialogue 'd' has split/session 'test'.*--format manifest"):
        read_corpus(path)


def test_a_json_manifest_is_a_list_of_rows(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"dialogue": "d", "transcript": "hi", "label": "a"}]))
    assert [u.transcript for u in read_corpus(path)[0].utterances] == ["hi"]
    path.write_text(json.dumps({"dialogue": "d"}))
    with pytest.raises(ValueError, match="a list of rows.*--format manifest"):
        read_corpus(path)


@needs_espeak
def test_overwrite_starts_over_where_resuming_is_refused(manifest, tmp_path, capsys):
    out = tmp_path / "features"
    argv = [str(manifest), "--out", str(out), "--modalities", "a", "--limit", "1", "--no-cache", "--quiet"]
    assert main([*argv, "--labels", "happy,sad,neutral,angry"]) == 0
    kept = sorted(path.name for path in out.iterdir())
    capsys.readouterr()
    assert main([*argv, "--labels", "angry,happy,neutral,sad"]) == 2  # other classes: not a resume
    err = capsys.readouterr().err
    assert "different metadata" in err and "--overwrite" in err and sorted(p.name for p in out.iterdir()) == kept
    assert main([*argv, "--labels", "angry,happy,neutral,sad", "--overwrite"]) == 0
    assert load_corpus(out).metadata.labels == ("angry", "happy", "neutral", "sad")
    assert [c.dialogue_id for c in load_corpus(out).conversations] == ["d1"]


def test_faces_of_a_video_are_served_as_the_app_sees_them(profile, recorded_conversation, tmp_path):
    """The visual features of a manifest's video spans are those of the served utterances: the
    camera's frame rate and checks, at most three frames spread over the cut."""
    from momke.extractors.served import served_utterances

    conversation = recorded_conversation(2)
    served = served_utterances(conversation["path"])
    assert len(served) == 2
    rows = [{"dialogue": "v", "utterance": f"u{i}", "video": str(conversation["path"]),
             "start": u.start - 0.2, "end": u.end + 0.2} for i, u in enumerate(served)]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = extract_corpus(read_corpus(path), profile, tmp_path / "features", modalities=["audio", "visual"],
                            labels=["a", "b"], progress=False)
    assert not report.failures
    features = load_corpus(tmp_path / "features").conversations[0].features
    for i, utterance in enumerate(served):
        assert np.allclose(features["visual"][i], profile.visual.extract(utterance), atol=1e-5)
        assert np.allclose(features["audio"][i], profile.audio.extract(utterance), atol=1e-5)


def test_a_silent_video_is_judged_by_the_frames_of_each_span(profile, recorded_conversation, tmp_path):
    """No sound track, no speech to cut by: each span gets the camera's frames inside it (the video
    decoded once for all its spans)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    silent = tmp_path / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(recorded_conversation(2)["path"]), "-an", "-c:v", "copy",
                    str(silent)], check=True)
    rows = [{"dialogue": "s", "utterance": f"u{i}", "video": "silent.mp4", "start": 2.0 * i, "end": 2.0 * i + 1.5}
            for i in range(2)]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = extract_corpus(read_corpus(path), profile, tmp_path / "features", modalities=["visual"],
                            labels=["a", "b"], progress=False)
    assert not report.failures
    conversation = load_corpus(tmp_path / "features").conversations[0]
    assert conversation.present[:, 2].all() and not np.allclose(*conversation.features["visual"])
