"""Privacy: once text is switched off, the ASR worker's thread holds nothing of the last utterance
(its transcript once stayed in the worker's locals while it waited for the next job)."""

from __future__ import annotations

import gc
import sys
import uuid
import weakref

import numpy as np
from momke.realtime.asr import ASRBackend, ASRWorker


class WordsASR(ASRBackend):
    name = "words"

    def transcribe(self, audio):
        return f"the secret words {uuid.uuid4().hex}"  # a fresh string: found only where it is held


def held_by_thread(worker: ASRWorker, value) -> list[str]:
    """Names of the worker thread's frame locals that hold `value` (or a job holding it)."""
    frame = sys._current_frames()[worker._thread.ident]
    found = []
    while frame is not None:
        for name, local in frame.f_locals.items():
            if local is value or getattr(local, "result", None) is value or getattr(local, "audio", None) is value:
                found.append(f"{frame.f_code.co_name}:{name}")
        frame = frame.f_back
    return found


def test_asr_worker_keeps_no_transcript_nor_audio_once_text_is_switched_off():
    with ASRWorker(WordsASR(), timeout_s=2.0) as worker:
        audio = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
        samples = weakref.ref(audio)
        text = worker.transcribe(audio)
        assert text.startswith("the secret words")
        worker.forget("text")
        del audio
        gc.collect()
        assert samples() is None  # the worker let go of the utterance's samples
        assert held_by_thread(worker, text) == []
        assert worker._job is None and worker._queued is None
        assert [r for r in gc.get_referrers(text) if r is not sys._getframe()] == []


def test_a_job_forgotten_before_it_runs_is_not_transcribed():
    from momke.realtime.asr import _Job

    class Counting(WordsASR):
        calls = 0

        def transcribe(self, audio):
            Counting.calls += 1
            return super().transcribe(audio)

    worker = ASRWorker(Counting(), timeout_s=1.0)
    assert worker.close()  # its thread ended: this test drives the worker's loop itself
    job = _Job(np.zeros(1600, np.float32))
    with worker._lock:
        worker._closed, worker._queued, worker._job = False, job, job  # as transcribe() leaves it
    worker.forget("text")  # switched off before the worker took the job
    assert worker._serve_next() is True
    assert job.done.is_set() and job.result is None and job.audio is None
    assert Counting.calls == 0 and worker.stats["error"] == 0
