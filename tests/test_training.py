"""Two-stage training on a synthetic corpus where each modality carries part of the label."""

import numpy as np
import pytest
import torch
from momke.models.config import MODALITIES, MoMKEConfig
from momke.models.metrics import score
from momke.models.training.data import Conversation
from momke.models.training.toy_corpus import make_toy_corpus
from momke.models.training.trainer import (
    CONDITIONS,
    TrainingSettings,
    condition_name,
    condition_presence,
    model_config_for,
    parse_condition,
    predict,
    random_presence,
    split_for_training,
    train_momke,
    train_on_corpus,
)

TINY = {"hidden_dim": 16, "num_blocks": 1, "num_heads": 2, "router_hidden_dim": 16, "dropout": 0.1}


def fast_settings(**overrides):
    values = {
        "stage1_epochs": 20, "stage2_epochs": 30, "learning_rate": 3e-3, "batch_size": 8, "valid_fraction": 0.2,
        "progress": False, "seed": 0,
    }
    values.update(overrides)
    return TrainingSettings(**values)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is faster


@pytest.fixture(scope="module")
def corpus():
    return make_toy_corpus(num_dialogues=60)


@pytest.fixture(scope="module")
def random_protocol_run(corpus):
    return train_on_corpus(corpus, fast_settings(), **TINY)


def test_random_protocol_learns_every_condition(corpus, random_protocol_run):
    test = corpus.split("test")
    wa = {}
    for condition in CONDITIONS:
        labels, outputs = predict(random_protocol_run.model, test, [condition_presence(c, condition) for c in test])
        wa[condition_name(condition)] = score("classification", labels, outputs)["wa"]
    # Chance is 0.25 (four balanced classes); each modality alone knows about half the label.
    assert all(value > 0.33 for value in wa.values()), wa
    assert wa["atv"] > max(wa["a"], wa["t"], wa["v"]) + 0.15, wa
    assert wa["atv"] > 0.7, wa
    # Both stages ran, and each kept its best validation epoch.
    stages = {entry["stage"] for entry in random_protocol_run.history}
    assert stages == {"stage1", "stage2"}
    assert set(random_protocol_run.best) == {"stage1", "stage2"}
    assert not random_protocol_run.model.training


def test_fixed_protocol_model_sees_only_its_condition(corpus):
    settings = fast_settings(protocol="fixed", condition="t", stage1_epochs=10, stage2_epochs=15)
    result = train_on_corpus(corpus, settings, **TINY)
    test = corpus.split("test")
    labels, outputs = predict(result.model, test, [condition_presence(c, ("text",)) for c in test])
    assert score("classification", labels, outputs)["wa"] > 0.33
    stage2 = [h for h in result.history if h["stage"] == "stage2"]
    assert all(set(h["valid"]["per_condition"]) == {"t"} for h in stage2)
    # Training under {t} never reads audio or video: scrambling them changes no weight.
    short = fast_settings(protocol="fixed", condition="t", stage1_epochs=2, stage2_epochs=2, patience=None)
    rng = np.random.default_rng(5)
    scrambled = []
    for c in corpus.conversations:
        features = dict(c.features)
        for m in ("audio", "visual"):
            features[m] = rng.normal(size=features[m].shape).astype(np.float32)
        scrambled.append(Conversation(c.dialogue_id, c.utterance_ids, c.speakers, features, c.present, c.labels, c.split, c.session))
    one = train_on_corpus(corpus, short, **TINY)
    two = train_on_corpus(corpus.subset(scrambled), short, **TINY)
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values()):
        assert torch.equal(a, b)


def test_same_seed_same_metrics_other_seed_differs(corpus):
    settings = fast_settings(stage1_epochs=3, stage2_epochs=3, patience=None)
    first = train_on_corpus(corpus, settings, **TINY)
    second = train_on_corpus(corpus, settings, **TINY)
    assert [h["valid"] for h in first.history] == [h["valid"] for h in second.history]
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    other = train_on_corpus(corpus, fast_settings(stage1_epochs=3, stage2_epochs=3, patience=None, seed=1), **TINY)
    assert [h["train_loss"] for h in other.history] != [h["train_loss"] for h in first.history]


