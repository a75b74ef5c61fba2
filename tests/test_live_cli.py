"""`momke-live` end to end: the bundled demo replayed through the real LiveSession (no devices),
JSON lines on stdout, privacy, exit codes and messages, Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import re
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
        # Speech and a transcript on every line; the face on the happy lines 2 and 7 only (SOURCE.md).
        assert set(event["modalities"]) == (MODALITIES if line["text"].startswith(("Oh wonderful", "Thank you")) else MODALITIES - {"visual"})
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
    from momke.realtime.ui.cli import main
    from momke.realtime.ui.device_probe import probe_microphone

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
    (["--gradio", "--max-sessions", "0"], "--max-sessions must be at least 1"),
])
def test_usage_errors_exit_2_with_a_message(args, message, capsys):
    from momke.realtime.ui.cli import main

    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_argparse_errors_exit_2(capsys):
    from momke.realtime.ui.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "tpu"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cuda_requested_without_cuda_is_a_usage_error(capsys):
    import torch
    from momke.realtime.ui.cli import main

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["--demo", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_bad_checkpoint_is_a_usage_error(tmp_path, capsys):
    from momke.realtime.ui.cli import main

    assert main(["--demo", "--fast", "--json", "--checkpoint", str(tmp_path / "none")]) == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.err and captured.out == ""


@pytest.mark.parametrize("privacy, warned", [([], True), (["--privacy", "audio"], False)])
def test_the_demo_says_its_voice_is_synthetic_unless_the_voice_is_off(privacy, warned, tmp_path, capsys):
    # Said before the model loads (so a missing checkpoint ends the run right after it).
    from momke.realtime.ui.cli import main

    assert main(["--demo", "--fast", *privacy, "--checkpoint", str(tmp_path / "none")]) == 2
    assert ("voice is a speech synthesiser" in capsys.readouterr().err) == warned


def test_a_replay_without_speech_exits_1(checkpoint, tmp_path):
    import soundfile as sf

    silent = tmp_path / "silence.wav"
    sf.write(str(silent), np.zeros(16000 * 2, np.float32), 16000)
    result = momke_live("--input", str(silent), "--fast", "--json", "--asr", "none", "--checkpoint", checkpoint)
    assert result.returncode == 1, result.stderr
    assert "no utterance" in result.stderr
    assert all(e["type"] in {"status", "ready"} for e in parse_events(result.stdout))


@contextlib.contextmanager
def cli_process(*args: str):
    """`momke-live ARGS` as a separate process with pipes; killed if the test leaves it running."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "momke.realtime.ui.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_stops_cleanly_with_exit_130(checkpoint):
    with cli_process("--demo", "--json", "--checkpoint", checkpoint, "--privacy", "visual") as proc:
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
    assert proc.returncode == 130, err
    assert time.monotonic() - interrupted_at < 15
    assert "Traceback" not in err and "utterance(s) scored" in err
    for line in out.splitlines():  # whatever came after the interrupt is still whole JSON lines
        json.loads(line)


# ------------------------------------------------------------------------------ CLI manners
def test_models_modality_names_match_the_clis_own_copy():
    from momke.models.config import MODALITIES as model_modalities
    from momke.realtime.ui.cli import MODALITIES as cli_modalities

    assert cli_modalities == model_modalities


