"""Sentiment end to end from transcripts: a numeric-label manifest -> `momke extract` (a
regression corpus) -> `momke train` -> Acc2 / MAE on the test split."""

import csv
import json

import numpy as np
import pytest
from momke.models.commands.cli import main as momke_main
from momke.models.commands.extract_corpus import main as extract_main
from momke.models.training.data import load_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")

POSITIVE = ["I love this {}, it is wonderful", "What a great {}, I am delighted", "The {} was fantastic and fun",
            "Such a lovely {}, thank you so much", "I really enjoyed the {}, brilliant"]
NEGATIVE = ["I hate this {}, it is awful", "What a terrible {}, I am furious", "The {} was boring and painful",
            "Such a horrible {}, never again", "I really disliked the {}, disgusting"]
THINGS = ["movie", "meal", "song", "trip", "book", "game", "show", "party"]


def sentiment_manifest(path, dialogues=36, seed=0):
    """Rows of a manifest CSV with numeric labels (scores in [-3, 3]) and train/valid/test splits."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(dialogues):
        split = "test" if d % 6 == 0 else "valid" if d % 6 == 1 else "train"
        for u in range(4):
            positive = rng.random() < 0.5
            template = rng.choice(POSITIVE if positive else NEGATIVE)
            score = (1 if positive else -1) * rng.uniform(1.0, 3.0)
            rows.append({"dialogue": f"d{d:02d}", "utterance": f"d{d:02d}_u{u}", "speaker": "AB"[u % 2],
                         "transcript": template.format(rng.choice(THINGS)), "label": f"{score:.2f}", "split": split})
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow  # ~25 s alone (144 transcripts embedded, 40 + 40 epochs)
def test_numeric_labels_make_a_regression_corpus_and_sentiment_metrics(tmp_path, capsys):
    manifest = sentiment_manifest(tmp_path / "manifest.csv")
    features = tmp_path / "features"
    assert extract_main([str(manifest), "--out", str(features), "--no-cache", "--quiet"]) == 0
    assert "extracting a regression corpus" in capsys.readouterr().err  # auto said what it chose
    corpus = load_corpus(features)
    assert corpus.metadata.task == "regression" and corpus.metadata.labels == ()
    labels = np.concatenate([c.labels for c in corpus.conversations])
    assert labels.dtype == np.float32 and np.abs(labels).min() >= 1.0 and np.abs(labels).max() <= 3.0

    out = tmp_path / "model"
    code = momke_main(["train", str(features), "--out", str(out), "--epochs", "40", "--hidden-dim", "16",
                       "--num-blocks", "1", "--dropout", "0.1", "--lr", "3e-3", "--batch-size", "8", "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "acc2_nonzero" in printed.out and "mae" in printed.out
    metrics = json.loads((out / "config.json").read_text())["config"]["metadata"]["test_metrics"]["t"]
    assert metrics["acc2_nonzero"] >= 0.85, metrics  # the sentences' sentiment is plain to MiniLM
    assert metrics["mae"] < 1.5, metrics


def test_the_task_can_be_forced_and_is_checked(tmp_path, capsys):
    manifest = sentiment_manifest(tmp_path / "manifest.csv", dialogues=4)
    out = tmp_path / "classes"
    assert extract_main([str(manifest), "--out", str(out), "--task", "classification", "--no-cache", "--quiet"]) == 0
    assert load_corpus(out).metadata.task == "classification"
    capsys.readouterr()

    rows = list(csv.DictReader(manifest.open()))
    rows[3]["label"] = "happy"
    with manifest.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code = extract_main([str(manifest), "--out", str(tmp_path / "bad"), "--task", "regression", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2 and "needs numeric labels" in err and "d00/d00_u3: 'happy'" in err
    assert not (tmp_path / "bad" / "corpus.json").exists()


def test_whole_number_labels_stay_classes_with_a_message(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text("dialogue,transcript,label\nd1,hello there,0\nd1,go away,1\nd2,fine thanks,2\n")
    assert extract_main([str(path), "--out", str(tmp_path / "f"), "--no-cache", "--quiet"]) == 0
    assert "reading them as class names" in capsys.readouterr().err
    assert load_corpus(tmp_path / "f").metadata.labels == ("0", "1", "2")
