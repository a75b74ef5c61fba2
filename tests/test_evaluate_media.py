"""`momke-evaluate-media` on real RAVDESS recordings (../shared/data; skipped without it): the
report of a labels CSV (counts, confusion matrix, no-event share, failures), conversation mode
(events mapped back to their files), equality with `momke-live --input FILE --fast --json`,
usage errors. The default tests switch text and faces off (audio only, no speech-to-text) and
replay a handful of clips; the full paths are in the slow tests."""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from frontend_support import DEMO_DIR, REPO, demo_transcript, frontend_checkpoint, momke_live
from synth_speech import RAVDESS_SENTENCES, data_dir

RAVDESS = data_dir() / "ravdess_speech_16k"
NEUTRAL = "Actor_01/03-01-01-01-01-01-01.flac"
HAPPY = "Actor_02/03-01-03-01-01-01-02.flac"
ANGRY = "Actor_03/03-01-05-01-01-01-03.flac"
CALM = "Actor_04/03-01-02-01-01-01-04.flac"
SURPRISED = "Actor_01/03-01-08-01-01-01-01.flac"
AUDIO_ONLY = ["--privacy", "text,visual", "--device", "cpu"]


def ravdess(*names: str) -> list[Path]:
    clips = [RAVDESS / name for name in names]
    missing = [c for c in clips if not c.is_file()]
    if missing:
        pytest.skip(f"RAVDESS clips not found in {RAVDESS} (../shared/data; set MOMKE_DATA_DIR): {missing[0].name}")
    return clips


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return str(frontend_checkpoint(tmp_path_factory))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def relative(clip: Path, folder: Path) -> str:
    """Paths in the CSV are relative to its folder."""
    return os.path.relpath(clip, folder)


def evaluate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The command as users run it (its own process)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "momke.realtime.ui.evaluate_media", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def weighted_mean(events: list[dict]) -> dict[str, float]:
    """A file's prediction as the README defines it: the events' probabilities averaged with
    weights = their durations."""
    weights = [max(0.0, e["end"] - e["start"]) for e in events]
    if sum(weights) == 0:
        weights = [1.0] * len(events)
    labels = events[0]["probabilities"]
    return {k: sum(w * e["probabilities"][k] for w, e in zip(weights, events)) / sum(weights) for k in labels}


# ------------------------------------------------------------------------- one session per file
@pytest.fixture(scope="module")
def per_file(checkpoint, tmp_path_factory):
    """Three clips to score (one labelled calm, mapped to neutral), a label the checkpoint does not
    predict (skipped), a missing file and a file that is not audio (both failures)."""
    neutral, happy, calm, surprised = ravdess(NEUTRAL, HAPPY, CALM, SURPRISED)
    folder = tmp_path_factory.mktemp("labels")
    (folder / "broken.wav").write_text("not audio at all")
    labels = write_csv(folder / "labels.csv", ["file", "label", "speaker"], [
        [relative(neutral, folder), "neutral", "01"],
        [relative(happy, folder), "happy", "02"],
        [relative(surprised, folder), "surprised", "01"],
        ["nowhere/missing.flac", "sad", "03"],
        [relative(calm, folder), "calm", "04"],
        ["broken.wav", "angry", "05"],
    ])
    report = folder / "report.json"
    result = evaluate(str(labels), *AUDIO_ONLY, "--checkpoint", checkpoint, "--label-map", "calm=neutral",
                      "--json", "--report", str(report), "-q")
    return result, report, {"neutral": neutral, "happy": happy, "calm": calm}