@pytest.mark.parametrize("args, code, where, text", [
    (["--help"], 0, "out", "--privacy"),
    (["--version"], 0, "out", "momke-live "),
    (["--demo", "--privacy", "smell"], 2, "err", "unknown modality smell"),
    (["--device", "tpu"], 2, "err", "invalid choice"),
    (["--demo", "--asr", "whisper-huge"], 2, "err", "--asr: unknown 'whisper-huge'"),
    (["--demo", "--asr-timeout-factor", "0"], 2, "err", "must be a positive number"),
    (["--demo", "--bogus"], 2, "err", "momke-live: error: unrecognized arguments: --bogus (see momke-live --help)"),
])
def test_help_version_and_usage_errors_answer_without_loading_torch(args, code, where, text):
    """Parsed and answered before anything heavy is imported: under a second even on a busy CPU."""
    probe = ("import sys, time\n"
             "began = time.monotonic()\n"
             "from momke.realtime.ui.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exit_:\n    code = exit_.code\n"
             "print('torch' in sys.modules, round(time.monotonic() - began, 3), code, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe, *args], check=False, capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    *said, last = result.stderr.strip().splitlines()
    torch_loaded, seconds, exit_code = last.split()
    assert torch_loaded == "False" and int(exit_code) == code, result.stderr
    assert float(seconds) < 1.0
    assert text in (result.stdout if where == "out" else result.stderr)
    assert len(said) == (1 if code else 0) and "Traceback" not in result.stderr, result.stderr  # one line


def test_version_is_the_projects():
    import tomllib
    from momke.models.cli_common import version  # `momke --version` and `momke-live --version`

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version() == project


def test_help_shows_no_internal_names():
    from momke.realtime.ui.cli import build_parser

    text = build_parser().format_help()
    assert not re.search(r"\b[A-Z]+_[A-Z_]+\b", text), text  # argparse's dest-derived metavars
    assert "sounddevice" not in text and "OpenCV" not in text and "assets/" not in text


@pytest.mark.parametrize("args, message", [
    (["--demo", "--log", "{tmp}"], "is a directory; give a file name"),
    (["--demo", "--log", "{tmp}/a_file/events.jsonl"], "a_file is a file, not a folder"),
    (["--input", "{tmp}"], "is a directory; give a video or audio file"),
    (["--input", "{tmp}/a_file", "--transcript", "{tmp}"], "--transcript: {tmp} is a directory"),
    (["--demo", "--asr", "whisper:{tmp}/nowhere"], "is not a folder (a local Whisper model)"),
])
def test_directories_and_missing_folders_are_usage_errors(args, message, tmp_path, capsys):
    from momke.realtime.ui.cli import main

    (tmp_path / "a_file").write_text("x")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    captured = capsys.readouterr()
    assert message.replace("{tmp}", str(tmp_path)) in captured.err and captured.out == ""
    assert not list(tmp_path.glob("*.jsonl"))  # nothing written


def test_privacy_visual_never_probes_the_camera(monkeypatch):
    from momke.realtime.ui import cli, device_probe

    opened = []
    monkeypatch.setattr(device_probe, "probe_camera",
                        lambda source: opened.append(source) or device_probe.Probe(True, "test camera"))
    monkeypatch.setattr(device_probe, "probe_microphone", lambda device: device_probe.Probe(True, "test mic"))
    args = cli.build_parser().parse_args(["--privacy", "visual"])
    kwargs, description = cli.source_kwargs(args, cli.parse_privacy(args.privacy))
    assert opened == [] and "camera" not in kwargs and kwargs["microphone"] == "default"
    assert "camera off" in description
    kwargs, _ = cli.source_kwargs(cli.build_parser().parse_args([]), ())
    assert opened == [0] and kwargs["camera"] == 0  # without --privacy visual the camera is probed


def test_asr_options_reach_the_engine_by_its_names():
    from momke.realtime.options import LiveOptions
    from momke.realtime.ui.cli import build_parser, live_options

    def options(*argv, source=None):
        return live_options(build_parser().parse_args(list(argv)), source or {})

    assert options("--demo", source={"demo": True}).asr is None  # the transcript gives the words
    assert options().asr == LiveOptions().asr  # live: the engine's default speech-to-text
    live = options("--asr", "whisper-base", "--language", "de", "--asr-timeout-factor", "1.5")
    assert (live.asr, live.asr_language, live.asr_timeout_factor) == ("whisper-base", "de", 1.5)
    assert options("--asr", "none").asr is None
    assert options().asr_timeout_factor == LiveOptions().asr_timeout_factor  # left out: the session's default
    assert options("--min-transcript-confidence", "0.8").min_transcript_confidence == 0.8


def read_one_line_then_close(*args: str) -> subprocess.CompletedProcess:
    """What `momke-live ... | head -1` does: read a line, then close the pipe."""
    with cli_process(*args) as proc:
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, first, err)


@pytest.mark.parametrize("mode", ["--plain", "--json"])
def test_a_closed_pipe_ends_quietly_with_exit_0(mode, checkpoint):
    result = read_one_line_then_close("--demo", "--fast", mode, "--checkpoint", checkpoint, "--device", "cpu")
    assert result.stdout.strip(), result.stderr
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert "utterance(s) scored" in result.stderr  # the summary, on stderr once stdout is gone


def test_readme_jq_example_runs_as_written(checkpoint):
    import shutil

    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    line = next(line for line in (REPO / "README.md").read_text().splitlines() if "| jq" in line)
    command = line.split("#")[0].strip().replace("momke-live", f"{sys.executable} -m momke.realtime.ui.cli", 1)
    command = command.replace("--json", f"--json --checkpoint {checkpoint}", 1)
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], check=False, capture_output=True, text=True, cwd=REPO,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(row) for row in result.stdout.splitlines()]
    assert len(rows) == len(demo_transcript()) and all(set(row) == {"label", "modalities"} for row in rows)


@pytest.mark.parametrize("when", ["at once", "while loading"])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(when, checkpoint):
    with cli_process("--demo", "--json", "--checkpoint", checkpoint) as proc:
        if when == "at once":
            time.sleep(0.3)  # parsing is done; torch is being imported
        else:
            assert "loading the model" in proc.stderr.readline()
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_importing_the_front_ends_leaves_the_environment_alone():
    """An embedding program's settings stay its own (issue: HF_HUB_OFFLINE, GRADIO_* were set at import)."""
    probe = ("import os, sys\nbefore = dict(os.environ)\n"
             "import momke.realtime.ui.cli, momke.realtime.ui.gradio_app, momke.realtime.ui.gradio_views\n"
             "import momke.realtime.ui.terminal_view, momke.realtime.sources.browser, momke.realtime.ui.live_state\n"
             "from momke.realtime.ui.cli import build_parser\nbuild_parser().parse_args(['--demo'])\n"
             "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
             "print(changed)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, cwd=REPO,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_ctrl_c_stops_the_gradio_server_with_exit_130():
    with cli_process("--gradio", "--port", "0") as proc:
        deadline = time.monotonic() + 120
        line = ""
        while "serving the demo on http://127.0.0.1:" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "the server never said where it serves"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_a_damaged_replay_exits_3_and_says_so(checkpoint, tmp_path):
    import importlib

    from momke.realtime.session import LiveSession

    damaged_copy = getattr(importlib.import_module("test_realtime_faults"), "damaged_copy", None)
    if damaged_copy is None or not hasattr(LiveSession, "replay_complete"):
        pytest.skip("this engine does not report damaged replays yet")
    bad = damaged_copy(REPO / "assets" / "demo" / "conversation.mp4", tmp_path)
    result = momke_live("--input", str(bad), "--fast", "--json", "--asr", "none", "--checkpoint", checkpoint)
    assert result.returncode == 3, result.stderr
    assert "the replay was incomplete" in result.stderr and "Traceback" not in result.stderr
    assert any(e["type"] == "emotion" for e in parse_events(result.stdout))  # the rest was still scored