def test_test_split_never_touches_training(corpus):
    """Replacing every test dialogue by garbage changes nothing in training."""
    settings = fast_settings(stage1_epochs=2, stage2_epochs=3, patience=None)
    clean = train_on_corpus(corpus, settings, **TINY)
    rng = np.random.default_rng(99)
    poisoned_conversations = []
    for conversation in corpus.conversations:
        if conversation.split == "test":
            conversation = Conversation(
                conversation.dialogue_id, conversation.utterance_ids, conversation.speakers,
                {m: rng.normal(scale=1e3, size=x.shape).astype(np.float32) for m, x in conversation.features.items()},
                conversation.present, np.zeros(len(conversation), dtype=np.int64), "test", conversation.session,
            )
        poisoned_conversations.append(conversation)
    poisoned = train_on_corpus(corpus.subset(poisoned_conversations), settings, **TINY)
    assert [h["valid"] for h in clean.history] == [h["valid"] for h in poisoned.history]
    for a, b in zip(clean.model.state_dict().values(), poisoned.model.state_dict().values()):
        assert torch.equal(a, b)
    train, valid, test = split_for_training(corpus, 0.2, 0)
    assert {c.split for c in train + valid} == {"train"} and {c.split for c in test} == {"test"}
    assert not {c.dialogue_id for c in valid} & {c.dialogue_id for c in train}


def test_selection_keeps_best_validation_epoch(corpus):
    result = train_on_corpus(corpus, fast_settings(stage1_epochs=0, stage2_epochs=8, patience=3), **TINY)
    stage2 = [h for h in result.history if h["stage"] == "stage2"]
    best_epoch = max(stage2, key=lambda h: (h["valid"]["wa"], -h["epoch"]))["epoch"]
    assert result.best["stage2"]["epoch"] == best_epoch
    assert "stage1" not in result.best
    # Early stopping: at most `patience` epochs after the best one.
    assert len(stage2) <= best_epoch + 3
    # The returned weights are those of the kept epoch: re-scoring validation gives its value.
    _, valid, _ = split_for_training(corpus, 0.2, 0)
    wa = []
    for condition in CONDITIONS:
        labels, outputs = predict(result.model, valid, [condition_presence(c, condition) for c in valid])
        wa.append(score("classification", labels, outputs)["wa"])
    assert np.mean(wa) == pytest.approx(result.best["stage2"]["valid"]["wa"])


def test_ablations_run(corpus):
    train, valid, _ = split_for_training(corpus, 0.2, 0)
    settings = fast_settings(stage1_epochs=1, stage2_epochs=1, skip_stage1=True, class_weights=True)
    for overrides in ({"mixing": False}, {"use_router": False}, {"experts": ("audio", "text")}):
        config = model_config_for(corpus.metadata, **TINY, **overrides)
        result = train_momke(train, valid, config, settings)
        assert [h["stage"] for h in result.history] == ["stage2"]
    assert list(result.model.experts) == ["audio", "text"]


def test_random_presence_and_conditions():
    rng = np.random.default_rng(0)
    present = np.ones((200, 3), dtype=bool)
    present[:, 2] = False  # no video in this dialogue
    conversation = Conversation("d", [str(i) for i in range(200)], ["A"] * 200,
                                {"audio": np.zeros((200, 2)), "text": np.zeros((200, 2))}, present, np.zeros(200, int))
    for _ in range(20):
        mask = random_presence(conversation, 0.3, rng)
        assert not mask[:, 2].any()  # never invents a modality
        assert mask.any(axis=1).all()  # every utterance keeps at least one modality it has
    assert parse_condition("at") == ("audio", "text") == parse_condition("text,audio")
    assert parse_condition(["visual"]) == ("visual",)
    with pytest.raises(ValueError, match="unknown modality"):
        parse_condition("x")
    with pytest.raises(ValueError, match="protocol"):
        TrainingSettings(protocol="sometimes")
    assert condition_presence(conversation, ("text",))[:, [0, 2]].sum() == 0
    assert MODALITIES == ("audio", "text", "visual")