def test_a_csv_run_reports_counts_confusion_and_failures(per_file):
    result, report_file, _ = per_file
    assert result.returncode == 1, result.stderr  # two files could not be replayed
    assert "2 file(s) could not be replayed" in result.stderr and "Traceback" not in result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON report alone
    assert json.loads(report_file.read_text()) == report
    labels = report["labels"]
    assert (report["n_rows"], report["n_skipped"], report["skipped_labels"]) == (6, 1, {"surprised": 1})
    assert (report["n_files"], report["n_failed"], report["n_replayed"]) == (5, 2, 3)
    failures = {f["file"]: f["error"] for f in report["failures"]}
    assert failures.keys() == {"nowhere/missing.flac", "broken.wav"}
    assert failures["nowhere/missing.flac"] == "file not found" and "broken.wav" in failures["broken.wav"]
    # Every clip is speech: every replayed file has an event.
    assert (report["n_scored"], report["n_no_event"], report["no_event_share"]) == (3, 0, 0.0)
    matrix = report["confusion"]["matrix"]
    assert report["confusion"]["labels"] == labels and len(matrix) == len(labels)
    assert sum(map(sum, matrix)) == report["n_scored"]
    assert sum(report["confusion"]["no_event"]) == report["n_no_event"]
    for i, name in enumerate(labels):
        row = report["per_class"][name]
        assert sum(matrix[i]) + row["no_event"] == row["n"]
        assert row["predicted"] == sum(line[i] for line in matrix)
    assert report["per_class"]["neutral"]["n"] == 2 and report["per_class"]["happy"]["n"] == 1

    files = {f["file"]: f for f in report["files"]}
    assert [f["label"] for f in report["files"]] == ["neutral", "happy", "neutral"]
    assert [f["csv_label"] for f in report["files"]] == ["neutral", "happy", "calm"]
    correct = 0
    for row in files.values():
        probs = row["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-3 and list(probs) == labels
        assert row["predicted"] == max(probs, key=probs.get) and row["n_events"] >= 1
        assert row["probabilities"] == pytest.approx(weighted_mean(row["events"]), abs=2e-6)
        assert row["modalities"] == {"audio": row["n_events"]}  # text and faces were switched off
        correct += row["correct"]
    metrics = report["metrics"]
    assert metrics["wa"] == pytest.approx(correct / 3) and metrics["wa_all"] == pytest.approx(correct / 3)
    assert 0 <= metrics["ua"] <= 1 and 0 <= metrics["f1_macro"] <= 1 and 0 <= metrics["ece"] <= 1
    assert report["modalities"]["conditions"] == {"audio": sum(f["n_events"] for f in files.values())}
    assert report["latency_ms"]["mean"] > 0
    settings = report["settings"]
    assert settings["privacy"] == ["text", "visual"] and settings["grouping"] == "one session per file"
    assert settings["asr_used"] == {"none": 3} and settings["label_map"] == {"calm": "neutral"}
    assert settings["checkpoint"] == Path(settings["checkpoint_path"]).name
    assert report["timing"]["sessions"] == 3 and report["timing"]["mean_overhead_s"] >= 0


def test_a_files_probabilities_equal_momke_lives(per_file, checkpoint):
    """The same code path: `momke-live --input FILE --fast --json` gives the probabilities the
    report holds for that file (the second file of the run: sessions share the model, not state)."""
    result, _, clips = per_file
    report = json.loads(result.stdout)
    row = next(f for f in report["files"] if f["label"] == "happy")
    live = momke_live("--input", str(clips["happy"]), "--fast", "--json", "--checkpoint", checkpoint, *AUDIO_ONLY)
    assert live.returncode == 0, live.stderr
    events = [e for e in map(json.loads, live.stdout.splitlines()) if e["type"] == "emotion"]
    assert len(events) == row["n_events"]
    assert [(e["start"], e["end"], e["probabilities"]) for e in events] == \
        [(e["start"], e["end"], e["probabilities"]) for e in row["events"]]
    assert row["probabilities"] == pytest.approx(weighted_mean(events), abs=2e-6)


# ------------------------------------------------------------------------- conversations
def test_a_conversation_is_one_stream_and_each_event_goes_back_to_its_file(checkpoint, tmp_path):
    clips = ravdess(NEUTRAL, HAPPY, ANGRY)
    labels = write_csv(tmp_path / "labels.csv", ["file", "label", "conversation"],
                       [[relative(c, tmp_path), label, "talk"] for c, label in zip(clips, ("neutral", "happy", "angry"))])
    result = evaluate(str(labels), *AUDIO_ONLY, "--checkpoint", checkpoint, "--pause", "1.5", "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["grouping"] == "conversations by column 'conversation'"
    assert report["timing"]["sessions"] == 1 and report["n_scored"] == 3 and report["stray_events"] == 0
    spans = [row["span"] for row in report["files"]]
    assert spans[0][0] == 0.0
    for before, after in itertools.pairwise(spans):  # back to back, 1.5 s of silence between
        assert after[0] == pytest.approx(before[1] + 1.5, abs=1e-3)
    for row, (start, end) in zip(report["files"], spans):
        assert row["n_events"] >= 1
        for event in row["events"]:  # most of each event lies inside its file
            inside = max(0.0, min(event["end"], end) - max(event["start"], start))
            assert inside > 0.5 * (event["end"] - event["start"]), (row["file"], event, (start, end))
    # The temporary stream is gone.
    assert not list(Path(tempfile.gettempdir()).glob("momke-evaluate-*"))


def test_videos_of_a_conversation_are_one_stream_and_each_event_goes_back_to_its_file(checkpoint, tmp_path):
    """Two face videos joined (a grey picture and silence between them): each file gets its own
    events, with the face and the voice, inside its own span."""
    from momke.realtime.ui.evaluate_media import main
    from realtime_support import make_conversation

    videos = []
    for k, clip in enumerate(ravdess(HAPPY, ANGRY)):
        folder = tmp_path / f"v{k}"
        folder.mkdir()
        videos.append(make_conversation(folder, [clip], pause_s=0.3, transcript=False)["path"])
    labels = write_csv(tmp_path / "labels.csv", ["file", "label", "talk"],
                       [[str(videos[0]), "happy", "x"], [str(videos[1]), "angry", "x"]])
    report_path = tmp_path / "report.json"
    assert main([str(labels), "--conversation-column", "talk", "--privacy", "text", "--checkpoint", checkpoint,
                 "--device", "cpu", "--report", str(report_path), "-q"]) == 0
    report = json.loads(report_path.read_text())
    assert report["timing"]["sessions"] == 1 and report["n_scored"] == 2 and report["stray_events"] == 0
    (first, second) = [row["span"] for row in report["files"]]
    assert second[0] == pytest.approx(first[1] + 1.0, abs=1e-3)
    for row in report["files"]:
        start, end = row["span"]
        assert row["n_events"] >= 1 and all("visual" in e["modalities"] for e in row["events"])
        for event in row["events"]:
            assert max(0.0, min(event["end"], end) - max(event["start"], start)) > 0.5 * (event["end"] - event["start"])
    assert not list(Path(tempfile.gettempdir()).glob("momke-evaluate-*"))


def test_a_conversation_mixing_video_and_sound_only_files_is_refused(tmp_path, checkpoint, capsys):
    from momke.realtime.ui.evaluate_media import main

    video = DEMO_DIR / "conversation.mp4"
    (clip,) = ravdess(NEUTRAL)
    labels = write_csv(tmp_path / "labels.csv", ["file", "label", "talk"],
                       [[str(video), "happy", "x"], [str(clip), "sad", "x"]])
    assert main([str(labels), "--conversation-column", "talk", "--checkpoint", checkpoint, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "mixes video and sound-only files" in err and len(err.strip().splitlines()) == 2


# ------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("args, message", [
    (["{tmp}/none.csv"], "{tmp}/none.csv does not exist"),
    (["{tmp}"], "is a directory; give a CSV file"),
    (["{tmp}/no_label.csv"], "lacks the column(s) label (it has: file, emotion)"),
    (["{tmp}/good.csv", "--conversation-column", "speaker"], "--conversation-column speaker: "),
    (["{tmp}/good.csv", "--transcript-column", "text"], "--transcript-column text: "),
    (["{tmp}/good.csv", "--label-map", "calm"], "--label-map: 'calm' is not FROM=TO"),
    (["{tmp}/good.csv", "--privacy", "smell"], "--privacy: unknown modality smell"),
    (["{tmp}/good.csv", "--privacy", "audio,text,visual"], "nothing to score"),
    (["{tmp}/good.csv", "--asr", "whisper-huge"], "--asr: unknown 'whisper-huge'"),
    (["{tmp}/good.csv", "--report", "{tmp}"], "--report: {tmp} is a directory"),
    (["{tmp}/good.csv", "--report", "{tmp}/good.csv"], "already exists; add --overwrite"),
    (["{tmp}/empty.csv"], "has no rows under its header"),
])
def test_usage_errors_exit_2_in_one_line_before_loading(args, message, tmp_path, capsys):
    from momke.realtime.ui.evaluate_media import main

    write_csv(tmp_path / "good.csv", ["file", "label"], [["a.flac", "happy"]])
    write_csv(tmp_path / "no_label.csv", ["file", "emotion"], [["a.flac", "happy"]])
    write_csv(tmp_path / "empty.csv", ["file", "label"], [])
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("momke-evaluate-media: "), captured.err
    assert message.replace("{tmp}", str(tmp_path)) in lines[0] and captured.out == ""


def test_labels_the_checkpoint_does_not_know_exit_2(tmp_path, checkpoint, capsys):
    from momke.realtime.ui.evaluate_media import main

    labels = write_csv(tmp_path / "labels.csv", ["file", "label"], [["a.flac", "calm"], ["b.flac", "fear"]])
    assert main([str(labels), "--checkpoint", checkpoint, "--device", "cpu", "-q"]) == 2
    assert "no row has a label to score (found: calm, fear" in capsys.readouterr().err
    assert main([str(labels), "--labels", "happy,bored", "--checkpoint", checkpoint, "--device", "cpu", "-q"]) == 2
    assert "--labels: bored not among the checkpoint's labels" in capsys.readouterr().err


@pytest.mark.parametrize("args, code, where, text", [
    (["--help"], 0, "out", "--conversation-column"),
    (["--version"], 0, "out", "momke-evaluate-media "),
    (["labels.csv", "--limit", "0"], 2, "err", "--limit: must be at least 1"),
    (["labels.csv", "--pause", "-1"], 2, "err", "--pause: must be a number of seconds >= 0"),
    ([], 2, "err", "the following arguments are required: LABELS.csv"),
])
def test_help_version_and_argument_errors_answer_without_loading_torch(args, code, where, text):
    probe = ("import sys\n"
             "from momke.realtime.ui.evaluate_media import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exit_:\n    code = exit_.code\n"
             "print('torch' in sys.modules, code, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe, *args], check=False, capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    *said, last = result.stderr.strip().splitlines()
    assert last.split() == ["False", str(code)], result.stderr
    assert text in (result.stdout if where == "out" else result.stderr)
    assert len(said) == (1 if code else 0), result.stderr


def test_the_console_script_is_registered():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["momke-evaluate-media"] == "momke.realtime.ui.evaluate_media:main"


# ------------------------------------------------------------------------- slow: full paths
@pytest.mark.slow
def test_transcripts_reach_the_right_files_of_a_conversation(checkpoint, tmp_path):
    clips = ravdess(NEUTRAL, HAPPY, ANGRY)
    rows = [[relative(c, tmp_path), label, "talk", RAVDESS_SENTENCES[c.stem.split("-")[4]] + f" ({i})"]
            for i, (c, label) in enumerate(zip(clips, ("neutral", "happy", "angry")))]
    labels = write_csv(tmp_path / "labels.csv", ["file", "label", "speaker", "text"], rows)
    result = evaluate(str(labels), "--conversation-column", "speaker", "--transcript-column", "text",
                      "--privacy", "visual", "--device", "cpu", "--checkpoint", checkpoint, "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["asr_used"] == {"none": 1}  # auto: the transcripts give the words
    for row, (*_, text) in zip(report["files"], rows):
        assert text in [e["transcript"] for e in row["events"]]
        assert any(set(e["modalities"]) == {"audio", "text"} for e in row["events"])


@pytest.mark.slow
def test_a_video_is_scored_one_session_per_file_like_momke_live(checkpoint, tmp_path):
    """The demo video (speech and a face; no speech-to-text, whose time limits would make the
    comparison depend on the machine's load), as momke-live replays it."""
    video = DEMO_DIR / "conversation.mp4"
    labels = write_csv(tmp_path / "labels.csv", ["file", "label"], [[str(video), "happy"]])
    result = evaluate(str(labels), "--asr", "none", "--device", "cpu", "--checkpoint", checkpoint, "--json", "-q")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)["files"][0]
    live = momke_live("--input", str(video), "--fast", "--json", "--asr", "none", "--device", "cpu",
                      "--checkpoint", checkpoint)
    events = [e for e in map(json.loads, live.stdout.splitlines()) if e["type"] == "emotion"]
    assert len(events) == row["n_events"] >= len(demo_transcript()) - 1  # the voice finds the lines
    assert "visual" in row["modalities"]
    assert [e["probabilities"] for e in events] == [e["probabilities"] for e in row["events"]]


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path):
    """The README's RAVDESS example, from a checkout beside ../shared/data (here: a link to it)."""
    ravdess(NEUTRAL, HAPPY, ANGRY, CALM, "Actor_05/03-01-04-01-01-01-05.flac")
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Measuring the app on your own recordings (`momke-evaluate-media`)")
    section = readme[start:readme.index("\n## ", start + 1)]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]
    checkout = tmp_path / "main"
    checkout.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir())
    script = block.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], check=False, capture_output=True, text=True,
                            cwd=checkout, timeout=900)
    assert result.returncode == 0, result.stderr
    table, metrics = result.stdout.split("\n{", 1)
    assert "scored 5 / 5 replayed" in table and "true \\ predicted" in table
    assert set(json.loads("{" + metrics)) == {"wa", "ua", "f1_macro", "f1_weighted", "ece", "wa_all", "ua_all"}
