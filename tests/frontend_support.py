"""Shared helpers for the front-end tests (CLI, terminal view, Gradio page): the checkpoint they
run (the shipped default when it exists, else a small untrained lite-profile MoMKE saved once per
test session), the bundled demo's transcript, and where screenshots go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "assets" / "demo"
ARTIFACTS = Path(os.environ.get("MOMKE_ARTIFACT_DIR", REPO / "test-artifacts"))


def demo_transcript() -> list[dict]:
    return json.loads((DEMO_DIR / "transcript.json").read_text())


def frontend_checkpoint(tmp_path_factory) -> Path:
    """The default checkpoint if it has been shipped, else a small untrained one (same profile and
    dims, so the whole pipeline runs; the labels are then meaningless, which these tests never read)."""
    from momke.models.checkpoint import DEFAULT_CHECKPOINT, save_checkpoint

    if (DEFAULT_CHECKPOINT / "config.json").is_file():
        return DEFAULT_CHECKPOINT
    import torch
    from momke.extractors.profiles import profile_dims
    from momke.models.config import MoMKEConfig
    from momke.models.momke import MoMKE

    torch.manual_seed(0)
    config = MoMKEConfig(feature_dims=profile_dims("lite"), hidden_dim=32, num_blocks=1, num_heads=2,
                         router_hidden_dim=32, dropout=0.0, context_mode="causal", feature_profile="lite")
    return save_checkpoint(MoMKE(config).eval(), tmp_path_factory.mktemp("checkpoint"))


def momke_live(*args: str, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as users do (a separate process), capturing stdout and stderr apart."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "momke.realtime.ui.cli", *args], check=False, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO, **kwargs)


# Debian's chromium driven by Playwright (no browser download), with its own fake webcam (a test
# pattern) and microphone (a beep), allowed without a prompt.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
