"""`momke` refuses bad input with exit 2 and one clear line on stderr, never a traceback; and its
manners: --help, --version and usage errors before torch loads, --overwrite before anything is
replaced, --json on stdout, a closed pipe and Ctrl-C ending quietly."""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from momke.models import MoMKE
from momke.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from momke.models.commands.cli import main
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("errors") / "toy"
    assert main(["make-toy-corpus", str(directory), "--dialogues", "8"]) == 0
    return directory


@pytest.fixture()
def toy_checkpoint(toy, tmp_path):
    from momke.models.training.data import load_corpus
    from momke.models.training.trainer import model_config_for

    metadata = load_corpus(toy).metadata
    config = model_config_for(metadata, hidden_dim=8, router_hidden_dim=8, num_blocks=1)
    return save_checkpoint(MoMKE(config), tmp_path / "checkpoint")


def refused(capsys, argv, *expected):
    """Run `momke argv`; assert exit 2 and one stderr line holding every expected text."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def edit_config(directory, **changes):
    document = json.loads((directory / CONFIG_FILE).read_text())
    document["config"].update(changes)
    (directory / CONFIG_FILE).write_text(json.dumps(document))


@pytest.mark.parametrize(("change", "expected"), [
    ({"hidden_dim": 8.0}, "'hidden_dim' must be an integer, got 8.0"),
    ({"use_router": "false"}, "'use_router' must be true or false"),
    ({"labels": "hsna"}, "'labels' must be a list"),
    ({"mlp_ratio": 1e5}, "wrong shapes"),
])
def test_evaluate_refuses_a_bad_checkpoint(toy, toy_checkpoint, capsys, change, expected):
    edit_config(toy_checkpoint, **change)
    refused(capsys, ["evaluate", str(toy), "--checkpoint", str(toy_checkpoint)], "momke evaluate: error:", expected)


def test_evaluate_refuses_nan_weights(toy, toy_checkpoint, capsys):
    tensors = load_file(str(toy_checkpoint / WEIGHTS_FILE))
    tensors["head.mlp.0.weight"][0, 0] = float("nan")
    save_file(tensors, str(toy_checkpoint / WEIGHTS_FILE))
    refused(capsys, ["evaluate", str(toy), "--checkpoint", str(toy_checkpoint)], "NaN or infinite")


def test_a_huge_config_is_refused_without_allocating(toy, toy_checkpoint):
    """mlp_ratio 1e7 would need ~3 GB of weights at d = 8; the refusal must come first."""
    edit_config(toy_checkpoint, mlp_ratio=1e7)
    # The child's own peak (VmHWM): ru_maxrss would carry the forking pytest's peak across exec.
    script = (
        "import re\n"
        "from momke.models.commands.cli import main\n"
        f"code = main(['evaluate', {str(toy)!r}, '--checkpoint', {str(toy_checkpoint)!r}, '--device', 'cpu'])\n"
        "status = open('/proc/self/status').read()\n"
        "print(code, int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         check=False)
    code, peak_mb = run.stdout.split()
    assert code == "2" and "wrong shapes" in run.stderr, run.stderr
    assert int(peak_mb) < 1500, f"peak memory {peak_mb} MB"


def test_train_refuses_config_file_values_of_the_wrong_type(toy, tmp_path, capsys):
    config = tmp_path / "train.json"
    for values, expected in (({"epochs": 10.5}, "'epochs' must be an integer, got 10.5"),
                             ({"quiet": "yes"}, "'quiet' must be true or false"),
                             ({"protocol": "bogus"}, "'protocol' must be one of random, fixed"),
                             ({"seeds": 3}, "'seeds' must be a non-empty list")):
        config.write_text(json.dumps(values))
        command = "evaluate" if "seeds" in values else "train"
        with pytest.raises(SystemExit) as stop:
            main([command, str(toy), "--out", str(tmp_path / "m"), "--config", str(config)] if command == "train"
                 else [command, str(toy), "--config", str(config)])
        assert stop.value.code == 2
        assert expected in capsys.readouterr().err


def test_train_refuses_a_missing_corpus(tmp_path, capsys):
    refused(capsys, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")], "momke train: error:")


def test_train_refuses_an_out_path_that_is_a_file_before_training(toy, tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    refused(capsys, ["train", str(toy), "--out", str(tmp_path / "file")], "--out: ", "is a file, not a folder")
    assert (tmp_path / "file").read_text() == "keep me"


def test_toy_corpus_refuses_to_overwrite(toy, capsys):
    refused(capsys, ["make-toy-corpus", str(toy)], "momke make-toy-corpus: error:", "add --overwrite")


def write_layout(tmp_path, labels_object):
    (tmp_path / "labels.pkl").write_bytes(pickle.dumps(labels_object))
    (tmp_path / "text").mkdir(exist_ok=True)
    np.save(tmp_path / "text" / "d1_0.npy", np.ones(3, np.float32))
    return ["import-paper", str(tmp_path / "labels.pkl"), "--text", str(tmp_path / "text"),
            "--out", str(tmp_path / "corpus")]


class Hostile:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(("labels_object", "expected"), [
    ([{"d1": ["d1_0"]}, {"d1": [0]}, {"d1": ["F"]}, {}, ["d1"], Hostile()], "refusing to load builtins.print"),
    ([{"d1": ["d1_0"]}, {}, {"d1": ["F"]}, {}, ["d1"], []], "does not follow the MoMKE/GCNet label layout"),
    ([{"d1": ["d1_0"]}, {"d1": [0]}, {"d1": ["F"]}, {}, 5, []], "does not follow the MoMKE/GCNet label layout"),
    ({"not": "a list"}, "expected [ids, labels, speakers"),
])
def test_import_paper_refuses_bad_pickles(tmp_path, capsys, labels_object, expected):
    refused(capsys, write_layout(tmp_path, labels_object), "momke import-paper: error:", expected)
    assert not (tmp_path / "corpus").exists()


def test_import_paper_refuses_unreadable_files(tmp_path, capsys):
    argv = write_layout(tmp_path, [{"d1": ["d1_0"]}, {"d1": [0]}, {"d1": ["F"]}, {}, ["d1"], []])
    (tmp_path / "text" / "d1_0.npy").write_bytes(b"")
    refused(capsys, argv, "d1_0.npy is not a readable .npy array")
    (tmp_path / "labels.pkl").write_bytes(b"\x80\x04garbage")
    refused(capsys, argv, "cannot read the label pickle")
    refused(capsys, [*argv[:1], str(tmp_path / "missing.pkl"), *argv[2:]], "missing.pkl does not exist")


def test_default_recipe_needs_an_out_folder(capsys):
    from momke.models.commands.default_recipe import main as recipe_main

    with pytest.raises(SystemExit) as stop:
        recipe_main([])
    assert stop.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_checkpoint_round_trip_still_evaluates(toy, toy_checkpoint, capsys):
    assert main(["evaluate", str(toy), "--checkpoint", str(toy_checkpoint), "--device", "cpu"]) == 0
    assert "{a,t,v}" in capsys.readouterr().out


def test_train_refuses_a_corpus_without_test_dialogues(tmp_path, capsys):
    from momke.models.training.data import save_corpus
    from momke.models.training.toy_corpus import make_toy_corpus

    corpus = make_toy_corpus(num_dialogues=8)
    for conversation in corpus.conversations:
        conversation.split = "train"
    save_corpus(corpus, tmp_path / "no-test")
    argv = ["train", str(tmp_path / "no-test"), "--out", str(tmp_path / "m"), "--epochs", "1", "--hidden-dim", "8",
            "--num-blocks", "1", "--quiet"]
    refused(capsys, argv, "no dialogues with split 'test'", "--no-test")
    assert not (tmp_path / "m").exists()
    assert main([*argv, "--no-test", "--allow-constant-model"]) == 0
    assert (tmp_path / "m" / CONFIG_FILE).is_file()


# ------------------------------------------------------------------------------ CLI manners
REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize(("args", "code", "where", "text"), [
    (["--help"], 0, "out", "make-toy-corpus"),
    (["--version"], 0, "out", "momke "),
    (["train", "--help"], 0, "out", "--overwrite"),
    (["evaluate", "--help"], 0, "out", "--report FILE"),
    (["train"], 2, "err", "the following arguments are required: corpus, --out"),
    (["evaluate", "{toy}", "--bogus"], 2, "err", "momke evaluate: error: unrecognized arguments: --bogus"),
    (["train", "{toy}", "--out", "{toy}"], 2, "err", "already exists and is not empty"),
    (["evaluate", "{toy}", "--report", "{toy}"], 2, "err", "--report: {toy} is a directory"),
    (["evaluate", "{toy}", "--config", "{toy}"], 2, "err", "--config: {toy} is a directory"),
    (["extract", "--help"], 0, "out", "--label-map MAP"),
    (["extract", "talk.csv"], 2, "err", "momke extract: error: the following arguments are required: --out"),
    (["extract", "talk.csv", "--out", "{toy}/corpus.json"], 2, "err", "--out: {toy}/corpus.json is a file"),
    (["extract", "talk.csv", "--out", "{toy}", "--label-map", "{toy}"], 2, "err", "--label-map: {toy} is a directory"),
])
def test_help_version_and_usage_errors_answer_without_loading_torch(toy, args, code, where, text):
    """Answered before anything heavy is imported: under a second even on a busy CPU; an error
    is one line (the usage block is for --help)."""
    probe = ("import sys, time\n"
             "began = time.monotonic()\n"
             "from momke.models.commands.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exit_:\n    code = exit_.code\n"
             "print('torch' in sys.modules, round(time.monotonic() - began, 3), code, file=sys.stderr)\n")
    args = [arg.replace("{toy}", str(toy)) for arg in args]
    result = subprocess.run([sys.executable, "-c", probe, *args], check=False, capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    *said, last = result.stderr.strip().splitlines()
    torch_loaded, seconds, exit_code = last.split()
    assert torch_loaded == "False" and int(exit_code) == code, result.stderr
    assert float(seconds) < 1.0
    assert text.replace("{toy}", str(toy)) in (result.stdout if where == "out" else result.stderr)
    assert len(said) == (1 if code else 0) and "Traceback" not in result.stderr, result.stderr


def test_version_is_the_same_in_every_command():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for module, name in (("momke.models.commands.cli", "momke"), ("momke.realtime.ui.cli", "momke-live"),
                         ("momke.realtime.ui.gradio_app", "momke-demo")):
        result = subprocess.run([sys.executable, "-m", module, "--version"], check=False, capture_output=True,
                                text=True, cwd=REPO, timeout=60)
        assert (result.returncode, result.stdout) == (0, f"{name} {project}\n"), result.stderr


def test_demo_usage_error_is_one_line_with_readable_help():
    result = subprocess.run([sys.executable, "-m", "momke.realtime.ui.gradio_app", "--port", "x"], check=False,
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "momke-demo: error:" in result.stderr
    shown = subprocess.run([sys.executable, "-m", "momke.realtime.ui.gradio_app", "--help"], check=True,
                           capture_output=True, text=True, cwd=REPO, timeout=60).stdout
    assert "--max-sessions N" in shown and "MAX_SESSIONS" not in shown and "CHECKPOINT" not in shown


def test_help_shows_no_internal_names():
    from momke.models.commands.cli import build_parser
    from momke.models.commands.extract_options import build_parser as extract_parser

    parser = build_parser()
    for command in (parser, *parser.commands.values(), extract_parser()):
        text = command.format_help()
        assert not re.search(r"(?<!\$)\b[A-Z]+_[A-Z_]+\b", text), text  # argparse's dest-derived metavars


@pytest.mark.parametrize(("args", "message"), [
    (["train", "{file}", "--out", "{tmp}/m"], "{file} is a file; give a feature corpus folder"),
    (["evaluate", "{toy}", "--checkpoint", "{file}"], "--checkpoint: {file} is a file; give a checkpoint folder"),
    (["evaluate", "{toy}", "--checkpoint", "{tmp}/nowhere"], "--checkpoint: {tmp}/nowhere does not exist"),
    (["evaluate", "{toy}", "--report", "{file}/r.json"], "--report: {file} is a file, not a folder"),
    (["make-toy-corpus", "{file}"], "{file} is a file, not a folder"),
    (["import-paper", "{tmp}", "--text", "{tmp}", "--out", "{tmp}/c"], "{tmp} is a directory; give the label pickle"),
    (["import-paper", "{file}", "--text", "{file}", "--out", "{tmp}/c"], "--text: {file} is a file; give a folder"),
])
def test_a_file_or_folder_in_the_wrong_place_is_named(toy, tmp_path, capsys, args, message):
    (tmp_path / "a_file").write_text("keep me")

    def fill(text):
        return text.replace("{file}", str(tmp_path / "a_file")).replace("{tmp}", str(tmp_path)).replace("{toy}", str(toy))

    refused(capsys, [fill(arg) for arg in args], fill(message))
    assert [path.name for path in tmp_path.iterdir()] == ["a_file"]  # nothing written
    assert (tmp_path / "a_file").read_text() == "keep me"


TINY_TRAINING = ["--epochs", "1", "--hidden-dim", "8", "--num-blocks", "1", "--quiet", "--allow-constant-model",
                 "--device", "cpu"]


def test_train_replaces_a_checkpoint_only_with_overwrite(toy, tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["train", str(toy), "--out", str(out), *TINY_TRAINING]
    assert main(argv) == 0
    capsys.readouterr()
    before = (out / WEIGHTS_FILE).read_bytes()
    refused(capsys, argv, "--out: ", "already exists and is not empty", "add --overwrite")
    assert (out / WEIGHTS_FILE).read_bytes() == before
    assert main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert (out / WEIGHTS_FILE).read_bytes() != before


def test_corpora_are_replaced_only_with_overwrite(tmp_path, capsys):
    from momke.models.training.data import load_corpus

    toy = tmp_path / "toy"
    assert main(["make-toy-corpus", str(toy), "--dialogues", "4"]) == 0
    capsys.readouterr()
    refused(capsys, ["make-toy-corpus", str(toy), "--dialogues", "6"], "add --overwrite")
    assert len(load_corpus(toy)) == 4
    assert main(["make-toy-corpus", str(toy), "--dialogues", "6", "--overwrite"]) == 0
    assert len(load_corpus(toy)) == 6

    argv = [*write_layout(tmp_path, [{"d1": ["d1_0"]}, {"d1": [0]}, {"d1": ["F"]}, {}, ["d1"], []]),
            "--label-names", "happy", "sad"]
    assert main(argv) == 0
    capsys.readouterr()
    refused(capsys, argv, "--out: ", "add --overwrite")
    assert main([*argv, "--overwrite"]) == 0
    assert len(load_corpus(tmp_path / "corpus")) == 1


def test_evaluate_json_is_one_document_on_stdout_and_report_writes_a_file(toy, toy_checkpoint, tmp_path, capsys):
    report = tmp_path / "results.json"
    argv = ["evaluate", str(toy), "--checkpoint", str(toy_checkpoint), "--device", "cpu", "--json", "--report",
            str(report)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()  # nothing but the JSON on stdout
    assert json.loads(line) == json.loads(report.read_text())
    assert "{a,t,v}" not in captured.out and f"results written to {report}" in captured.err
    refused(capsys, argv, "--report: ", "already exists; add --overwrite")
    report.write_text("an old report")
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads(report.read_text())["protocol"] == f"checkpoint {toy_checkpoint}"


def run_with_stdout_closed(*args: str) -> subprocess.CompletedProcess:
    """`momke ... | head -0`: the reader is gone before the first line is written."""
    proc = subprocess.Popen([sys.executable, "-m", "momke.models.commands.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=ONE_THREAD)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, "", err)


@pytest.mark.parametrize("mode", ["train", "evaluate", "evaluate --json"])
def test_a_closed_pipe_loses_nothing_and_exits_0(mode, toy, toy_checkpoint, tmp_path):
    if mode == "train":
        args, written = ["train", str(toy), "--out", str(tmp_path / "m"), *TINY_TRAINING], tmp_path / "m" / WEIGHTS_FILE
    else:
        written = tmp_path / "results.json"
        args = ["evaluate", str(toy), "--checkpoint", str(toy_checkpoint), "--device", "cpu", "--report", str(written),
                *mode.split()[1:]]
    result = run_with_stdout_closed(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "broken" not in result.stderr.lower(), result.stderr
    assert written.is_file()  # the checkpoint or report is written all the same


@pytest.mark.parametrize("when", ["while importing torch", "while training"])
def test_ctrl_c_exits_130_with_one_line(when, toy, tmp_path):
    out = tmp_path / "m"
    argv = ["train", str(toy), "--out", str(out), "--epochs", "100000", "--patience", "0", "--hidden-dim", "8",
            "--num-blocks", "1", "--quiet"]
    # "started" is said inside main(), just before the command runs (and imports torch).
    program = ("import sys\nfrom momke.models.commands import cli\nrun = cli._run\n"
               "def started(argv):\n    print('started', file=sys.stderr, flush=True)\n    return run(argv)\n"
               "cli._run = started\nsys.exit(cli.main(sys.argv[1:]))\n")
    wait_for = "started" if when == "while importing torch" else "training on"
    proc = subprocess.Popen([sys.executable, "-c", program, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=ONE_THREAD)
    try:
        lines = [proc.stderr.readline()]
        while lines[-1] and wait_for not in lines[-1]:
            lines.append(proc.stderr.readline())
        assert wait_for in lines[-1], "".join(lines)
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "momke train: stopped (Ctrl-C)", err
    assert not out.exists()
