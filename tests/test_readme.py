"""The README's live-app commands and code blocks, run as written (the shipped checkpoint, the
bundled demo; `momke-live` from this virtualenv). Commands that need a microphone are run too:
on a machine without one they must answer with the way out (`momke-live --demo`) and exit 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from frontend_support import DEMO_DIR, REPO, demo_transcript

README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


LIVE_COMMANDS = [line.split("  #")[0].strip()
                 for block in code_blocks(section("## Live app"), "bash") for line in block.splitlines()
                 if line.startswith("momke-live")]


@pytest.fixture(autouse=True, scope="module")
def shipped_checkpoint():
    from momke.models.checkpoint import DEFAULT_CHECKPOINT

    if not (DEFAULT_CHECKPOINT / "config.json").is_file():
        pytest.skip("the README's commands use the shipped checkpoint, which is not here")


def run(command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], check=False, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def has_microphone() -> bool:
    from momke.realtime.ui.device_probe import probe_microphone

    return probe_microphone().found


def test_the_readme_lists_the_commands_this_test_runs():
    assert LIVE_COMMANDS[:2] == ["momke-live --demo", "momke-live --demo --fast --json"]
    assert any("--gradio" in c for c in LIVE_COMMANDS) and any("--input talk.mp4" in c for c in LIVE_COMMANDS)


@pytest.mark.parametrize("command", [c for c in LIVE_COMMANDS if "--demo --fast" in c])
def test_fast_demo_command(command, tmp_path):
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    emotions = [e for e in map(json.loads, result.stdout.splitlines()) if e["type"] == "emotion"]
    assert len(emotions) == len(demo_transcript())


@pytest.mark.parametrize("command", [c for c in LIVE_COMMANDS if "--no-camera" in c or "--privacy" in c])
def test_live_commands_without_a_microphone_say_what_to_type(command, tmp_path):
    if has_microphone():
        pytest.skip("this machine has a microphone: the command would run live")
    result = run(command, tmp_path, timeout=60)
    assert result.returncode == 2 and "momke-live --demo" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in LIVE_COMMANDS if c == "momke-live --demo" or "--input" in c])
def test_real_time_replay_commands(command, tmp_path):
    # talk.mp4 / talk.json: a recording of your own and its transcript (here: the demo's).
    shutil.copy(DEMO_DIR / "conversation.mp4", tmp_path / "talk.mp4")
    shutil.copy(DEMO_DIR / "transcript.json", tmp_path / "talk.json")
    result = run(command, tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr
    n = len(demo_transcript())
    assert f"{n} utterance(s) scored" in result.stdout  # the summary (plain output: not a terminal)
    if "--log" in command:
        logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert sum(e["type"] == "emotion" for e in logged) == n


def test_gradio_command_serves_the_page(tmp_path):
    (command,) = [c for c in LIVE_COMMANDS if "--gradio" in c]
    url = re.search(r"http://\S+", next(line for line in README.splitlines() if line.startswith(command))).group(0)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, cwd=tmp_path, env=env)
    try:
        deadline, lines = time.monotonic() + 120, [""]
        while "serving the demo on" not in lines[-1] and time.monotonic() < deadline:
            lines.append(proc.stderr.readline())
            if not lines[-1]:
                break
        if "Cannot find empty port" in "".join(lines):
            pytest.skip(f"{url} is taken on this machine")
        assert url in lines[-1], "".join(lines)
        import urllib.request

        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and "momke-live" in response.read().decode()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_replay_block_runs_as_written(tmp_path):
    blocks = [b for b in code_blocks(section("## Embedding"), "python") if "LiveSession.demo(realtime=False" in b]
    assert blocks, "the README's replay example is missing"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    result = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(e["type"] == "emotion" for e in events) == len(demo_transcript())
