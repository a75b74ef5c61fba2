"""Messages a new user met: a transcript with "text": null, a latin-1 transcript, every modality
switched off, --demo with an explicit --asr. Each is answered before any model loads."""

from __future__ import annotations

import json

import pytest
from momke.realtime.sources import load_transcript
from momke.realtime.ui.cli import UsageProblem, build_parser, main, source_kwargs


def test_a_null_text_is_refused_not_read_as_the_word_none(tmp_path):
    path = tmp_path / "talk.json"
    path.write_text(json.dumps([{"start": 0, "end": 1, "text": "hello"}, {"start": 1, "end": 2, "text": None}]))
    with pytest.raises(ValueError, match=r'transcript entry 1: "text" must be a string .*got null'):
        load_transcript(path)
    assert [i.text for i in load_transcript([{"start": 0, "end": 1, "text": ""}])] == [""]


def test_a_latin1_transcript_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "talk.json"
    path.write_bytes(json.dumps([{"start": 0, "end": 1, "text": "Ça va très bien"}], ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ValueError) as refused:
        load_transcript(path)
    message = str(refused.value)
    assert str(path) in message and "not UTF-8" in message and "save it as UTF-8" in message


def test_momke_live_says_a_bad_transcript_and_its_file_with_exit_2(tmp_path, capsys):
    path = tmp_path / "talk.json"
    path.write_text(json.dumps([{"start": 0, "end": 1, "text": None}]))
    media = tmp_path / "talk.wav"
    import numpy as np
    import soundfile as sf

    sf.write(str(media), np.zeros(16000, np.float32), 16000)
    assert main(["--input", str(media), "--transcript", str(path), "--fast", "--json"]) == 2
    assert '"text" must be a string' in capsys.readouterr().err


def test_every_modality_switched_off_is_said_as_such(capsys):
    assert main(["--demo", "--fast", "--json", "--privacy", "audio,text,visual"]) == 2
    err = capsys.readouterr().err
    assert "switches every modality off" in err and "no speech found" not in err


def test_demo_with_an_explicit_asr_uses_it_instead_of_the_demo_transcript():
    args = build_parser().parse_args(["--demo", "--asr", "whisper-tiny"])
    source, description = source_kwargs(args)
    assert source["transcript"] is None and "not the demo's transcript" in description
    from momke.realtime.ui.cli import live_options

    assert live_options(args, source).asr == "whisper-tiny"
    plain, _ = source_kwargs(build_parser().parse_args(["--demo"]))
    assert "transcript" not in plain  # the demo's own transcript, no ASR loaded


def test_a_transcript_and_an_explicit_asr_are_refused_together(tmp_path):
    media, words = tmp_path / "a.wav", tmp_path / "a.json"
    media.write_bytes(b"x")
    words.write_text("[]")
    args = build_parser().parse_args(["--input", str(media), "--transcript", str(words), "--asr", "pocketsphinx"])
    with pytest.raises(UsageProblem, match="give --transcript or --asr pocketsphinx, not both"):
        source_kwargs(args)
