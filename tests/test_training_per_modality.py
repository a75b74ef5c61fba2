"""Per-modality class weights and stage 1's epoch per expert (issue 19, part 3): corpora that each
carry one modality, as the default recipe's do, on the synthetic toy features."""

import json

import numpy as np
import pytest
import torch
from momke.models.config import MODALITIES
from momke.models.training.data import Conversation
from momke.models.training.toy_corpus import make_toy_corpus
from momke.models.training.trainer import (
    Trainer,
    TrainingSettings,
    model_config_for,
    presence_codes,
    split_for_training,
)
from torch.nn import functional as F

TINY = {"hidden_dim": 16, "num_blocks": 1, "num_heads": 2, "router_hidden_dim": 16, "dropout": 0.1}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_modality(conversation: Conversation, modality: str, keep_label=None) -> Conversation:
    """The conversation with only `modality` present; labels not in keep_label become unlabelled."""
    present = conversation.present.copy()
    present[:, [i for i, m in enumerate(MODALITIES) if m != modality]] = False
    present[:, MODALITIES.index(modality)] = True
    labels = conversation.labels.copy()
    if keep_label is not None:
        labels[~np.isin(labels, keep_label)] = -1
    return Conversation(f"{conversation.dialogue_id}-{modality}", conversation.utterance_ids, conversation.speakers,
                        conversation.features, present, labels, conversation.split)


@pytest.fixture(scope="module")
def split():
    """Audio-only dialogues with all four classes; text-only dialogues (three times as many) with
    only classes 0 and 2, as DailyDialog's happy and neutral lines; visual-only, all classes."""
    train, valid, _ = split_for_training(make_toy_corpus(num_dialogues=60, seed=3), 0.25, 0)

    def build(dialogues):
        return ([one_modality(c, "audio") for c in dialogues] + [one_modality(c, "visual") for c in dialogues]
                + [one_modality(c, "text", keep_label=[0, 2]) for c in dialogues for _ in range(3)])

    return build(train), build(valid)


def settings(**overrides):
    values = {"stage1_epochs": 6, "stage2_epochs": 1, "learning_rate": 3e-3, "batch_size": 8, "progress": False,
              "seed": 0, "class_weights": True, "patience": None}
    values.update(overrides)
    return TrainingSettings(**values)


def trainer(split, **overrides) -> Trainer:
    train, valid = split
    return Trainer(train, valid, model_config_for(make_toy_corpus(num_dialogues=2).metadata, **TINY), settings(**overrides))


def inverse_frequency(labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels, minlength=4).astype(float)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return weights / weights[counts > 0].mean()


def test_per_modality_weights_come_from_that_modalitys_utterances(split):
    train, _ = split
    scoped = trainer(split, class_weight_scope="modality")
    for index, modality in enumerate(MODALITIES):
        labels = np.concatenate([c.labels[(c.labels >= 0) & c.present[:, index]] for c in train])
        expected = inverse_frequency(labels)
        np.testing.assert_allclose(scoped.modality_class_weights[modality].numpy(), expected, rtol=1e-6)
    # Text has only classes 0 and 2 (weight 0 for the others); audio and video all four, near
    # equal: the text lines no longer tilt the voice's weights towards classes 1 and 3.
    text = scoped.modality_class_weights["text"].numpy()
    assert text[1] == text[3] == 0.0 and text[0] > 0 and text[2] > 0
    audio = scoped.modality_class_weights["audio"].numpy()
    assert audio.max() / audio.min() < 1.5
    everything = trainer(split, class_weight_scope="all")
    tilted = everything.class_weights.numpy()
    assert tilted[1] / tilted[0] > 2.0  # over all utterances the text's classes 0 and 2 dominate
    assert all(everything.modality_class_weights[m] is everything.class_weights for m in MODALITIES)
    # The fused loss keeps the weights over all utterances in both scopes.
    torch.testing.assert_close(scoped.class_weights, everything.class_weights)
    assert all(v is None for v in trainer(split, class_weights=False).modality_class_weights.values())


