"""MoMKE's two training stages, with the paper's defaults and validation-based model selection.

Stage 1 (unimodal expert training): expert k reads only modality k through its own FC head
(``MoMKE.forward_unimodal``); the experts' losses are summed. Stage 2 (experts mixing) starts from
the stage-1 projections and experts and trains the whole model through ``MoMKE.forward``.

Protocols:
- ``fixed`` (the paper's): one model per condition, e.g. {a, t}; the condition's modalities are
  all that are present, in training and in evaluation.
- ``random`` (for the live app): one model for every condition. Each training conversation gets
  a random non-empty subset of the modalities it has, and each utterance, with probability
  ``utterance_drop_rate``, another random non-empty subset of its own modalities.

Each stage keeps the weights of its best epoch on the validation split (with
``stage1_selection="per-expert"``, stage 1 keeps each expert's own best epoch: its projection,
expert and head as they were when that expert scored best on its own modality) and stops early
after ``patience`` epochs without improvement (per expert: once every expert has had
``patience`` epochs without improvement), counted only from the first epoch that scores better on
validation than a constant predictor (the training data's majority class or mean score): a
stage is never stopped before it has learnt anything. If the kept model is still no better
than that constant, ``TrainingResult.learnt`` is False (``momke train`` then fails). The
validation split is the corpus's "valid" dialogues or, when there are none, a seeded fraction of
the training dialogues: test data is never an argument of ``train_momke``.

Precision (``precision``): "auto" trains in bfloat16 mixed precision where the device multiplies
bfloat16 natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU from Ampere on) and the model is
wide enough to gain from it (d >= 192), and in float32 elsewhere (models/training/precision.py);
evaluation is float32 either way.

The same seed gives the same run on CPU (tested). On CUDA, some kernels (attention backward)
are not bitwise deterministic, so runs agree closely rather than exactly.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

# Conditions are named where the modalities are (extractors/modalities.py); callers import them here too.
from ...extractors.modalities import condition_name, parse_condition
from ...extractors.runtime import pick_device
from ..config import MODALITIES, MoMKEConfig
from ..metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    beats_constant,
    constant_outputs,
    is_better,
    score,
)
from ..momke import MoMKE
from .data import Conversation, CorpusMetadata, FeatureCorpus, collate_conversations
from .optim import FusedAdam
from .precision import PRECISIONS, autocast, training_dtype

PROTOCOLS = ("fixed", "random")
CLASS_WEIGHT_SCOPES = ("all", "modality", "presence")
STAGE1_SELECTIONS = ("joint", "per-expert")
BUCKET_POOL = 8  # bucket_by_length sorts dialogues by length within pools of this many batches
# The paper's Table 2 order: the six incomplete conditions, then the complete one.
CONDITIONS: tuple[tuple[str, ...], ...] = (
    ("audio",),
    ("text",),
    ("visual",),
    ("audio", "visual"),
    ("audio", "text"),
    ("text", "visual"),
    ("audio", "text", "visual"),
)


@dataclass
class TrainingSettings:
    """How to train (the model's own shape lives in MoMKEConfig).

    Defaults are the paper's: Adam, lr 1e-4, 100 epochs per stage (the paper uses 50 for MOSEI),
    batches of 32 conversations, L2 1e-5 as in the authors' code.
    """

    protocol: str = "random"
    condition: tuple[str, ...] = MODALITIES  # fixed protocol: the modalities present
    utterance_drop_rate: float = 0.3  # random protocol: per-utterance re-draw probability
    unimodal_loss_weight: float = 0.0  # stage 2: weight of each modality's own-head loss
    stage1_epochs: int = 100
    stage2_epochs: int = 100
    skip_stage1: bool = False  # ablation "no stage 1"
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5
    class_weights: bool = False  # classification: weight classes by inverse frequency
    # Frequencies over which utterances: "all" labelled ones (one set of weights for every loss),
    # or "modality": each expert's and modality head's loss weighted by the class frequencies of
    # the utterances that have that modality (a text-only corpus then moves only the text
    # weights); the fused loss keeps "all"'s weights. "presence": as "modality", and the fused
    # loss weights each utterance by the class frequencies of the training utterances with the
    # same modalities in the data (a voice-only clip by the voice corpora's, a line by the text's).
    class_weight_scope: str = "all"
    # Stage 1's kept weights: "joint" = one epoch for all experts, chosen on their mean metric;
    # "per-expert" = each expert's own best epoch on its own modality.
    stage1_selection: str = "joint"
    bucket_by_length: bool = False  # batch dialogues of similar length together (less padding)
    # Validate and keep an exponential moving average of the weights (decay per step) instead of
    # the last step's weights; None = off. Averages out the last steps' noise (see WeightAverage).
    weight_average: float | None = None
    # Epochs without validation improvement before stopping, counted from the first epoch that
    # beats the constant predictor; None = never stop early.
    patience: int | None = 20
    selection_metric: str | None = None  # default: "wa" (classification) / "mae" (regression)
    valid_fraction: float = 0.1  # carved from training dialogues when the corpus has no "valid"
    seed: int = 0
    device: str | None = None  # None: CUDA when present, else CPU
    # "auto": bfloat16 mixed precision where the device has it natively and d >= 192, else float32 (precision.py)
    precision: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        self.condition = parse_condition(self.condition)
        if not 0.0 <= self.utterance_drop_rate <= 1.0:
            raise ValueError("utterance_drop_rate must be in [0, 1]")
        if not self.unimodal_loss_weight >= 0.0:
            raise ValueError("unimodal_loss_weight must be >= 0")
        if self.stage1_epochs < 0 or self.stage2_epochs < 1:
            raise ValueError("stage1_epochs must be >= 0 and stage2_epochs >= 1")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError("valid_fraction must be in (0, 1)")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.weight_average is not None and not 0.0 <= self.weight_average < 1.0:
            raise ValueError("weight_average (the moving average's decay per step) must be in [0, 1)")
        if self.class_weight_scope not in CLASS_WEIGHT_SCOPES:
            raise ValueError(f"class_weight_scope must be one of {CLASS_WEIGHT_SCOPES}, got {self.class_weight_scope!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.stage1_selection not in STAGE1_SELECTIONS:
            raise ValueError(f"stage1_selection must be one of {STAGE1_SELECTIONS}, got {self.stage1_selection!r}")

    def metric_for(self, task: str) -> str:
        return self.selection_metric or ("wa" if task == "classification" else "mae")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["condition"] = list(self.condition)
        return data


@dataclass
class TrainingResult:
    """The selected model (eval mode), its config and how it was chosen."""

    model: MoMKE
    config: MoMKEConfig
    settings: TrainingSettings
    history: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]  # per stage: epoch and validation metrics of the kept weights
    num_train_dialogues: int
    num_valid_dialogues: int
    precision: str = "float32"  # what settings.precision resolved to on the training device

    @property
    def learnt(self) -> bool:
        """Whether the kept model scores better on validation than a constant predictor."""
        metric, kept = self.settings.metric_for(self.config.task), self.best["stage2"]["valid"]
        return beats_constant(metric, kept[metric], kept["constant"], kept["scored"])


def model_config_for(metadata: CorpusMetadata, **overrides: Any) -> MoMKEConfig:
    """A MoMKEConfig that reads this corpus's features and predicts its labels."""
    return MoMKEConfig(
        feature_dims=metadata.feature_dims,
        labels=metadata.labels if metadata.task == "classification" else (),
        task=metadata.task,
        feature_profile=metadata.feature_profile,
        **overrides,
    )


def split_for_training(
    corpus: FeatureCorpus, valid_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Conversation], list[Conversation], list[Conversation]]:
    """(train, valid, test) from the corpus's split fields. Dialogues without a split count as
    training data. With no "valid" dialogues, a seeded `valid_fraction` of the training
    dialogues (at least one) becomes validation; test dialogues are never used for that."""
    train = [c for c in corpus.conversations if c.split in ("train", None)]
    valid = corpus.split("valid")
    test = corpus.split("test")
    if not valid:
        train, valid = carve_validation(train, valid_fraction, seed)
    return train, valid, test


