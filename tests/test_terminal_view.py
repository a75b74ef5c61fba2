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
from momke.realtime.events import DroppedUtteranceEvent, EmotionEvent, ReadyEvent, StatusEvent
from momke.realtime.ui.live_state import LiveState, format_summary
from momke.realtime.ui.terminal_view import event_line, render
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
    ready = event_line(ReadyEvent(0.0, 1234.0, ["audio", "text"]))  # a line for people, not a Python repr
    assert ready.startswith("[   0.00] ready: capturing audio, text (started in 1.2 s") and "ReadyEvent" not in ready


def test_sensors_are_loading_not_missing_before_their_extractors_are_warm():
    empty = rendered(LiveState())  # before any status event: starting, not a red "missing"
    assert "missing" not in empty and empty.count("loading") == 3
    state = LiveState()
    state.update(StatusEvent("audio", "loading", "loading its extractor", 0.0))
    text = ansi(state)
    assert "loading" in text and "\x1b[31mloading" not in text  # not in red


def ansi(state: LiveState, width: int = 80, height: int | None = None) -> str:
    """The view as a terminal receives it (standard 16-colour escape codes)."""
    console = Console(width=width, height=height or 24, color_system="standard", force_terminal=True,
                      file=io.StringIO(), legacy_windows=False)
    console.print(render(state.snapshot(), "test", height=height))
    return console.file.getvalue()


# White (or bright white) text: unreadable on a light terminal.
WHITE = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:37|97|38;5;(?:7|15)|38;2;255;255;255)m")


def conversation(n: int, with_own_readings: bool = True) -> LiveState:
    state = LiveState()
    state.update(StatusEvent("audio", "active", "", 0.0))
    state.update(StatusEvent("text", "active", "", 0.0))
    state.update(StatusEvent("visual", "disabled", "switched off", 0.0))
    labels = ["happy", "sad", "neutral", "angry"]
    for uid in range(n):
        probs = dict.fromkeys(labels, 0.1)
        probs[labels[uid % 4]] = 0.7
        event = emotion(uid, labels[uid % 4], probs, text=f"sentence number {uid} " + "and more words " * 8)
        if with_own_readings:
            event.modality_probabilities = {"audio": {"happy": 0.1, "sad": 0.6, "neutral": 0.2, "angry": 0.1},
                                            "text": probs}
        state.update(event)
    return state


def test_colours_read_on_dark_and_light_terminals_and_transcript_labels_are_coloured():
    out = ansi(conversation(8), width=100)
    assert not WHITE.search(out), "white text would vanish on a light terminal"
    transcript = out[out.index("Transcript"):]
    # Each transcript label in its colour (the label was padded before the colour lookup before).
    assert "\x1b[1;34msad" in transcript and "\x1b[1;32mhappy" in transcript and "\x1b[1;31mangry" in transcript
    plain_rows = [line for line in transcript.splitlines() if "sentence number" in line]
    assert plain_rows and all("\x1b[3" not in line.split("sentence number")[1] for line in plain_rows)  # text: default colour


def test_view_fits_80x24_with_the_transcript_visible():
    for n in (0, 1, 3, 40):
        text = rendered_at(conversation(n), 80, 24)
        lines = text.splitlines()
        assert len(lines) <= 23, f"{n} utterances: {len(lines)} lines\n{text}"  # one row left for the cursor
        assert all(len(line) <= 80 for line in lines)
        assert "Transcript" in text
        if n:
            assert f"#{n - 1} " in text and f"sentence number {n - 1}" in text  # the latest line is shown
    many = rendered_at(conversation(40), 80, 40)
    assert len(many.splitlines()) <= 39 and many.count("sentence number") > rendered_at(conversation(40), 80, 24).count(
        "sentence number")  # a taller terminal shows more transcript


def rendered_at(state: LiveState, width: int, height: int) -> str:
    console = Console(width=width, height=height, record=True, color_system=None, file=io.StringIO())
    console.print(render(state.snapshot(), "momke-live · demo conversation (fast replay)", height=height))
    return console.export_text()


def test_each_modality_shows_its_own_reading_beside_the_fused_one():
    text = rendered(conversation(2))
    assert re.search(r"audio\s+active\s+own: sad 0\.60", text)
    assert re.search(r"text\s+active\s+own: sad 0\.70", text)  # the fused label of #1 is sad
    assert re.search(r"visual\s+disabled\s+switched off", text)
    assert "SAD" in text
    line = event_line(conversation(2).snapshot().current)
    assert "[audio=sad text=sad]" in line
    # Events without per-modality probabilities (older engines) say which modalities were used.
    assert re.search(r"audio\s+active\s+✓ used", rendered(conversation(2, with_own_readings=False)))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (bash .ci/setup installs it)")
def test_live_view_updates_in_a_real_80x24_terminal(tmp_path_factory):
    checkpoint = frontend_checkpoint(tmp_path_factory)
    name = f"momke-{uuid.uuid4().hex[:8]}"
    command = (f"{sys.executable} -m momke.realtime.ui.cli --demo --fast --privacy visual --checkpoint {checkpoint}; "
               f"echo EXIT=$?; sleep 600")
    # A private tmux server on a socket in the test's temporary folder: it never touches anyone
    # else's sessions and leaves no socket behind.
    tmux = ["tmux", "-S", str(tmp_path_factory.mktemp("tmux") / "socket")]
    subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(REPO), command],
                   check=True, env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin"})

    def capture(*extra: str) -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", name, *extra],
                              check=False, capture_output=True, text=True).stdout

    seen, screen, whole_views, coloured = set(), "", 0, ""
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            visible = capture("-e")  # the 24 rows on screen, with colours
            plain = re.sub(r"\x1b\[[0-9;]*m", "", visible)
            for line in plain.splitlines():
                if "utterance #" in line:
                    seen.add(line.split("utterance #")[1].split()[0])
            if "Emotion" in plain and "Transcript" in plain and re.search(r"│ #\d+ ", plain):
                whole_views += 1  # header, emotion and a transcript row on one 80x24 screen
                coloured = visible
            screen = capture("-S", "-80")
            if "EXIT=" in screen:
                break
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
    n = len(demo_transcript())
    assert "EXIT=0" in screen, screen
    assert len(seen) >= 2, f"the view never changed utterance: {seen}\n{screen}"  # it updated while running
    assert whole_views, f"the view never fit the 80x24 screen with its transcript\n{screen}"
    assert not WHITE.search(coloured), "white text would vanish on a light terminal"
    assert f"utterance #{n - 1}" in screen and f"utterances {n}" in screen
    assert re.search(r"visual\s+disabled", screen)
    assert "Soft Router" in screen and "expert audio" in screen
    assert demo_transcript()[-1]["text"][:40] in screen  # the last line of the conversation, in the transcript
    assert f"{n} utterance(s) scored" in screen  # the summary at exit
    assert "Traceback" not in screen
