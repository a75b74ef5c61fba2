"""`momke` refuses bad input with exit 2 and one clear line on stderr, never a traceback."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from momke.models import MoMKE
from momke.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from momke.models.cli import main
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("errors") / "toy"
    assert main(["make-toy-corpus", str(directory), "--dialogues", "8"]) == 0
    return directory


@pytest.fixture()
def toy_checkpoint(toy, tmp_path):
    from momke.models.data import load_corpus
    from momke.models.training import model_config_for

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
        "from momke.models.cli import main\n"
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
    refused(capsys, ["train", str(toy), "--out", str(tmp_path / "file")], "is a file, not a checkpoint folder")
    assert (tmp_path / "file").read_text() == "keep me"


def test_toy_corpus_refuses_to_overwrite(toy, capsys):
    refused(capsys, ["make-toy-corpus", str(toy)], "momke make-toy-corpus: error:")


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
    refused(capsys, [*argv[:1], str(tmp_path / "missing.pkl"), *argv[2:]], "not found")


def test_default_recipe_needs_an_out_folder(capsys):
    from momke.models.default_recipe import main as recipe_main

    with pytest.raises(SystemExit) as stop:
        recipe_main([])
    assert stop.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_checkpoint_round_trip_still_evaluates(toy, toy_checkpoint, capsys):
    assert main(["evaluate", str(toy), "--checkpoint", str(toy_checkpoint), "--device", "cpu"]) == 0
    assert "{a,t,v}" in capsys.readouterr().out


def test_train_refuses_a_corpus_without_test_dialogues(tmp_path, capsys):
    from momke.models.data import save_corpus
    from momke.models.toy_corpus import make_toy_corpus

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
