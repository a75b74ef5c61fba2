"""The runner: the same stage objects driven on threads or one after another give the same events."""

import threading
import time

import pytest
from momke.realtime import DroppedUtteranceEvent, EmotionEvent, LiveSession
from momke.realtime.pipeline import PendingUtterance, Segmentation
from momke.realtime.sources import END_OF_STREAM
from realtime_support import all_events, session_threads, spy_model, spy_profile, wait_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def demo_run(synchronous: bool) -> tuple[list, list[str]]:
    """The bundled demo replayed as fast as possible (spy extractors, a real untrained MoMKE): its
    utterances' events, and the names of the runner's worker threads."""
    session = LiveSession.demo(realtime=False, asr=None, checkpoint=spy_model(), profile=spy_profile(), device="cpu")
    session.synchronous = synchronous
    seen: list[str] = []
    session.on_event(lambda event: seen.append(threading.current_thread().name))
    events = all_events(session)
    assert set(seen) == {"momke-events"}  # callbacks run on the event thread either way
    return [e for e in events if isinstance(e, (EmotionEvent, DroppedUtteranceEvent))], \
        [t.name for t in session._runner.workers]


def test_the_synchronous_and_the_threaded_replay_give_the_same_events():
    together, no_workers = demo_run(synchronous=True)
    apart, workers = demo_run(synchronous=False)
    assert no_workers == [] and workers == ["momke-segmentation", "momke-pipeline"]
    assert len(together) >= 5 and all(isinstance(e, EmotionEvent) for e in together)
    assert [type(e) for e in apart] == [type(e) for e in together]
    for a, b in zip(together, apart):
        assert (a.utterance_id, a.start, a.end, a.segmentation) == (b.utterance_id, b.start, b.end, b.segmentation)
        assert (a.label, a.modalities, a.transcript) == (b.label, b.modalities, b.transcript)
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
        for m in a.modality_probabilities:
            assert a.modality_probabilities[m] == pytest.approx(b.modality_probabilities[m], abs=1e-5)
    assert {e.transcript for e in together} - {None}  # the demo's words reached the events


def test_a_stage_is_driven_with_no_thread_and_no_queue():
    """Segmentation cuts text utterances from plain calls (no microphone: each text is one)."""
    from momke.extractors.served import ServingOptions
    from momke.realtime.buffers import FrameBuffer, TextBuffer, TextItem
    from momke.realtime.health import HealthMonitor

    texts = TextBuffer()
    health = HealthMonitor(lambda event: None, lambda: 0.0)
    segmentation = Segmentation(ServingOptions().segmenter(), FrameBuffer(keep_s=4.0, max_frames=8), texts, health, lambda: 0.0, live=False,
                                has_audio_source=False, has_text_source=True)
    before = set(session_threads())
    texts.add(TextItem("hello there", 0.5, 1.5))
    texts.add(TextItem("and again", 2.0, 3.0))
    cut = segmentation.segment(END_OF_STREAM)
    assert [(u.transcript, u.start, u.end, u.segmentation) for u in cut] == \
        [("hello there", 0.5, 1.5, "text"), ("and again", 2.0, 3.0, "text")]
    assert all(isinstance(u, PendingUtterance) for u in cut) and [u.id for u in cut] == [0, 1]
    assert segmentation.segment(None) == []  # nothing left, nothing held
    assert wait_for(lambda: set(session_threads()) <= before, 1)


@pytest.mark.parametrize("caller", ["host", "callback"])
def test_a_synchronous_replay_stopped_midway_returns_within_a_second(caller):
    """stop() from the host's thread or from a callback (the replay's own thread) while a
    synchronous replay is inside its utterances: it returns at once and no thread is left."""
    profile = spy_profile()
    profile.text.extract_s = 0.2
    session = LiveSession.demo(realtime=False, asr=None, checkpoint=spy_model(), profile=profile, device="cpu")
    assert session.synchronous
    took: list[float] = []

    def stop_now():
        began = time.monotonic()
        session.stop()
        took.append(time.monotonic() - began)

    session.on_event(lambda event: caller == "callback" and isinstance(event, EmotionEvent) and not took and stop_now())
    session.start()
    if caller == "host":
        assert wait_for(lambda: len(profile.text.calls) >= 2, 20)
        stop_now()
    assert wait_for(lambda: took, 20) and took[0] < 1.0
    assert session.wait(1)  # events() ends too
    assert wait_for(lambda: session_threads() == [], 3), session_threads()
    assert len(profile.text.calls) < 7  # it did stop midway (the demo has 7 utterances)