def test_each_experts_loss_uses_its_modalitys_weights(split):
    scoped = trainer(split, class_weight_scope="modality")
    batch = next(scoped._batches("stage1"))
    scoped.model.eval()  # no dropout: the same outputs twice
    with torch.no_grad():
        total = scoped.stage1_step(batch, list(MODALITIES))
        expected = 0.0
        for index, modality in enumerate(MODALITIES):
            present = batch.modality_mask[..., index]
            outputs = scoped.model.forward_unimodal(modality, batch.features[modality], present, batch.utterance_mask)
            use = batch.label_mask & present
            if use.any():
                expected += F.cross_entropy(outputs[use], batch.labels[use].long(),
                                            weight=scoped.modality_class_weights[modality])
        unscoped = trainer(split, class_weight_scope="all")
        unscoped.model.load_state_dict(scoped.model.state_dict())
        unscoped.model.eval()
        other = unscoped.stage1_step(batch, list(MODALITIES))
    torch.testing.assert_close(total, torch.as_tensor(expected))
    assert not torch.isclose(total, other)  # the scope changes the loss


def test_presence_scope_weights_the_fused_loss_by_the_utterances_own_modalities(split):
    scoped = trainer(split, class_weight_scope="presence", unimodal_loss_weight=0.5)
    table = scoped.presence_class_weights
    # Voice-only utterances (code 1) get the voice corpora's weights, text-only (2) the text's.
    torch.testing.assert_close(table[1], scoped.modality_class_weights["audio"])
    torch.testing.assert_close(table[2], scoped.modality_class_weights["text"])
    torch.testing.assert_close(table[4], scoped.modality_class_weights["visual"])
    torch.testing.assert_close(table[7], scoped.class_weights)  # no such utterance: the weights over all
    batch = next(scoped._batches("stage2"))
    # Each utterance's code is that of its own modalities in the data, not of the protocol's draw.
    assert {int(c) for c in batch.presence_code[batch.utterance_mask].unique()} <= {1, 2, 4}
    scoped.model.eval()
    with torch.no_grad():
        loss = scoped.stage2_step(batch)
        output = scoped.model(batch.features, batch.modality_mask, batch.utterance_mask)
        use = batch.label_mask & batch.modality_mask.any(-1)
        labels = batch.labels[use].long()
        weights = table[batch.presence_code[use], labels]
        fused = (F.cross_entropy(output.logits[use], labels, reduction="none") * weights).sum() / weights.sum()
        assert not torch.isclose(fused, F.cross_entropy(output.logits[use], labels, weight=scoped.class_weights))
        heads = sum(0.0 if not (use & output.modality_mask[..., i]).any() else F.cross_entropy(
            output.modality_logits[:, :, i][use & output.modality_mask[..., i]],
            batch.labels[use & output.modality_mask[..., i]].long(), weight=scoped.modality_class_weights[m])
            for i, m in enumerate(MODALITIES))
    torch.testing.assert_close(loss, fused + scoped.settings.unimodal_loss_weight * heads)
    assert presence_codes(np.array([[True, False, False], [False, True, True], [True, True, True]])).tolist() == [1, 6, 7]


class Snapshots(Trainer):
    """Keeps the model's weights at every stage-1 validation."""

    def stage1_validation(self, experts):
        self.snapshots = getattr(self, "snapshots", [])
        self.snapshots.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return super().stage1_validation(experts)


