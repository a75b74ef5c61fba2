"""ASR backends on real speech, the backend factory, and the worker that guards the pipeline."""

import re
import threading
import time

import numpy as np
import pytest
from momke.realtime.asr import ASRBackend, ASRWorker, PocketSphinxASR, WhisperASR, make_asr
from synth_speech import espeak, ravdess_clips, read_clips, silence

STOPWORDS = {"a", "an", "the", "to", "me", "i", "is", "are", "by", "and", "of", "in", "on"}


def words(text):
    return re.findall(r"[a-z']+", text.lower())


def content_words(text):
    return {w for w in words(text) if w not in STOPWORDS}


@pytest.fixture(scope="module")
def sphinx():
    return PocketSphinxASR()


@pytest.mark.parametrize(
    "sentence",
    ["she went to the market yesterday", "please call me tomorrow morning"],
)
def test_pocketsphinx_gets_content_words_of_espeak_speech(sphinx, sentence):
    # PocketSphinx is weak on synthetic speech; at least one content word must come out right
    # (with silence around it, as the segmenter delivers utterances).
    audio = np.concatenate([silence(0.2), espeak(sentence, speed=120), silence(0.2)])
    heard = sphinx.transcribe(audio)
    assert content_words(heard) & content_words(sentence), heard


def test_pocketsphinx_transcribes_real_ravdess_speech(sphinx):
    truths = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
    clips = read_clips(ravdess_clips(4, actor="Actor_01"))  # Actor_01: statements 01 and 02, two repetitions each (sorted names)
    recalls, doors = [], 0
    for clip, statement in zip(clips, ("01", "01", "02", "02")):
        heard = set(words(sphinx.transcribe(clip)))
        truth = words(truths[statement])
        recalls.append(sum(w in heard for w in truth) / len(truth))
        doors += "door" in heard
    assert doors >= 3 and np.mean(recalls) >= 0.5, recalls


def test_pocketsphinx_hears_nothing_in_silence_and_rejects_bad_input(sphinx):
    assert sphinx.transcribe(silence(1.0)) == ""
    assert sphinx.transcribe(np.zeros(0, np.float32)) == ""
    with pytest.raises(ValueError, match="NaN"):
        sphinx.transcribe(np.full(1600, np.nan, np.float32))
    with pytest.raises(ValueError, match="float"):
        sphinx.transcribe(np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="mono"):
        sphinx.transcribe(np.zeros((1600, 2), np.float32))


def test_make_asr_specs(tmp_path):
    assert make_asr("none") is None and make_asr(None) is None
    assert isinstance(make_asr("pocketsphinx"), PocketSphinxASR)
    custom = ASRBackend()
    assert make_asr(custom) is custom
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_asr(f"whisper:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="local model folder"):
        make_asr("whisper:")
    with pytest.raises(ValueError, match="unknown asr"):
        make_asr("google")
    with pytest.raises(TypeError):
        make_asr(3)


def test_whisper_with_a_folder_that_is_no_model_fails_clearly_without_download(tmp_path):
    with pytest.raises(Exception, match="not a CTranslate2 Whisper folder"):
        WhisperASR(tmp_path)


class FakeASR(ASRBackend):
    """Answers, raises, returns junk or hangs on demand (hangs until `release` is set)."""

    name = "fake"

    def __init__(self, mode="ok"):
        self.mode = mode
        self.release = threading.Event()
        self.calls = 0

    def transcribe(self, audio):
        self.calls += 1
        if self.mode == "error":
            raise RuntimeError("decoder crashed")
        if self.mode == "junk":
            return 42
        if self.mode == "hang":
            self.release.wait(30)
        return f"{len(audio)} samples"


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def test_worker_returns_the_text():
    with ASRWorker(FakeASR(), timeout_s=2.0) as worker:
        assert worker.transcribe(np.zeros(160, np.float32)) == "160 samples"
        assert worker.stats["ok"] == 1


@pytest.mark.parametrize("mode", ["error", "junk"])
def test_worker_turns_a_failing_backend_into_none_quickly(mode):
    backend = FakeASR(mode)
    with ASRWorker(backend, timeout_s=2.0) as worker:
        result, took = timed(worker.transcribe, np.zeros(160, np.float32))
        assert result is None and took < 0.5
        assert worker.stats["error"] == 1 and worker.last_error
        backend.mode = "ok"  # it recovers for the next utterance
        assert worker.transcribe(np.zeros(10, np.float32)) == "10 samples"


def test_worker_does_not_wait_for_a_hung_backend_nor_pile_up_threads():
    backend = FakeASR("hang")
    worker = ASRWorker(backend, timeout_s=0.3)
    threads_before = threading.active_count()
    audio = np.zeros(160, np.float32)
    result, took = timed(worker.transcribe, audio)
    assert result is None and 0.25 < took < 1.0
    assert worker.stats["timeout"] == 1 and worker.busy
    for _ in range(20):  # still hung: answered at once, no new thread, no queued work
        result, took = timed(worker.transcribe, audio)
        assert result is None and took < 0.05
    assert threading.active_count() == threads_before
    assert backend.calls == 1 and worker.stats["busy"] == 20
    backend.mode = "ok"
    backend.release.set()  # the backend comes back: the worker serves again
    deadline = time.monotonic() + 2.0
    while worker.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.transcribe(audio) == "160 samples"
    assert worker.close(timeout=2.0)


def test_worker_close_does_not_hang_on_a_hung_backend_and_rejects_bad_input():
    backend = FakeASR("hang")
    worker = ASRWorker(backend, timeout_s=0.1)
    with pytest.raises(ValueError, match="NaN"):
        worker.transcribe(np.array([np.nan], np.float32))
    assert backend.calls == 0
    assert worker.transcribe(np.zeros(10, np.float32)) is None
    ended, took = timed(worker.close, 0.2)
    assert not ended and took < 0.5  # the hung (daemon) thread is left behind, not waited for
    assert worker.transcribe(np.zeros(10, np.float32)) is None  # closed: no new work
    backend.release.set()
    assert worker.close(timeout=2.0)
    with pytest.raises(ValueError, match="timeout_s"):
        ASRWorker(FakeASR(), timeout_s=0)


def test_pocketsphinx_model_ships_with_the_package_no_network(monkeypatch):
    import socket
    from pathlib import Path

    import pocketsphinx

    def no_network(*args, **kwargs):
        raise AssertionError("the ASR tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    asr = PocketSphinxASR()
    model_dir = Path(pocketsphinx.get_model_path())
    assert model_dir in Path(asr._decoder.config["hmm"]).parents
    assert isinstance(asr.transcribe(espeak("hello")), str)
