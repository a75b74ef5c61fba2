"""`momke` end to end on the synthetic toy corpus: make-toy-corpus, train, evaluate, extract."""

import json
import re
import shlex
import sys
import types

import pytest
from momke.models.checkpoint import load_checkpoint
from momke.models.commands.cli import main
from momke.models.training.data import load_corpus

FAST = ["--hidden-dim", "16", "--num-blocks", "1", "--dropout", "0.1", "--lr", "3e-3", "--batch-size", "8",
        "--valid-fraction", "0.2", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is faster


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli") / "toy"
    assert main(["make-toy-corpus", str(directory)]) == 0
    return directory


def test_train_then_evaluate_checkpoint(toy, tmp_path, capsys):
    config = tmp_path / "train.toml"
    # The file asks for 1 epoch; the command line's --epochs wins.
    config.write_text('epochs = 1\nstage2-epochs = 1\nprotocol = "random"\ncontext_mode = "causal"\n')
    out = tmp_path / "model"
    assert main(["train", str(toy), "--out", str(out), "--config", str(config), "--epochs", "25", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "{a,t,v}" in printed and "Average" in printed and "checkpoint written" in printed

    model = load_checkpoint(out)
    assert model.config.context_mode == "causal"  # from the config file
    assert model.config.feature_profile == "toy" and model.config.hidden_dim == 16
    metadata = json.loads((out / "config.json").read_text())["config"]["metadata"]
    assert metadata["protocol"] == "random"
    assert metadata["training"]["stage1_epochs"] == 25  # command line beat the file's 1
    assert metadata["data"]["dialogues"] == len(load_corpus(toy))
    test_metrics = metadata["test_metrics"]
    assert set(test_metrics) == {"a", "t", "v", "av", "at", "tv", "avg", "atv"}
    assert test_metrics["atv"]["wa"] > 0.6  # chance is 0.25

    results = tmp_path / "checkpoint.json"
    assert main(["evaluate", str(toy), "--checkpoint", str(out), "--report", str(results)]) == 0
    report = json.loads(results.read_text())
    assert report["summary"]["atv"]["wa"]["mean"] == pytest.approx(test_metrics["atv"]["wa"])


def test_evaluate_fixed_protocol_leave_one_session_out(toy, tmp_path, capsys):
    results = tmp_path / "fixed.json"
    code = main(["evaluate", str(toy), "--protocol", "fixed", "--scheme", "sessions", "--epochs", "1", "--conditions", "a", "t", "atv",
                 "--report", str(results), *FAST])
    assert code == 0
    report = json.loads(results.read_text())
    assert report["protocol"] == "fixed" and report["scheme"] == "sessions"
    assert [run["fold"] for run in report["runs"]] == ["session 1", "session 2", "session 3"]
    # One model per condition and fold, each scored on its own condition only.
    assert all(set(run["selected"]) == {"a", "t", "atv"} for run in report["runs"])
    assert set(report["summary"]) == {"a", "t", "avg", "atv"}
    table = capsys.readouterr().out
    assert "folds session 1, session 2, session 3" in table


def test_help_and_errors(toy, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for words in ("--protocol", "--no-mixing", "--no-router", "--experts", "--seed", "--context-mode", "examples:"):
        assert words in help_text
    assert main([]) == 2
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"no-such-option": 1}')
    with pytest.raises(SystemExit):
        main(["train", str(toy), "--out", str(tmp_path / "m"), "--config", str(bad)])
    assert "unknown option 'no-such-option'" in capsys.readouterr().err


def test_extract_delegates_lazily(monkeypatch):
    seen = []
    fake = types.ModuleType("momke.models.commands.extract_corpus")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "momke.models.commands.extract_corpus", fake)
    assert main(["extract", "clips.csv", "--out", "x"]) == 0
    assert seen == [["clips.csv", "--out", "x"]]


def test_import_paper_layout_command(tmp_path, capsys):
    import pickle

    import numpy as np

    ids = {"Ses01F_a": ["Ses01F_a_F0", "Ses01F_a_M0"], "Ses02F_b": ["Ses02F_b_F0"]}
    labels = {"Ses01F_a": [1, 0], "Ses02F_b": [1]}
    speakers = {"Ses01F_a": ["F", "M"], "Ses02F_b": ["F"]}
    (tmp_path / "labels.pkl").write_bytes(pickle.dumps([ids, labels, speakers, {}, ["Ses01F_a"], ["Ses02F_b"]]))
    (tmp_path / "text").mkdir()
    for uids in ids.values():
        for uid in uids:
            np.save(tmp_path / "text" / f"{uid}.npy", np.ones(3, np.float32))
    out = tmp_path / "corpus"
    code = main(["import-paper", str(tmp_path / "labels.pkl"), "--text", str(tmp_path / "text"),
                 "--out", str(out), "--label-names", "neg", "pos"])
    assert code == 0, capsys.readouterr().err
    corpus = load_corpus(out)
    assert corpus.metadata.labels == ("neg", "pos") and corpus.sessions() == [1, 2]
    assert [c.split for c in corpus.conversations] == ["train", "test"]


def test_readme_momke_commands_use_the_current_flags():
    """Every `momke` command in the README's bash blocks parses (a renamed flag fails here)."""
    from pathlib import Path

    from momke.models.commands.cli import build_parser
    from momke.models.commands.extract_options import build_parser as extract_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().replace("\\\n", " ")
    commands = [shlex.split(line.split("  #")[0]) for block in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
                for line in block.splitlines() if re.match(r"(\.venv/bin/)?momke ", line)]
    assert len(commands) >= 6 and any("--report" in words for words in commands)
    for _, command, *args in commands:
        parser = extract_parser() if command == "extract" else build_parser()
        parser.parse_args(args if command == "extract" else [command, *args])  # SystemExit(2) on a stale flag
