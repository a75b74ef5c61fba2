"""`momke-live` end to end: the bundled demo replayed through the real LiveSession (no devices),
JSON lines on stdout, privacy, exit codes and messages, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from frontend_support import REPO, demo_transcript, frontend_checkpoint, momke_live

MODALITIES = {"audio", "text", "visual"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(frontend_checkpoint(tmp_path_factory))


def parse_events(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    assert lines, "no output on stdout"
    events = [json.loads(line) for line in lines]  # every stdout line must be one JSON event
    assert all(e["type"] in {"emotion", "status", "dropped", "ready"} for e in events)
    return events


def overlap(a0, a1, b0, b1) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@pytest.fixture(scope="module")
def demo_run(checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "events.jsonl"
    result = momke_live("--demo", "--fast", "--json", "--checkpoint", checkpoint, "--device", "cpu", "--log", str(log))
    return result, log


def test_demo_json_emits_one_well_formed_event_per_demo_utterance(demo_run):
    result, log = demo_run
    assert result.returncode == 0, result.stderr
    events = parse_events(result.stdout)
    emotions = [e for e in events if e["type"] == "emotion"]
    transcript = demo_transcript()
    assert len(emotions) == len(transcript), [e.get("transcript") for e in emotions]
    for event, line in zip(emotions, transcript):
        assert overlap(event["start"], event["end"], line["start"], line["end"]) > 0.8 * (line["end"] - line["start"])
        assert event["transcript"] == line["text"]
        probs = event["probabilities"]
        assert event["label"] == max(probs, key=probs.get)
        assert abs(sum(probs.values()) - 1.0) < 1e-3 and all(0 <= p <= 1 for p in probs.values())
        assert set(event["modalities"]) == MODALITIES  # the demo has speech, a face and a transcript
        assert set(event["expert_loads"]) == set(event["modalities"])
        for loads in event["expert_loads"].values():
            assert abs(sum(loads.values()) - 1.0) < 1e-3
        assert event["latency_ms"]["total"] >= 0
    assert [e["utterance_id"] for e in emotions] == sorted({e["utterance_id"] for e in emotions})
    # The log holds the same events; the summary goes to stderr, never stdout.
    header, *logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert header["type"] == "session"
    assert [{k: v for k, v in e.items() if k not in ("session", "wall_time")} for e in logged] == parse_events(result.stdout)
    assert f"{len(transcript)} utterance(s) scored" in result.stderr
    assert "Traceback" not in result.stderr


def test_privacy_visual_never_reports_visual_as_used(checkpoint):
    result = momke_live("--demo", "--fast", "--json", "--privacy", "visual", "--checkpoint", checkpoint, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    events = parse_events(result.stdout)
    emotions = [e for e in events if e["type"] == "emotion"]
    assert len(emotions) == len(demo_transcript())
    for event in emotions:
        assert "visual" not in event["modalities"]
        assert "visual" not in event["expert_loads"]
        assert set(event["modalities"]) == {"audio", "text"}
    visual_states = [e["state"] for e in events if e["type"] == "status" and e["modality"] == "visual"]
    assert visual_states and set(visual_states) == {"disabled"}


def test_no_device_gives_the_command_to_type_and_exit_code_2():
    result = momke_live("--no-mic", "--no-camera")
    assert result.returncode == 2
    assert "momke-live --demo" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_no_device_detected_at_all(capsys):
    from momke.realtime.cli import main
    from momke.realtime.device_probe import probe_microphone

    if probe_microphone().found:
        pytest.skip("this machine has a microphone: `momke-live` would start live")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "no microphone" in err and "momke-live --demo" in err


# In-process (fast): the same main() the console script calls.
@pytest.mark.parametrize("args, message", [
    (["--demo", "--privacy", "smell"], "unknown modality smell"),
    (["--input", "/no/such/file.mp4"], "does not exist"),
    (["--demo", "--input", "x.mp4"], "either --demo or --input"),
    (["--fast"], "--fast only applies to a replay"),
    (["--transcript", "t.json"], "--transcript goes with --input"),
])
def test_usage_errors_exit_2_with_a_message(args, message, capsys):
    from momke.realtime.cli import main

    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_argparse_errors_exit_2(capsys):
    from momke.realtime.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "tpu"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cuda_requested_without_cuda_is_a_usage_error(capsys):
    import torch

    from momke.realtime.cli import main

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["--demo", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_bad_checkpoint_is_a_usage_error(tmp_path, capsys):
    from momke.realtime.cli import main

    assert main(["--demo", "--fast", "--json", "--checkpoint", str(tmp_path / "none")]) == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.err and captured.out == ""


def test_a_replay_without_speech_exits_1(checkpoint, tmp_path):
    import soundfile as sf

    silent = tmp_path / "silence.wav"
    sf.write(str(silent), np.zeros(16000 * 2, np.float32), 16000)
    result = momke_live("--input", str(silent), "--fast", "--json", "--asr", "none", "--checkpoint", checkpoint)
    assert result.returncode == 1, result.stderr
    assert "no utterance" in result.stderr
    assert all(e["type"] in {"status", "ready"} for e in parse_events(result.stdout))


def test_ctrl_c_stops_cleanly_with_exit_130(checkpoint):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "momke.realtime.cli", "--demo", "--json", "--checkpoint", checkpoint, "--privacy", "visual"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        first = None
        while time.monotonic() < deadline:  # real-time replay: wait for the first emotion, then interrupt
            line = proc.stdout.readline()
            if not line:
                break
            if json.loads(line)["type"] == "emotion":
                first = line
                break
        assert first is not None, "no emotion event before the deadline"
        interrupted_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert time.monotonic() - interrupted_at < 15
    assert "Traceback" not in err and "utterance(s) scored" in err
    for line in out.splitlines():  # whatever came after the interrupt is still whole JSON lines
        json.loads(line)
