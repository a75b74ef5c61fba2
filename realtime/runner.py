"""The session's threads and queues, all in one place; the stages (pipeline.py, dispatch.py) have none.

`Runner` drives `Segmentation.segment`, `UtteranceProcessor.process` (transcribe, extract,
predict) and `Delivery.dispatch` in one of two ways:

- threaded (a live session, a real-time replay): "momke-segmentation" takes the audio queue to
  the utterance queue, "momke-pipeline" the utterance queue to the outbox, "momke-events" the
  outbox to the delivery. The utterance queue is bounded: when the processing is far behind, the
  oldest waiting utterance gives way (a DroppedUtteranceEvent says so), since live audio cannot
  wait;
- synchronous (`sync=True`, a replay as fast as possible): one thread, "momke-events", segments a
  chunk, processes each utterance it closed and dispatches its events before the next chunk:
  nothing queued between the stages and nothing to wait for, so a callback that flips a switch
  takes effect from the next utterance on, and the replay goes as fast as the stages do.

Either way, what other threads emit (capture threads' status events, the caller's switches) goes
through the outbox and is dispatched on "momke-events", in order; every extractor loads on a
thread of its own ("momke-warmup-M") in parallel with capture, and audio and visual features are
computed on a small pool ("momke-extract") while the ASR runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..models.config import MODALITIES
from .buffers import ChunkQueue
from .dispatch import Delivery, Outbox
from .events import DroppedUtteranceEvent
from .health import HealthMonitor
from .options import LiveOptions
from .pipeline import Extraction, Prediction, Segmentation, Transcription, UtteranceProcessor
from .sources import END_OF_STREAM

log = logging.getLogger(__name__)

_END_OF_UTTERANCES = object()
UTTERANCES_WAITING = 16  # threaded: utterances cut and not yet processed, at most


class Runner:
    def __init__(self, options: LiveOptions, audio_queue: ChunkQueue, segmentation: Segmentation,
                 extraction: Extraction, transcription: Transcription, prediction: Prediction, delivery: Delivery,
                 outbox: Outbox, health: HealthMonitor, stop: threading.Event, gate: threading.Event,
                 on_finished: Callable[[], None], sync: bool | None = None) -> None:
        """options: the session's (a replay as fast as possible runs synchronously); gate: set
        when the session is ready (segmentation begins then); on_finished(): a replay has been
        processed to its end; sync: False runs a fast replay on threads too (tests compare the
        two), its utterance queue then waiting for room instead of dropping the oldest."""
        self.audio_queue = audio_queue
        self.segmentation = segmentation
        self.extraction = extraction
        self.delivery = delivery
        self.health = health
        self.stop_event = stop
        self.gate = gate
        self.on_finished = on_finished
        self.sync = options.fast if sync is None else sync
        self.wait_for_room = options.fast
        self.outbox = outbox  # what the stages (and the session) emit, for "momke-events"
        self.utterances = ChunkQueue(maxsize=UTTERANCES_WAITING)  # threaded: cut, waiting for processing
        self.pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="momke-extract")
        self.processor = UtteranceProcessor(extraction, transcription, prediction, health, self.pool.submit, self.warm_up)
        self.workers: list[threading.Thread] = []  # threads that end when processing does
        self.events_thread: threading.Thread | None = None
        self._warm_ups: list[threading.Thread] = []
        self._in_hand: list = []  # synchronous: utterances cut by the chunk in hand, not yet processed
        self._closing = False

    # ------------------------------------------------------------------------- control
    def emit(self, event) -> None:
        """Queue an event for dispatch on "momke-events" (from any thread; never waits)."""
        self.outbox.post(event)

    def start(self) -> None:
        """Start the threads (the gate may be set already)."""
        if self.sync:
            self.events_thread = self._spawn("momke-events", self._run_sync)
        else:
            self.events_thread = self._spawn("momke-events", self._deliver_until_closed)
            self.workers.append(self._spawn("momke-segmentation", self._run_segmentation))
            self.workers.append(self._spawn("momke-pipeline", self._run_processing))

    def _spawn(self, name: str, target) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def warm_up(self, modalities) -> None:
        """Load these extractors now, each on a thread of its own (see Extraction.warm_up)."""
        for m in modalities:
            if self.extraction.claim_warm_up(m):
                self._warm_ups.append(self._spawn(f"momke-warmup-{m}", lambda m=m: self.extraction.warm_up(m)))

    def close(self) -> None:
        """After stop (or the end): dispatch what is queued, then end "momke-events"."""
        self._closing = True
        self.outbox.wake()

    def threads(self) -> list[threading.Thread]:
        """Every thread this runner started (and the warm-ups), for stop() and join()."""
        return [*self.workers, *self._warm_ups, *([self.events_thread] if self.events_thread else [])]

    def forget(self, modality: str) -> None:
        """Privacy: utterances waiting for processing, and the one being processed (and the
        conversation context); the session has the outbox forget the events not yet dispatched."""
        for pending in [*self.utterances.items(), *self._in_hand]:
            if hasattr(pending, "forget"):
                pending.forget(modality)
        self.processor.forget(modality)

    # ------------------------------------------------------------------------- the loops
    # Each item is handled in a call of its own, so a loop keeps nothing of it referenced while
    # it waits for the next one (privacy: a switched-off modality's data is not held).
    def _run_sync(self) -> None:
        try:
            if self._wait_for_gate():
                _one_torch_thread()
                while not self.stop_event.is_set() and self._segment_and_process(self.audio_queue.get(timeout=0.1)):
                    pass
        finally:
            self._finish()
            self._deliver_until_closed()

    def _segment_and_process(self, item) -> bool:
        self._dispatch_pending()
        if item is None:  # idle: load the extractor of a modality switched on since
            self.warm_up([m for m in MODALITIES if self.health.enabled(m)])
        self._in_hand = self.segmentation.segment(item)
        more, item = item is not END_OF_STREAM, None  # the chunk is let go before its utterances are processed
        while self._in_hand:
            pending = self._in_hand.pop(0)
            pending.keep_enabled(self.health)
            for event in self.processor.process(pending):
                self.outbox.post(event)
            pending = None
            self._dispatch_pending()  # delivered before the next utterance: a replay is deterministic
        return more

    def _run_segmentation(self) -> None:
        if not self._wait_for_gate():
            return
        _one_torch_thread()
        while not self.stop_event.is_set() and self._segment(self.audio_queue.get(timeout=0.1)):
            pass

    def _segment(self, item) -> bool:
        for pending in self.segmentation.segment(item):
            if self.wait_for_room:
                self.utterances.put(pending, block=True, stop=self.stop_event)
                evicted = None
            else:
                evicted = self.utterances.put_evicting(pending)
            pending.keep_enabled(self.health)  # a switch flipped while it was handed on
            if evicted is not None:  # the processing is far behind: the oldest gives way
                self.emit(DroppedUtteranceEvent(
                    evicted.id, evicted.start, evicted.end,
                    f"pipeline overloaded: more than {self.utterances.maxsize} utterances waiting for extraction",
                    segmentation=evicted.segmentation,
                ))
        if item is END_OF_STREAM:
            self.utterances.put(_END_OF_UTTERANCES, block=True, stop=self.stop_event)
            return False
        return True

    def _run_processing(self) -> None:
        try:
            while not self.stop_event.is_set() and self._process(self.utterances.get(timeout=0.1)):
                pass
        finally:
            self._finish()

    def _process(self, item) -> bool:
        if item is None:  # idle: load the extractor of a modality switched on since
            self.warm_up([m for m in MODALITIES if self.health.enabled(m)])
            return True
        if item is _END_OF_UTTERANCES:
            return False
        for event in self.processor.process(item):
            self.emit(event)
        return True

    def _finish(self) -> None:
        """The processing ended (the replay's end, or stop)."""
        self.pool.shutdown(wait=not self.stop_event.is_set(), cancel_futures=True)  # on stop: not waited for
        for thread in list(self._warm_ups):  # a replay ended before a load did: let it end first
            while thread.is_alive() and not self.stop_event.is_set():
                thread.join(0.1)
        self.on_finished()

    def _dispatch_pending(self) -> None:
        while (taken := self.outbox.take(0)) is not None:
            self._dispatch(*taken)

    def _deliver_until_closed(self) -> None:
        while True:
            taken = self.outbox.take(0.1)
            if taken is None:
                if self._closing:
                    return
                continue
            self._dispatch(*taken)

    def _dispatch(self, event, wall_time: float) -> None:
        try:
            self.delivery.dispatch(event, wall_time)
        except Exception:  # a failing sink must not end delivery
            log.exception("delivering an event failed")

    def _wait_for_gate(self) -> bool:
        while not self.gate.wait(0.05):
            if self.stop_event.is_set():
                return False
        return not self.stop_event.is_set()


def _one_torch_thread() -> None:
    import torch

    # The VAD's ops are tiny: on one core a 32 ms window costs about 1 ms, while an OpenMP pool
    # costs tens of ms on a busy CPU. Set once for the segmenting thread (the setting is per
    # thread, so the extractors on the pool keep theirs).
    torch.set_num_threads(1)
