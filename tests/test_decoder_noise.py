"""A damaged video gives one line about its damage, not one per FFmpeg message (a corrupt mp4 once
printed 761 "ERROR libav..." lines): the decoder's own log is silenced, the damage counted."""

from __future__ import annotations

import logging

import av.logging
import pytest
from momke.realtime.session import DEMO_DIR
from realtime_support import replay_session
from test_realtime_faults import damaged_copy


@pytest.fixture
def libav_logging_on():
    """As after the text extractor loads: a library it imports (torchvision.io) has PyAV forward
    FFmpeg's log to Python logging."""
    previous, logger_level = av.logging.get_level(), logging.getLogger("libav").level
    av.logging.set_level(av.logging.ERROR)
    yield
    av.logging.set_level(previous)
    logging.getLogger("libav").setLevel(logger_level)


def test_a_damaged_replay_logs_no_decoder_message_and_counts_the_damage(libav_logging_on, tmp_path, caplog):
    bad = damaged_copy(DEMO_DIR / "conversation.mp4", tmp_path)
    session = replay_session({"path": bad})
    with caplog.at_level(logging.WARNING), session:
        events = list(session.events())
    assert events
    noise = [r for r in caplog.records if r.name.startswith("libav")]
    assert noise == [], f"{len(noise)} decoder messages, first: {noise[0].getMessage()}"
    problems = session.replay_problems
    assert len(problems) == 2 and all("damaged packet(s) skipped" in p for p in problems), problems