def carve_validation(
    train: Sequence[Conversation], valid_fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    if len(train) < 2:
        raise ValueError("need at least two training dialogues to carve out a validation split")
    order = np.random.default_rng(seed).permutation(len(train))
    count = min(len(train) - 1, max(1, round(valid_fraction * len(train))))
    held = set(order[:count].tolist())
    return [c for i, c in enumerate(train) if i not in held], [c for i, c in enumerate(train) if i in held]


# ------------------------------------------------------------------------------------------------
# Modality masks of the two protocols


def condition_presence(conversation: Conversation, condition: Sequence[str]) -> np.ndarray:
    """bool [U, 3]: the conversation's own presence, restricted to the condition's modalities."""
    keep = np.array([m in condition for m in MODALITIES])
    return conversation.present & keep


def presence_codes(present: np.ndarray) -> np.ndarray:
    """int [U]: each utterance's modalities as a code 0-7 (audio 1, text 2, visual 4)."""
    return present.astype(np.int64) @ (1 << np.arange(len(MODALITIES)))


def random_subset(available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly drawn non-empty subset of the True entries of `available` (bool [3])."""
    indices = np.flatnonzero(available)
    chosen = np.zeros(len(MODALITIES), dtype=bool)
    if indices.size == 0:
        return chosen
    while not chosen.any():
        chosen[indices] = rng.random(indices.size) < 0.5
    return chosen


def random_presence(conversation: Conversation, drop_rate: float, rng: np.random.Generator) -> np.ndarray:
    """The random protocol's mask for one training conversation: bool [U, 3]."""
    present = conversation.present
    mask = present & random_subset(present.any(axis=0), rng)
    redraw = rng.random(len(conversation)) < drop_rate
    for row in np.flatnonzero(redraw):
        mask[row] = present[row] & random_subset(present[row], rng)
    return mask


# ------------------------------------------------------------------------------------------------
# Forward passes over conversations


def inverse_frequencies(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class weights inversely proportional to the classes' counts in `labels`, mean 1 over the
    classes present; 0 for a class absent."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / num_classes, 0.0)
    return weights / weights[counts > 0].mean()


def _loss(task: str, outputs: torch.Tensor, labels: torch.Tensor, use: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if not use.any():
        return outputs.sum() * 0.0  # keeps the graph; nothing to learn from this batch
    if task == "classification":
        return F.cross_entropy(outputs[use], labels[use].long(), weight=weights)
    return F.mse_loss(outputs[use].squeeze(-1), labels[use].float())


@torch.no_grad()
def predict(
    model: MoMKE,
    conversations: Sequence[Conversation],
    presence: Sequence[np.ndarray] | None = None,
    expert: str | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], outputs [N, C]) over every labelled utterance that has at least one modality
    present (under `presence`), in conversation order.

    presence: one bool [U, 3] per conversation restricting which modalities are seen (a
        condition); expert: score stage 1's unimodal path of that expert instead of the mixture.
    """
    model.eval()
    device = next(model.parameters()).device
    task, dims = model.config.task, model.config.feature_dims
    all_labels, all_outputs = [], []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        override = None if presence is None else presence[start : start + batch_size]
        batch = collate_conversations(chunk, dims, task, override).to(device)
        if expert is None:
            outputs = model(batch.features, batch.modality_mask, batch.utterance_mask).logits
        else:
            index = MODALITIES.index(expert)
            outputs = model.forward_unimodal(
                expert, batch.features[expert], batch.modality_mask[..., index], batch.utterance_mask
            )
        # As in training, an utterance with no modality left has no input to be scored on
        # (e.g. a text-only dialogue under the condition {a}).
        scored = batch.label_mask & batch.modality_mask.any(-1)
        all_labels.append(batch.labels[scored].cpu().numpy())
        all_outputs.append(outputs[scored].float().cpu().numpy())
    return np.concatenate(all_labels), np.concatenate(all_outputs)


# ------------------------------------------------------------------------------------------------
# Training


class Trainer:
    """MoMKE's two-stage training on feature conversations, one piece at a time: `fit()` runs it
    whole (what train_momke does); `train_epoch` with `stage1_step` / `stage2_step` and
    `optimizer()` run one epoch of a stage (what benchmarks/bench_training.py times)."""

    def __init__(
        self,
        train: Sequence[Conversation],
        valid: Sequence[Conversation],
        config: MoMKEConfig,
        settings: TrainingSettings,
    ) -> None:
        if not train:
            raise ValueError("no training dialogues")
        if not valid:
            raise ValueError("no validation dialogues: model selection needs a validation split")
        self.train, self.valid, self.config, self.settings = list(train), list(valid), config, settings
        self.device = pick_device(settings.device)
        self.dtype = training_dtype(settings.precision, self.device, config.hidden_dim)
        self.task = config.task
        self.metric = settings.metric_for(self.task)
        known = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        if self.metric not in known:
            raise ValueError(f"cannot select epochs on {self.metric!r} for {self.task}; choose one of {known}")
        self.rng = np.random.default_rng(settings.seed)
        random.seed(settings.seed)
        torch.manual_seed(settings.seed)
        self.model = MoMKE(config).to(self.device)
        self.class_weights = self._class_weights() if settings.class_weights else None
        # Per modality: the weights of that expert's and modality head's loss.
        self.modality_class_weights = {
            m: self._class_weights(m) if settings.class_weight_scope != "all" else self.class_weights
            for m in MODALITIES
        } if settings.class_weights else dict.fromkeys(MODALITIES)
        self.presence_class_weights = (
            self._presence_class_weights() if settings.class_weights and settings.class_weight_scope == "presence" else None)
        self.train_labels = np.concatenate([c.labels[c.labeled(self.task)] for c in self.train])
        if self.train_labels.size == 0:
            raise ValueError("the training dialogues have no labelled utterances")
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, dict[str, Any]] = {}
        # Validation masks are fixed once, so every epoch is judged on the same inputs.
        if settings.protocol == "fixed":
            self.valid_conditions = [settings.condition]
        else:
            # Every condition the training data can show (a corpus without video has no {v}).
            available = {m for i, m in enumerate(MODALITIES) if any(c.present[:, i].any() for c in self.train)}
            self.valid_conditions = [c for c in CONDITIONS if set(c) <= available]

    def _class_weights(self, modality: str | None = None) -> torch.Tensor | None:
        """Inverse class frequencies (mean 1 over the classes seen) over the labelled training
        utterances, or only over those that have `modality`; None when there are none."""
        if self.task != "classification":
            return None
        if modality is None:
            labels = np.concatenate([c.labels[c.labels >= 0] for c in self.train])
        else:
            index = MODALITIES.index(modality)
            labels = np.concatenate([c.labels[(c.labels >= 0) & c.present[:, index]] for c in self.train])
            if labels.size == 0:
                return None
        return torch.tensor(inverse_frequencies(labels, len(self.config.labels)), dtype=torch.float32, device=self.device)

    def _presence_class_weights(self) -> torch.Tensor | None:
        """[8, C]: row g = inverse class frequencies over the labelled training utterances whose
        modalities in the data have presence code g (presence_codes); the weights over all
        utterances where a code has none."""
        if self.task != "classification":
            return None
        table = self.class_weights.repeat(2 ** len(MODALITIES), 1)
        codes = np.concatenate([presence_codes(c.present)[c.labels >= 0] for c in self.train])
        labels = np.concatenate([c.labels[c.labels >= 0] for c in self.train])
        for code in np.unique(codes):
            table[code] = torch.tensor(inverse_frequencies(labels[codes == code], len(self.config.labels)), dtype=torch.float32)
        return table

    def training_presence(self, conversation: Conversation, stage: str) -> np.ndarray:
        """Which modalities each utterance of `conversation` shows in this stage's next batch (the
        protocol's draw); replace it on an instance to try another draw."""
        if self.settings.protocol == "fixed":
            return condition_presence(conversation, self.settings.condition)
        if stage == "stage1":
            # An expert reads only its own modality in stage 1, so hiding the others teaches
            # nothing: every expert sees all of its modality's data.
            return conversation.present
        return random_presence(conversation, self.settings.utterance_drop_rate, self.rng)

    def batch_indices(self) -> list[np.ndarray]:
        """Training dialogue indices, one array per batch, in a new random order every epoch.

        bucket_by_length: dialogues of similar length share a batch, so less of each batch is
        padding. Sorting happens within pools of BUCKET_POOL batches of a fresh shuffle, and the
        batches come in random order, so batches still change from epoch to epoch.
        """
        order = self.rng.permutation(len(self.train))
        size = self.settings.batch_size
        if self.settings.bucket_by_length:
            lengths = np.array([len(c) for c in self.train])
            pools = np.split(order, range(size * BUCKET_POOL, len(order), size * BUCKET_POOL))
            order = np.concatenate([pool[np.argsort(lengths[pool], kind="stable")] for pool in pools])
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        if self.settings.bucket_by_length:
            batches = [batches[i] for i in self.rng.permutation(len(batches))]
        return batches

    def _batches(self, stage: str):
        for indices in self.batch_indices():
            chunk = [self.train[i] for i in indices]
            presence = [self.training_presence(c, stage) for c in chunk]
            batch = collate_conversations(chunk, self.config.feature_dims, self.task, presence).to(self.device)
            if self.presence_class_weights is not None:
                # The data's own presence (the protocol's draw hides some of it in the batch).
                codes = np.zeros(batch.labels.shape, dtype=np.int64)
                for row, conversation in enumerate(chunk):
                    codes[row, : len(conversation)] = presence_codes(conversation.present)
                batch.presence_code = torch.from_numpy(codes).to(self.device)
            yield batch

    # -- stage 1 -------------------------------------------------------------------------------

    def stage1_experts(self) -> list[str]:
        experts = [k for k in self.config.experts if any(c.present[:, MODALITIES.index(k)].any() for c in self.train)]
        if self.settings.protocol == "fixed":
            experts = [k for k in experts if k in self.settings.condition]
        return experts

    def stage1_step(self, batch, experts: list[str]) -> torch.Tensor:
        total = 0.0
        for expert in experts:
            index = MODALITIES.index(expert)
            present = batch.modality_mask[..., index]
            outputs = self.model.forward_unimodal(expert, batch.features[expert], present, batch.utterance_mask)
            total = total + _loss(self.task, outputs, batch.labels, batch.label_mask & present,
                                  self.modality_class_weights[expert])
        return total

    def constant_score(self, labels: np.ndarray) -> float:
        """The selection metric of a constant predictor (see constant_outputs) on these labels."""
        outputs = constant_outputs(self.task, self.train_labels, len(labels), len(self.config.labels))
        return score(self.task, labels, outputs)[self.metric]

    def stage1_validation(self, experts: list[str]) -> dict[str, Any]:
        """Mean over experts of each expert's unimodal metric on its own modality, and the same
        mean for a constant predictor; "per_expert": each expert's own (metric, constant, scored)."""
        per_expert = {}
        for expert in experts:
            presence = [condition_presence(c, (expert,)) for c in self.valid]
            labels, outputs = predict(self.model, self.valid, presence, expert=expert)
            per_expert[expert] = {self.metric: score(self.task, labels, outputs)[self.metric],
                                  "constant": self.constant_score(labels), "scored": len(labels)}
        values = [v[self.metric] for v in per_expert.values()]
        return {self.metric: float(np.mean(values)),
                "constant": float(np.mean([v["constant"] for v in per_expert.values()])),
                "scored": int(min(v["scored"] for v in per_expert.values())), "per_expert": per_expert}

    # -- stage 2 -------------------------------------------------------------------------------

    def stage2_step(self, batch) -> torch.Tensor:
        output = self.model(batch.features, batch.modality_mask, batch.utterance_mask)
        # An utterance with no modality left carries nothing to learn from.
        use = batch.label_mask & batch.modality_mask.any(-1)
        if self.presence_class_weights is not None and use.any():
            labels = batch.labels[use].long()
            weights = self.presence_class_weights[batch.presence_code[use], labels]
            # The weighted mean, as cross_entropy(weight=) takes it, with a weight per utterance.
            loss = (F.cross_entropy(output.logits[use], labels, reduction="none") * weights).sum() / weights.sum()
        else:
            loss = _loss(self.task, output.logits, batch.labels, use, self.class_weights)
        if self.settings.unimodal_loss_weight > 0:
            # Stage 2 moves the experts; training each modality's own head alongside keeps the
            # per-modality predictions (shown live beside the fused one) true to the experts.
            for index, modality in enumerate(MODALITIES):
                if modality in self.model.unimodal_heads:
                    present = use & output.modality_mask[..., index]
                    loss = loss + self.settings.unimodal_loss_weight * _loss(
                        self.task, output.modality_logits[:, :, index], batch.labels, present,
                        self.modality_class_weights[modality])
        return loss

    def stage2_validation(self) -> dict[str, float]:
        """The selection metric averaged over the validation conditions."""
        per_condition, constants, counts = {}, [], []
        for condition in self.valid_conditions:
            presence = [condition_presence(c, condition) for c in self.valid]
            labels, outputs = predict(self.model, self.valid, presence)
            per_condition[condition_name(condition)] = score(self.task, labels, outputs)[self.metric]
            if not np.isnan(per_condition[condition_name(condition)]):
                constants.append(self.constant_score(labels))
                counts.append(len(labels))
        values = [v for v in per_condition.values() if not np.isnan(v)]
        return {self.metric: float(np.mean(values)) if values else float("nan"),
                "constant": float(np.mean(constants)) if constants else float("nan"),
                "scored": int(min(counts, default=0)), "per_condition": per_condition}

    # -- loop ----------------------------------------------------------------------------------

    def train_epoch(
        self, stage: str, step, optimizer: torch.optim.Optimizer | FusedAdam, average: WeightAverage | None = None
    ) -> list[float]:
        """One pass over the training dialogues; returns each batch's loss."""
        self.model.train()
        losses = []
        for batch in self._batches(stage):
            optimizer.zero_grad()
            with autocast(self.device, self.dtype):  # the forward only: backward follows its dtypes
                loss = step(batch)
            if loss.requires_grad:  # False when no expert had a present utterance in this batch
                loss.backward()
                optimizer.step()
                if average is not None:
                    average.update()
            losses.append(float(loss.detach()))
        return losses

    def optimizer(self) -> torch.optim.Optimizer | FusedAdam:
        """Adam, fused: one kernel for every parameter; on CPU a step costs 6 ms instead of 48 ms
        at the paper's size (the same update, to rounding). On CPU through FusedAdam (the same
        kernel without torch.optim, whose first use imports torch._dynamo: 0.8 s of CPU)."""
        if self.device.type == "cpu":
            return FusedAdam(self.model.parameters(), lr=self.settings.learning_rate,
                             weight_decay=self.settings.weight_decay)
        return torch.optim.Adam(
            self.model.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay,
            fused=self.device.type == "cuda",
        )

    def run_stage(self, stage: str, epochs: int, step, validate) -> None:
        optimizer = self.optimizer()
        decay = self.settings.weight_average
        average = None if decay is None else WeightAverage(self.model, decay)  # per stage: stage 2 starts from stage 1's kept weights
        best_value, best_state, stale = None, None, 0
        learnt = False  # patience counts only once the model beats the constant predictor
        bar = tqdm(range(1, epochs + 1), desc=stage, disable=not self.settings.progress, leave=False)
        for epoch in bar:
            losses = self.train_epoch(stage, step, optimizer, average)
            if average is not None:
                average.swap()  # validate (and keep) the averaged weights
            validation = validate()
            value = validation[self.metric]
            self.history.append(
                {"stage": stage, "epoch": epoch, "train_loss": float(np.mean(losses)), "valid": validation}
            )
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", **{f"valid_{self.metric}": f"{value:.4f}"})
            learnt = learnt or beats_constant(self.metric, value, validation["constant"], validation["scored"])
            if best_state is None or is_better(self.metric, value, best_value):
                best_value, stale = value, 0
                best_state = copy.deepcopy(self.model.state_dict())
                self.best[stage] = {"epoch": epoch, "valid": validation}
            elif learnt:
                stale += 1
            if average is not None:
                average.swap()  # training goes on from its own weights
            if stale and self.settings.patience is not None and stale >= self.settings.patience:
                break
        bar.close()
        self.model.load_state_dict(best_state)

    def expert_parameters(self, expert: str) -> list[str]:
        """The state_dict keys stage 1 trains for `expert`: its modality's projection, the expert
        and its own head (nothing else takes part in forward_unimodal)."""
        prefixes = (f"projections.{expert}.", f"experts.{expert}.", f"unimodal_heads.{expert}.")
        return [k for k in self.model.state_dict() if k.startswith(prefixes)]

    def run_stage1_per_expert(self, experts: list[str]) -> None:
        """Stage 1 trained as one (the experts' losses summed, one optimizer), but each expert's
        weights are kept from its own best validation epoch on its own modality, and patience
        runs out only once every expert has had `patience` epochs without improvement: an expert
        that learns slower (a small corpus beside a large one) is not cut off at the others'
        best epoch."""
        optimizer = self.optimizer()
        decay = self.settings.weight_average
        average = None if decay is None else WeightAverage(self.model, decay)
        keys = {expert: self.expert_parameters(expert) for expert in experts}
        kept: dict[str, dict[str, Any]] = {}  # expert -> epoch, value, validation, state
        stale = dict.fromkeys(experts, 0)
        learnt = dict.fromkeys(experts, False)
        step = lambda batch: self.stage1_step(batch, experts)
        bar = tqdm(range(1, self.settings.stage1_epochs + 1), desc="stage1", disable=not self.settings.progress, leave=False)
        for epoch in bar:
            losses = self.train_epoch("stage1", step, optimizer, average)
            if average is not None:
                average.swap()
            validation = self.stage1_validation(experts)
            self.history.append(
                {"stage": "stage1", "epoch": epoch, "train_loss": float(np.mean(losses)), "valid": validation}
            )
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", **{f"valid_{self.metric}": f"{validation[self.metric]:.4f}"})
            state = self.model.state_dict()
            for expert, own in validation["per_expert"].items():
                value = own[self.metric]
                learnt[expert] = learnt[expert] or beats_constant(self.metric, value, own["constant"], own["scored"])
                if expert not in kept or is_better(self.metric, value, kept[expert]["value"]):
                    kept[expert] = {"epoch": epoch, "value": value, "valid": own,
                                    "state": {k: state[k].detach().clone() for k in keys[expert]}}
                    stale[expert] = 0
                elif learnt[expert]:
                    stale[expert] += 1
            if average is not None:
                average.swap()
            patience = self.settings.patience
            if patience is not None and all(stale[e] >= patience for e in experts):
                break
        bar.close()
        state = self.model.state_dict()
        for expert in experts:
            state.update(kept[expert]["state"])
        self.model.load_state_dict(state)
        # The kept model's own stage-1 figures (its experts come from different epochs).
        validation = self.stage1_validation(experts)
        self.best["stage1"] = {"epoch": max(k["epoch"] for k in kept.values()),
                               "expert_epochs": {e: kept[e]["epoch"] for e in experts}, "valid": validation}

    def fit(self) -> MoMKE:
        experts = self.stage1_experts()
        if not self.settings.skip_stage1 and self.settings.stage1_epochs > 0 and experts:
            if self.settings.stage1_selection == "per-expert":
                self.run_stage1_per_expert(experts)
            else:
                self.run_stage(
                    "stage1", self.settings.stage1_epochs,
                    lambda batch: self.stage1_step(batch, experts), lambda: self.stage1_validation(experts),
                )
        self.run_stage("stage2", self.settings.stage2_epochs, self.stage2_step, self.stage2_validation)
        self.model.eval()
        return self.model


class WeightAverage:
    """An exponential moving average of a model's parameters, updated after each optimizer step.

    Why: at the learning rates small corpora need (1e-3), the weights of the last step carry
    that step's noise, so which epoch validation keeps, and how well it does on new speakers,
    varies from seed to seed; the average of the recent steps moves more steadily (Polyak
    averaging). The decay starts low, (1 + t) / (10 + t) at step t up to `decay`, so the
    average is not pinned to the weights the stage started from.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.parameters]
        self.decay, self.steps = decay, 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for parameter, average in zip(self.parameters, self.average):
            average.lerp_(parameter, 1.0 - decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights and the average (call twice to go back)."""
        for parameter, average in zip(self.parameters, self.average):
            held = parameter.detach().clone()
            parameter.copy_(average)
            average.copy_(held)


def train_momke(
    train: Sequence[Conversation],
    valid: Sequence[Conversation],
    config: MoMKEConfig,
    settings: TrainingSettings | None = None,
) -> TrainingResult:
    """Train MoMKE on `train`, selecting epochs on `valid`. Returns the selected model."""
    settings = settings or TrainingSettings()
    trainer = Trainer(train, valid, config, settings)
    model = trainer.fit()
    return TrainingResult(
        model=model,
        config=config,
        settings=settings,
        history=trainer.history,
        best=trainer.best,
        num_train_dialogues=len(train),
        num_valid_dialogues=len(valid),
        precision=str(trainer.dtype).removeprefix("torch."),
    )


def train_on_corpus(
    corpus: FeatureCorpus, settings: TrainingSettings | None = None, **model_overrides: Any
) -> TrainingResult:
    """Split the corpus (train / valid or carved valid; test untouched) and train."""
    settings = settings or TrainingSettings()
    train, valid, _ = split_for_training(corpus, settings.valid_fraction, settings.seed)
    return train_momke(train, valid, model_config_for(corpus.metadata, **model_overrides), settings)
