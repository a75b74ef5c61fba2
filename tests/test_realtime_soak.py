"""Soak: a long recording replayed as fast as possible keeps memory flat and the context bounded."""

from __future__ import annotations

import numpy as np
import pytest
from momke.realtime import EmotionEvent, LiveSession
from realtime_support import RATE, ravdess_clips, session_threads, spy_model, spy_profile, wait_for
from synth_speech import read_clips


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def long_recording(path, minutes: float):
    """RAVDESS clips, each followed by a pause, repeated to `minutes` of audio (16-bit wav)."""
    import soundfile as sf

    clips = read_clips(ravdess_clips(6))
    pause = np.zeros(int(1.2 * RATE), np.float32)
    count = 0
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        written = 0
        while written < minutes * 60 * RATE:
            clip = clips[count % len(clips)]
            out.write(np.concatenate([clip, pause]))
            written += len(clip) + len(pause)
            count += 1
    return count


@pytest.mark.parametrize(
    "minutes", [pytest.param(2, id="2min"), pytest.param(30, id="30min", marks=pytest.mark.slow)]
)
def test_long_replay_memory_flat_and_context_bounded(tmp_path, minutes):
    path = tmp_path / "long.wav"
    clips = long_recording(path, minutes)
    max_context = 12
    session = LiveSession(input_file=path, realtime=False, asr="none", checkpoint=spy_model(),
                          profile=spy_profile(record=False), max_context=max_context)
    samples, context_lengths = [], []

    def on_event(event):
        if isinstance(event, EmotionEvent):
            context_lengths.append(len(session.context))
            if event.utterance_id % 10 == 0:
                samples.append(rss_mb())
            assert len(session.frames) == 0 and len(session.texts) == 0
            assert len(session.audio_queue) <= 16 and len(session.utterances) <= 16

    session.on_event(on_event)
    with session:
        events = list(session.events())
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    # RAVDESS clips sometimes hold a breath pause the VAD splits on: at least one event per clip.
    assert len(emotions) >= clips and not [e for e in events if e.type == "dropped"]
    assert max(context_lengths) == max_context and min(context_lengths[max_context:]) >= 1
    assert len(session.context.utterances) <= max_context
    # Memory after warm-up stays flat: the last quarter is within a few MB of the first.
    quarter = max(1, len(samples) // 4)
    early, late = np.median(samples[quarter: 2 * quarter]), np.median(samples[-quarter:])
    print(f"\nsoak {minutes} min: {len(emotions)} events, RSS {early:.0f} -> {late:.0f} MB "
          f"(min {min(samples):.0f}, max {max(samples):.0f}), context <= {max(context_lengths)}")
    assert late - early < 10, (early, late, samples)
    assert wait_for(lambda: session_threads() == [], 5)