def test_stage1_per_expert_keeps_each_experts_own_best_epoch(split):
    train, valid = split
    run = Snapshots(train, valid, model_config_for(make_toy_corpus(num_dialogues=2).metadata, **TINY),
                    settings(stage1_selection="per-expert", selection_metric="ua"))
    experts = run.stage1_experts()
    run.run_stage1_per_expert(experts)
    history = [h for h in run.history if h["stage"] == "stage1"]
    assert len(history) == 6  # no patience: every epoch ran
    kept = run.best["stage1"]["expert_epochs"]
    state = run.model.state_dict()
    for expert in experts:
        values = [h["valid"]["per_expert"][expert]["ua"] for h in history]
        best_epoch = int(np.argmax(values)) + 1  # the first best
        assert kept[expert] == best_epoch
        snapshot = run.snapshots[best_epoch - 1]
        for key in run.expert_parameters(expert):
            torch.testing.assert_close(state[key], snapshot[key], rtol=0, atol=0)
        # Re-scoring the kept model gives each expert its best value.
        assert run.best["stage1"]["valid"]["per_expert"][expert]["ua"] == pytest.approx(max(values))
    assert run.expert_parameters("audio") and all(
        k.startswith(("projections.audio.", "experts.audio.", "unimodal_heads.audio.")) for k in run.expert_parameters("audio"))
    # The kept mean is at least that of any single epoch (the joint choice's best).
    assert run.best["stage1"]["valid"]["ua"] >= max(h["valid"]["ua"] for h in history) - 1e-9


def test_stage1_per_expert_stops_only_when_every_expert_ran_out_of_patience(split):
    """Scripted validation: audio improves until epoch 5, text peaks at 1, video at 2. With
    patience 2 the stage ends after epoch 7 (audio's second stale epoch), and each expert keeps
    its own epoch; the joint rule stops after epoch 4 and keeps epoch 2 for all (text's and
    video's peaks dominate the mean early)."""
    scripted = {"audio": [0.5, 0.55, 0.6, 0.65, 0.7, 0.69, 0.68, 0.9, 0.9, 0.9],
                "text": [0.8, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
                "visual": [0.6, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}

    class Scripted(Trainer):
        calls = 0

        def stage1_validation(self, experts):
            self.calls += 1
            epoch = min(self.calls, 10) - 1
            own = {e: {"wa": scripted[e][epoch], "constant": 0.25, "scored": 1000} for e in experts}
            return {"wa": float(np.mean([v["wa"] for v in own.values()])), "constant": 0.25, "scored": 1000,
                    "per_expert": own}

    train, valid = split
    run = Scripted(train, valid, model_config_for(make_toy_corpus(num_dialogues=2).metadata, **TINY),
                   settings(stage1_selection="per-expert", stage1_epochs=10, patience=2, batch_size=64))
    run.run_stage1_per_expert(run.stage1_experts())
    assert len([h for h in run.history if h["stage"] == "stage1"]) == 7
    assert run.best["stage1"]["expert_epochs"] == {"audio": 5, "text": 1, "visual": 2}
    assert run.best["stage1"]["epoch"] == 5
    joint = Scripted(train, valid, run.config, settings(stage1_epochs=10, patience=2, batch_size=64))
    joint.fit()
    assert len([h for h in joint.history if h["stage"] == "stage1"]) == 4
    assert joint.best["stage1"]["epoch"] == 2 and "expert_epochs" not in joint.best["stage1"]


def test_settings_and_recipe_reject_unknown_choices(tmp_path):
    with pytest.raises(ValueError, match="class_weight_scope"):
        TrainingSettings(class_weight_scope="speaker")
    with pytest.raises(ValueError, match="stage1_selection"):
        TrainingSettings(stage1_selection="best")
    from momke.models.commands.default_recipe import CONVERSATION_RECIPE, load_recipe, parse_args

    recipe = json.loads(CONVERSATION_RECIPE.read_text())
    assert recipe["training"]["class_weighting"] == "inverse-frequency-per-modality"
    recipe["training"]["class_weighting"] = "per-modality"
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match="class_weighting"):
        load_recipe(path)
    args = parse_args(["--out", str(tmp_path / "x"), "--class-weighting", "inverse-frequency", "--stage1-selection", "joint"])
    assert (args.class_weighting, args.stage1_selection) == ("inverse-frequency", "joint")
