"""The terminal view: its rendering and the state it folds events into (hand-made events, view
only), and the real `momke-live --demo` drawing in a real terminal (tmux, capture-pane)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from frontend_support import REPO, demo_transcript, frontend_checkpoint
from momke.realtime.events import DroppedUtteranceEvent, EmotionEvent, StatusEvent
from momke.realtime.live_state import LiveState, format_summary
from momke.realtime.terminal_view import event_line, render
from rich.console import Console


def emotion(uid: int, label: str, probs: dict, modalities=("audio", "text"), loads=None, text="hello") -> EmotionEvent:
    loads = loads or {m: {"audio": 0.5, "text": 0.3, "visual": 0.2} for m in modalities}
    return EmotionEvent(uid, uid * 2.0, uid * 2.0 + 1.5, label, probs, list(modalities), text, loads, {"total": 120.0})


def rendered(state: LiveState, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render(state.snapshot(), "test"))
    return console.export_text()


def test_state_folds_events_and_view_shows_them():
    state = LiveState()
    state.update(StatusEvent("visual", "disabled", "switched off", 0.0))
    state.update(StatusEvent("audio", "active", "", 0.1))
    state.update(emotion(0, "sad", {"happy": 0.1, "sad": 0.7, "neutral": 0.1, "angry": 0.1},
                         loads={"audio": {"audio": 0.6, "text": 0.3, "visual": 0.1},
                                "text": {"audio": 0.2, "text": 0.7, "visual": 0.1}}, text="my dog died"))
    state.update(emotion(1, "angry", {"happy": 0.05, "sad": 0.05, "neutral": 0.1, "angry": 0.8},
                         loads={"audio": {"audio": 0.8, "text": 0.1, "visual": 0.1},
                                "text": {"audio": 0.2, "text": 0.5, "visual": 0.3}}, text="this is unfair"))
    state.update(DroppedUtteranceEvent(2, 5.0, 6.0, "every modality missing"))

    snap = state.snapshot()
    assert snap.current.label == "angry" and snap.labels == ["happy", "sad", "neutral", "angry"]
    assert snap.label_counts == {"sad": 1, "angry": 1}
    assert snap.mean_expert_loads["audio"]["audio"] == pytest.approx(0.7)
    assert snap.status["visual"].state == "disabled" and snap.status["audio"].state == "active"

    text = rendered(state)
    assert "ANGRY" in text and "utterance #1" in text
    assert "0.80" in text  # the current probability of angry
    assert "disabled" in text and "switched off" in text
    assert "0.80 (0.70)" in text  # expert load now (mean over the conversation)
    assert "my dog died" in text and "this is unfair" in text
    assert "dropped 1" in text

    summary = state.summary(wall_s=3.0)
    assert summary["utterances"] == 2 and summary["dropped"] == 1
    assert summary["modalities_used"] == {"audio": 2, "text": 2, "visual": 0}
    assert "2 utterance(s) scored, 1 dropped" in format_summary(summary)


def test_empty_view_and_event_lines():
    assert "waiting for the first utterance" in rendered(LiveState())
    line = event_line(emotion(3, "happy", {"happy": 0.9, "sad": 0.1}, text="great"))
    assert "#3" in line and "happy" in line and "0.90" in line and "'great'" in line
    assert "visual: missing (no face)" in event_line(StatusEvent("visual", "missing", "no face", 1.0))
    assert "dropped: why" in event_line(DroppedUtteranceEvent(4, 1.0, 2.0, "why"))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (bash .ci/setup installs it)")
def test_live_view_updates_in_a_real_terminal(tmp_path_factory):
    checkpoint = frontend_checkpoint(tmp_path_factory)
    name = f"momke-{uuid.uuid4().hex[:8]}"
    command = (f"{sys.executable} -m momke.realtime.cli --demo --fast --privacy visual --checkpoint {checkpoint}; "
               f"echo EXIT=$?; sleep 600")
    # A private tmux server on a socket in the test's temporary folder: it never touches anyone
    # else's sessions and leaves no socket behind.
    tmux = ["tmux", "-S", str(tmp_path_factory.mktemp("tmux") / "socket")]
    subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "120", "-y", "60", "-c", str(REPO), command],
                   check=True, env={"HF_HUB_OFFLINE": "1", "TERM": "xterm-256color", "PATH": "/usr/bin:/bin"})
    seen, screen = set(), ""
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name, "-S", "-80"],
                                    check=False, capture_output=True, text=True).stdout
            for line in screen.splitlines():
                if "utterance #" in line:
                    seen.add(line.split("utterance #")[1].split()[0])
            if "EXIT=" in screen:
                break
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
    n = len(demo_transcript())
    assert "EXIT=0" in screen, screen
    assert len(seen) >= 2, f"the view never changed utterance: {seen}\n{screen}"  # it updated while running
    assert f"utterance #{n - 1}" in screen and f"utterances {n}" in screen
    assert re.search(r"visual\s+disabled", screen)
    assert "Soft Router" in screen and "expert audio" in screen
    assert f"{n} utterance(s) scored" in screen  # the summary at exit
    assert "Traceback" not in screen