def test_selection_metric_must_fit_the_task(corpus):
    train, valid, _ = split_for_training(corpus, 0.2, 0)
    config = model_config_for(corpus.metadata, **TINY)
    with pytest.raises(ValueError, match="cannot select epochs on 'mae' for classification"):
        train_momke(train, valid, config, fast_settings(selection_metric="mae"))
    result = train_momke(train, valid, config, fast_settings(stage1_epochs=1, stage2_epochs=2, selection_metric="ua"))
    assert "ua" in result.best["stage2"]["valid"]


@pytest.mark.slow
def test_fixed_protocol_every_condition_above_chance(corpus):
    """The paper's protocol: one model per condition, each scored on its own condition."""
    from momke.models.training.evaluation import run_evaluation

    report = run_evaluation(corpus, fast_settings(protocol="fixed"), TINY, scheme="split", seeds=[0])
    wa = {name: values["wa"]["mean"] for name, values in report.summary().items()}
    assert all(value > 0.33 for value in wa.values()), wa
    assert wa["atv"] > max(wa["a"], wa["t"], wa["v"]) + 0.15, wa


def shuffled_labels(corpus, seed=0):
    """The same corpus with every label moved to a random utterance: nothing left to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.concatenate([c.labels for c in corpus.conversations]))
    start = 0
    for conversation in corpus.conversations:
        conversation.labels = labels[start : start + len(conversation)]
        start += len(conversation)
    return corpus


def test_patience_counts_only_after_the_model_beats_a_constant_predictor():
    settings = fast_settings(stage1_epochs=12, stage2_epochs=12, patience=2)
    learnable = train_on_corpus(make_toy_corpus(num_dialogues=60, seed=1), settings, **TINY)
    assert learnable.learnt
    assert len(learnable.history) < 24  # it learnt, then stopped early
    noise = train_on_corpus(shuffled_labels(make_toy_corpus(num_dialogues=60, seed=1)), settings, **TINY)
    assert not noise.learnt
    assert len(noise.history) == 24  # never beat the constant: patience never started counting
    kept = noise.best["stage2"]["valid"]
    assert kept["constant"] > 0.2 and "wa" in kept


def test_momke_train_fails_when_the_model_learnt_nothing(tmp_path, capsys):
    from momke.models.checkpoint import load_config
    from momke.models.commands.cli import EXIT_NOT_LEARNT, main
    from momke.models.training.data import save_corpus

    save_corpus(shuffled_labels(make_toy_corpus(num_dialogues=60, seed=1)), tmp_path / "noise")
    options = ["--epochs", "8", "--patience", "2", "--hidden-dim", "16", "--num-blocks", "1", "--dropout", "0.1",
               "--lr", "3e-3", "--batch-size", "8", "--valid-fraction", "0.2", "--quiet"]
    code = main(["train", str(tmp_path / "noise"), "--out", str(tmp_path / "model"), *options])
    err = capsys.readouterr().err
    assert code == EXIT_NOT_LEARNT == 3
    assert "no better on validation than always predicting the majority class" in err
    config = load_config(tmp_path / "model")  # written all the same: nothing is lost
    assert config.metadata["learnt"] is False
    assert set(config.metadata["validation"]) == {"stage1", "stage2"}

    code = main(["train", str(tmp_path / "noise"), "--out", str(tmp_path / "model"), "--allow-constant-model",
                 "--overwrite", *options])
    assert code == 0 and "Kept anyway" in capsys.readouterr().err


def test_bucketing_by_length_batches_every_dialogue_once_with_less_padding():
    from momke.models.training.trainer import Trainer

    rng = np.random.default_rng(0)
    conversations = make_toy_corpus(num_dialogues=64, seed=2).conversations
    for c in conversations:  # lengths from 2 to 40
        n = int(rng.integers(2, 41))
        c.utterance_ids, c.speakers = [f"u{i}" for i in range(n)], [""] * n
        c.labels = np.zeros(n, np.int64)
        c.present = np.ones((n, 3), bool)
        c.features = {m: np.zeros((n, d), np.float32) for m, d in zip(MODALITIES, (8, 8, 8))}
    config = MoMKEConfig(feature_dims=(8, 8, 8), labels=("a", "b"), **TINY)

    def padding(bucket: bool) -> tuple[float, list[list[int]]]:
        trainer = Trainer(conversations, conversations[:1], config, fast_settings(bucket_by_length=bucket))
        epochs = [trainer.batch_indices() for _ in range(2)]
        for batches in epochs:
            assert sorted(np.concatenate(batches).tolist()) == list(range(len(conversations)))
        padded = sum(len(b) * max(len(conversations[i]) for i in b) for b in epochs[0])
        return 1 - sum(len(c) for c in conversations) / padded, [b.tolist() for b in epochs[0]]

    plain, _ = padding(False)
    bucketed, first = padding(True)
    assert bucketed < plain / 2, (bucketed, plain)
    trainer = Trainer(conversations, conversations[:1], config, fast_settings(bucket_by_length=True))
    trainer.batch_indices()
    assert [b.tolist() for b in trainer.batch_indices()] != first  # batches change between epochs


def test_mlp_ratio_and_bucketing_options_reach_the_checkpoint(tmp_path):
    from momke.models.checkpoint import load_checkpoint
    from momke.models.commands.cli import main
    from momke.models.training.data import save_corpus

    save_corpus(make_toy_corpus(num_dialogues=12), tmp_path / "toy")
    code = main(["train", str(tmp_path / "toy"), "--out", str(tmp_path / "m"), "--epochs", "1", "--hidden-dim", "16",
                 "--num-blocks", "1", "--mlp-ratio", "1", "--bucket-by-length", "--allow-constant-model", "--quiet"])
    assert code == 0
    model = load_checkpoint(tmp_path / "m", device="cpu")
    assert model.config.mlp_ratio == 1.0
    assert tuple(model.experts["text"].blocks[0].mlp[0].weight.shape) == (16, 16)  # 1 * d wide
    assert model.config.metadata["training"]["bucket_by_length"] is True


def test_weight_average_follows_the_formula_and_swaps_back():
    from momke.models.training.trainer import WeightAverage

    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.5)
    expected = torch.zeros(1, 2)
    for step, value in enumerate([1.0, 2.0, 3.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
        decay = min(0.5, (1 + step) / (10 + step))  # low at first, then the given decay
        expected = decay * expected + (1 - decay) * value
    assert torch.allclose(average.average[0], expected)
    average.swap()
    assert torch.allclose(layer.weight, expected)  # the model now holds the average
    average.swap()
    assert torch.equal(layer.weight, torch.full((1, 2), 3.0))  # and its own weights again


def test_weight_average_zero_is_the_plain_run_and_a_real_decay_changes_it(corpus):
    settings = {"stage1_epochs": 2, "stage2_epochs": 3, "patience": None}
    plain = train_on_corpus(corpus, fast_settings(**settings), **TINY)
    last = train_on_corpus(corpus, fast_settings(weight_average=0.0, **settings), **TINY)
    assert [h["valid"] for h in plain.history] == [h["valid"] for h in last.history]
    for a, b in zip(plain.model.state_dict().values(), last.model.state_dict().values()):
        assert torch.allclose(a, b)
    averaged = train_on_corpus(corpus, fast_settings(weight_average=0.9, **settings), **TINY)
    first_stage = [h["train_loss"] for h in plain.history if h["stage"] == "stage1"]
    assert [h["train_loss"] for h in averaged.history if h["stage"] == "stage1"] == first_stage  # same steps
    assert [h["valid"] for h in averaged.history] != [h["valid"] for h in plain.history]  # other weights scored
    with pytest.raises(ValueError, match="weight_average"):
        fast_settings(weight_average=1.0)
