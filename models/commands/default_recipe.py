"""The recipe of the default checkpoint: MoMKE trained from corpora that each carry one modality.

    python -m momke.models.commands.default_recipe --out assets/checkpoints/momke-whisper-4class   # the shipped checkpoint
    python -m momke.models.commands.default_recipe --limit 4 --out /tmp/tiny --stage1-epochs 1 --stage2-epochs 1

Everything that shapes the run is in the recipe file (models/commands/recipes/whisper_4class.json):
label mapping, splits, pseudo-dialogues, augmentation, label-matched conversations, text chains,
model size, epochs. Sources and what they give:

- Emotional speech (audio only): RAVDESS (English), nEMO (Polish) and the Korean emotional TTS
  sample, each clip served as the live app serves it (models/commands/speech_corpora.py: the
  live segmenter's cut, never the whole studio file), training clips also as augmented variants
  (other rooms, microphones, noise, levels). One speaker's clips are shuffled into
  pseudo-dialogues (one voice over time, as live, so the causal context sees earlier clips of
  the same voice), training speakers several times with new shuffles. Split by speaker.
- MELD and EmoryNLP (text only): real dialogues in their order; utterances whose emotion is not
  one of the four classes stay as unlabeled context. Their own train/dev/test splits.
  A recipe may add DailyDialog (everyday talk; train/valid) through its `label_maps`, write every
  line as the live speech-to-text writes it (`text_style: "whisper"`) and add a noisy copy of
  each text source (`text_noise`: corpora key "<source>+asr", models/training/asr_text.py), as
  recipes/whisper_4class_conversation.json does.
- FER2013 (visual only): one face = one pseudo-utterance, random faces grouped into
  pseudo-dialogues. Training faces are sampled class-balanced from the train images; a seeded
  half of public_test validates (the mini-Xception learnt the train faces), the other half tests.

Features are extracted once into a cache folder (default ~/.cache/momke/recipe, or --cache):
per-utterance vectors through `momke extract`'s cache, per-corpus feature corpora beside it.
Stage 1 trains each expert on its own modality's corpus; stage 2 mixes on all of them plus
label-matched tri-modal pseudo-conversations (models/training/label_matched.py; MELD/EmoryNLP dialogues
chained back to back up to the context limit) with the random protocol and causal context, each
modality's own head trained alongside; temperatures are then fitted on validation for every
path and condition (models/calibration.py) and stored in the checkpoint. Class imbalance:
inverse-frequency class weights in the cross-entropy, on top of the balanced FER sample (with
`"class_weighting": "inverse-frequency-per-modality"`, each expert's and modality head's from
its own modality's utterances; `"stage1_selection": "per-expert"` keeps each expert's own best
stage-1 epoch). The
whole training runs once per seed of the recipe's `ensemble_seeds`; the
models are kept as one ensemble (models/ensemble.py), calibrated as one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibration import fit_temperature
from ..checkpoint import DEFAULT_CHECKPOINT, save_checkpoint
from ..config import MODALITIES
from ..ensemble import MoMKEEnsemble
from ..momke import MoMKE
from ..training.data import Conversation, CorpusMetadata, CorpusWriter, FeatureCorpus, load_corpus
from ..training.evaluation import evaluate_conditions
from ..training.label_matched import build_pools, label_matched_conversations
from ..training.precision import PRECISIONS
from ..training.trainer import (
    CONDITIONS,
    TrainingResult,
    TrainingSettings,
    condition_name,
    condition_presence,
    model_config_for,
    predict,
    train_momke,
)

RECIPES = Path(__file__).resolve().parent / "recipes"
DEFAULT_RECIPE = RECIPES / "whisper_4class.json"
# The default recipe with the text path also trained on DailyDialog, Whisper-style lines and a
# transcription-like noisy copy (issue 19); a candidate, not the shipped checkpoint's recipe.
CONVERSATION_RECIPE = RECIPES / "whisper_4class_conversation.json"
DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
TEXT_SOURCES = ("meld", "emorynlp", "dailydialog")
# A recipe's "class_weighting" -> TrainingSettings.class_weight_scope ("none": no weights at all).
CLASS_WEIGHTING_SCOPES = {"none": "all", "inverse-frequency": "all", "inverse-frequency-per-modality": "modality",
                         "inverse-frequency-per-presence": "presence"}
SOURCE_MODALITY = {"ravdess": "audio", "nemo": "audio", "kor_emotiontts": "audio", "meld": "text", "emorynlp": "text",
                   "dailydialog": "text", "fer2013": "visual", "iemocap": "text"}
NOISY = "+asr"  # corpora key suffix of a text source's transcription-like noisy copy ("meld+asr")
FER_FILE = "fer2013_48x48.npz"
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}


def source_modality(source: str) -> str:
    """The modality of a corpora key (a noisy copy "meld+asr" is its source's)."""
    return SOURCE_MODALITY[source.removesuffix(NOISY)]


def text_keys(corpora: dict) -> list[str]:
    """The corpora keys that hold text: each text source and its noisy copy, in recipe order."""
    return [k for source in TEXT_SOURCES for k in (source, source + NOISY) if k in corpora]


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "momke" / "recipe"


def load_recipe(path: str | Path = DEFAULT_RECIPE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recipe file {path} not found")
    recipe = json.loads(path.read_text(encoding="utf-8"))
    missing = {"labels", "label_maps", "splits", "pseudo_dialogues", "model", "training"} - set(recipe)
    if missing:
        raise ValueError(f"recipe {path} lacks {sorted(missing)}")
    weighting = recipe["training"].get("class_weighting")
    if weighting not in CLASS_WEIGHTING_SCOPES:
        raise ValueError(f"recipe {path}: training.class_weighting must be one of {sorted(CLASS_WEIGHTING_SCOPES)}, got {weighting!r}")
    for source, mapping in recipe["label_maps"].items():
        unknown = set(mapping.values()) - set(recipe["labels"])
        if unknown:
            raise ValueError(f"recipe {path}: label map of {source} targets unknown classes {sorted(unknown)}")
    return recipe



def recipe_of(config) -> dict[str, Any]:
    """The recipe a checkpoint was trained with (its metadata names the file; the default otherwise)."""
    return load_recipe(RECIPES / config.metadata.get("recipe_file", DEFAULT_RECIPE.name))

# ------------------------------------------------------------------------------------------------
# Sources -> dialogues of utterance sources (no features yet)


def chunk(items: Sequence, size: int) -> list[list]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def speech_sources(recipe: dict[str, Any]) -> list[str]:
    """The recipe's emotional-speech corpora (the voice path's training data), in order."""
    return list(recipe["speech_corpora"])


def build_speech_corpus(source: str, data_dir: Path, recipe: dict[str, Any], profile, cache_dir: Path,
                        limit: int | None, progress: bool) -> FeatureCorpus:
    """One speech corpus served as the app serves it (models/commands/speech_corpora.py)."""
    from .extract_corpus import FeatureCache, profile_key
    from .speech_corpora import AUGMENT_VERSION, ServedVoice, read_clips, speech_corpus

    settings, grouping = recipe["speech_corpora"][source], recipe["pseudo_dialogues"]["speech"]
    clips = read_clips(source, data_dir / settings["folder"], settings, recipe["label_maps"][source])
    if limit is not None:  # a quick run: `limit` speakers of each split, two clips of each class
        kept, taken = [], {}
        for clip in clips:
            speakers = taken.setdefault(clip.split, {})
            if clip.speaker in speakers or len(speakers) < limit:
                per_class = speakers.setdefault(clip.speaker, {})
                if per_class.get(clip.label, 0) < 2:
                    per_class[clip.label] = per_class.get(clip.label, 0) + 1
                    kept.append(clip)
        clips = kept
    key = profile_key(profile)
    voice = ServedVoice(profile.extractor("audio"), FeatureCache(cache_dir / "utterances", key), seed=grouping.get("seed", 0))
    # Named by the profile, the split and grouping settings and the serving options: another
    # cache is never reused.
    described = json.dumps([settings, grouping, voice.options.to_dict(), AUGMENT_VERSION, limit], sort_keys=True)
    out = cache_dir / "corpora" / f"{source}-{key}-{hashlib.sha1(described.encode()).hexdigest()[:8]}"
    metadata = CorpusMetadata(profile.name, profile.dims, tuple(recipe["labels"]), "classification",
                              f"{source} speech served as the app serves it, default-checkpoint recipe", {"source": source})
    return speech_corpus(source, clips, voice, grouping, recipe["labels"], out, metadata, progress)


def text_dialogues(source: str, folder: Path, recipe: dict[str, Any]) -> list:
    """MELD / EmoryNLP / DailyDialog dialogues with the recipe's label map (other emotions stay as
    context), every line written the way the live speech-to-text writes it (`whisper_style`)
    when the recipe's `text_style` is "whisper"."""
    from ..training.asr_text import whisper_style
    from .corpus_readers import map_labels, read_corpus

    # map_labels matches source labels case-insensitively, keys in lower case (EmoryNLP says "Joyful").
    mapping = {k.lower(): v for k, v in recipe["label_maps"][source].items()}
    dialogues = map_labels(read_corpus(folder, source), mapping)
    if recipe.get("text_style") == "whisper":
        dialogues = [replace(d, utterances=[replace(u, transcript=whisper_style(u.transcript or "")) for u in d.utterances])
                     for d in dialogues]
    return [replace(d, id=f"{source}-{d.id}") for d in dialogues]


def noisy_dialogues(dialogues: Sequence, settings: dict[str, Any], splits: Sequence[str]) -> list:
    """A transcription-like noisy copy of the dialogues of `splits` (models/training/asr_text.py):
    per utterance a word error rate drawn around settings["wer_mean"], the same copy for the same
    settings (seeded by the settings' seed and the dialogue id). Of the training dialogues, only a
    `train_fraction` (chosen by the id's hash) get a copy. Ids get the NOISY suffix."""
    from ..training.asr_text import asr_noise, utterance_wers

    out = []
    for d in dialogues:
        digest = int(hashlib.sha1(d.id.encode()).hexdigest()[:8], 16)
        if d.split not in splits or (d.split == "train" and digest / 2**32 >= settings.get("train_fraction", 1.0)):
            continue
        rng = np.random.default_rng([settings.get("seed", 0), digest])
        rates = utterance_wers(len(d.utterances), rng, settings["wer_mean"], settings.get("concentration", 4.0))
        utterances = [replace(u, id=u.id + NOISY, transcript=asr_noise(u.transcript, rng, float(r)) if u.transcript else u.transcript)
                      for u, r in zip(d.utterances, rates)]
        out.append(replace(d, id=d.id + NOISY, utterances=utterances))
    return out


# ------------------------------------------------------------------------------------------------
# Feature corpora (cached)


def extract_source(
    source: str, dialogues: list, profile, cache_dir: Path, labels: Sequence[str], progress: bool, name: str | None = None
) -> FeatureCorpus:
    """Extract one media source's modality into cache_dir/corpora/<name> (resumes if there)."""
    from .extract_corpus import FeatureCache, extract_corpus, profile_key

    # Named by the profile's key too: a corpus cached with another profile is never mixed in.
    out = cache_dir / "corpora" / f"{name or source}-{profile_key(profile)}"
    extract_corpus(
        dialogues, profile, out, modalities=[SOURCE_MODALITY[source]], labels=list(labels),
        cache=FeatureCache(cache_dir / "utterances", profile_key(profile)),
        description=f"{source}, default-checkpoint recipe", extra={"source": source}, progress=progress,
    )
    wanted = {d.id for d in dialogues}
    corpus = load_corpus(out)
    return corpus.subset(c for c in corpus.conversations if c.dialogue_id in wanted)


def fer_splits(arrays, recipe: dict[str, Any]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """The recipe's FER2013 faces of the four classes: (split, source part, rows, label indices)
    for train (a class-balanced sample of the train images), valid and test (the two halves of
    the public test). The one place this split is drawn: the recipe and the benchmarks use it."""
    labels = list(recipe["labels"])
    mapping = recipe["label_maps"]["fer2013"]
    split_cfg = recipe["splits"]["fer2013"]
    # One seeded generator for every draw, in this order: train shuffle, train sample, public-test
    # shuffle. Changing train_per_class therefore changes which public-test faces validate: a
    # checkpoint and its benchmark figures must come from the same recipe settings.
    rng = np.random.default_rng(recipe["pseudo_dialogues"]["seed"])
    parts: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for part in ("train", "public_test"):
        names = [FER_CLASSES[i] for i in arrays[f"{part}_labels"]]
        index = np.array([labels.index(mapping[n]) if n in mapping else -1 for n in names])
        keep = np.flatnonzero(index >= 0)
        # Shuffled, test included: the file is sorted by class, so pseudo-dialogues in file order
        # would mostly hold one class and the causal context would leak the label.
        keep = keep[rng.permutation(len(keep))]
        if part == "public_test":
            n_valid = round(split_cfg["valid_fraction_of_public_test"] * len(keep))
            parts += [("valid", part, keep[:n_valid], index[keep[:n_valid]]),
                      ("test", part, keep[n_valid:], index[keep[n_valid:]])]
            continue
        per_class = split_cfg.get("train_per_class")
        if per_class:  # class-balanced training sample
            keep = np.concatenate([keep[index[keep] == c][:per_class] for c in range(len(labels))])
            keep = keep[rng.permutation(len(keep))]
        parts.append(("train", part, keep, index[keep]))
    return parts


def fer_corpus(path: Path, recipe: dict[str, Any], profile, cache_dir: Path, limit: int | None = None) -> FeatureCorpus:
    """FER2013 faces of the four classes as pseudo-dialogues of single faces (visual only).

    Validation faces come from the public test, never from train: the mini-Xception that makes
    the visual features was trained on the train faces, so on them it is right far more often
    (81 % vs 73 % on 4 classes) and temperatures fitted there would be overconfident on new faces.
    A seeded `valid_fraction_of_public_test` of the public test validates; the rest tests."""
    labels = list(recipe["labels"])
    grouping, split_cfg = recipe["pseudo_dialogues"], recipe["splits"]["fer2013"]
    size = grouping["fer2013_faces_per_dialogue"]
    # Named by the profile's visual features and the split settings: another cache is never reused.
    settings = hashlib.sha1(json.dumps([split_cfg, size, grouping["seed"]], sort_keys=True).encode()).hexdigest()[:8]
    name = f"fer2013-{profile.name}-{profile.dims[2]}d-{settings}"
    out = cache_dir / "corpora" / (name if limit is None else f"{name}-limit{limit}")
    metadata = CorpusMetadata(profile.name, profile.dims, tuple(labels), "classification",
                              "FER2013 faces, default-checkpoint recipe", {"source": "fer2013"})
    writer = CorpusWriter(out, metadata)
    if writer.dialogue_ids:  # already extracted
        return load_corpus(out)
    arrays = np.load(path, allow_pickle=False)
    parts = fer_splits(arrays, recipe)
    visual = profile.extractor("visual")
    for split, source, rows, label_index in parts:
        if limit is not None:
            rows, label_index = rows[: limit * size], label_index[: limit * size]
        images, names = arrays[f"{source}_images"][rows], arrays[f"{source}_names"][rows]
        features = visual.features_from_faces(images)
        for k, group in enumerate(chunk(range(len(rows)), size)):
            writer.write(Conversation(
                dialogue_id=f"fer2013-{split}-{k}", utterance_ids=[str(names[i]) for i in group],
                speakers=[""] * len(group), features={"visual": features[group]},
                present=np.tile([False, False, True], (len(group), 1)), labels=label_index[group].astype(np.int64),
                split=split,
            ))
    return load_corpus(out)


def build_corpora(
    recipe: dict[str, Any], data_dir: Path = DATA_DIR, cache_dir: Path | None = None,
    limit: int | None = None, progress: bool = True, device: str | None = None,
) -> dict[str, FeatureCorpus]:
    """{source: feature corpus}: the speech corpora, MELD, EmoryNLP and FER2013; limit = first N
    dialogues of each split (tests)."""
    from ...extractors.profiles import feature_source, load_profile

    cache_dir = Path(cache_dir or default_cache_dir())
    profile = load_profile(recipe["feature_profile"], device=device)
    # A profile that shares its voice / face features with another reads (and fills) that one's cache.
    voice, faces = (profile if feature_source(profile.name, m) == profile.name
                    else load_profile(feature_source(profile.name, m), device=device) for m in ("audio", "visual"))
    labels = recipe["labels"]
    paths = {source: data_dir / settings["folder"] for source, settings in recipe["speech_corpora"].items()}
    paths.update({source: data_dir / source for source in TEXT_SOURCES if source in recipe["label_maps"]})
    paths["fer2013"] = data_dir / FER_FILE
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise ValueError(f"recipe data not found: {missing} (set --data to the folder of the shared corpora)")
    corpora = {source: build_speech_corpus(source, data_dir, recipe, voice, cache_dir, limit, progress)
               for source in speech_sources(recipe)}
    noise = recipe.get("text_noise")
    for source in (s for s in TEXT_SOURCES if s in paths):
        dialogues = text_dialogues(source, paths[source], recipe)
        if limit is not None:
            dialogues = [d for split in ("train", "valid", "test") for d in [x for x in dialogues if x.split == split][:limit]]
        # Named by the text style: lines written otherwise have other features.
        name = source if recipe.get("text_style") is None else f"{source}-{recipe['text_style']}style"
        name = name if limit is None else f"{name}-limit{limit}"
        corpora[source] = extract_source(source, dialogues, profile, cache_dir, labels, progress, name)
        if noise:
            noisy = noisy_dialogues(dialogues, noise, noise["splits"])
            described = hashlib.sha1(json.dumps(noise, sort_keys=True).encode()).hexdigest()[:8]
            corpora[source + NOISY] = extract_source(source, noisy, profile, cache_dir, labels, progress, f"{name}-asr{described}")
    corpora["fer2013"] = fer_corpus(paths["fer2013"], recipe, faces, cache_dir, limit)
    return corpora


def mixed_splits(corpora: dict[str, FeatureCorpus]) -> dict[str, list[Conversation]]:
    """Train / valid / test conversations of all sources together."""
    return {split: [c for corpus in corpora.values() for c in corpus.split(split)] for split in ("train", "valid", "test")}


# ------------------------------------------------------------------------------------------------
# Training and per-source metrics


def feature_statistics(conversations: Sequence[Conversation], floor: float = 1e-2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{modality: (mean, std)} over the utterances where the modality is present (std floored)."""
    stats = {}
    for index, modality in enumerate(MODALITIES):
        rows = [c.features[modality][c.present[:, index]] for c in conversations if modality in c.features]
        rows = [r for r in rows if len(r)]
        if rows:
            x = np.concatenate(rows).astype(np.float64)
            stats[modality] = (x.mean(axis=0), np.maximum(x.std(axis=0), floor))
    return stats


def standardized(conversations: Sequence[Conversation], stats: dict) -> list[Conversation]:
    """Copies with present features z-scored by `stats` (missing rows stay zero)."""
    out = []
    for c in conversations:
        features = {}
        for index, (modality, x) in ((MODALITIES.index(m), (m, x)) for m, x in c.features.items()):
            mean, std = stats[modality]
            features[modality] = np.where(c.present[:, index, None], (x - mean) / std, 0.0).astype(np.float32)
        out.append(replace(c, features=features))
    return out


@torch.no_grad()
def fold_standardization(model, stats: dict) -> None:
    """Make a model trained on z-scored features read raw ones: every layer that reads x^m (the
    projection W^m and the Soft Router's first layer) is linear, so W (x - mean) / std + b
    = (W / std) x + (b - W mean / std) exactly. The checkpoint then needs no extra state."""
    for modality, (mean, std) in stats.items():
        for layer in (model.projections[modality], model.routers[modality].mlp[0]):
            weight = layer.weight / torch.as_tensor(std, dtype=layer.weight.dtype, device=layer.weight.device)
            layer.bias -= weight @ torch.as_tensor(mean, dtype=weight.dtype, device=weight.device)
            layer.weight.copy_(weight)


def matched_conversations(recipe: dict[str, Any], corpora: dict[str, FeatureCorpus], split: str) -> list[Conversation]:
    """Label-matched tri-modal pseudo-conversations of one split (models/training/label_matched.py);
    empty when the recipe has no `label_matched` section."""
    settings = recipe.get("label_matched")
    if not settings:
        return []
    pools = build_pools([c for s in speech_sources(recipe) for c in corpora[s].split(split)],
                        [c for s in text_keys(corpora) for c in corpora[s].split(split)],
                        corpora["fer2013"].split(split))
    training = split == "train"
    return label_matched_conversations(
        pools, len(recipe["labels"]), settings["conversations_per_speaker"][split], tuple(settings["length_range"]),
        settings["conflict_rate"] if training else 0.0, seed=[settings["seed"], SPLIT_SEEDS[split]], split=split,
    )


def chained(conversations: Sequence[Conversation], max_length: int, seed: int) -> list[Conversation]:
    """Dialogues back to back, in a seeded random order, as conversations of at most max_length
    utterances (a dialogue longer than that stays alone). A long live session moves from topic to
    topic; trained only on single dialogues, the text path read unrelated earlier lines as context
    for the current one and lost 6 points on the same test lines after 84 others."""
    order = np.random.default_rng(seed).permutation(len(conversations))
    groups: list[list[Conversation]] = [[]]
    for index in order:
        conversation = conversations[index]
        if groups[-1] and sum(len(c) for c in groups[-1]) + len(conversation) > max_length:
            groups.append([])
        groups[-1].append(conversation)
    out = []
    for k, group in enumerate(g for g in groups if g):
        if len(group) == 1:
            out.append(group[0])
            continue
        shared = [m for m in MODALITIES if all(m in c.features for c in group)]
        if any(c.present[:, MODALITIES.index(m)].any() for c in group for m in c.features if m not in shared):
            raise ValueError("chained conversations must carry the same modalities")
        features = {m: np.concatenate([c.features[m] for c in group]) for m in shared}
        out.append(Conversation(
            f"chain-{group[0].split}-{k}", [u for c in group for u in c.utterance_ids], [s for c in group for s in c.speakers],
            features, np.concatenate([c.present for c in group]), np.concatenate([c.labels for c in group]), group[0].split,
        ))
    return out


def calibrate(model, valid: Sequence[Conversation]) -> dict[str, dict[str, float]]:
    """Temperatures fitted on validation (models/calibration.py): each modality's own path on
    the utterances where it is present, and the fused output under every condition."""
    temperatures: dict[str, dict[str, float]] = {"modalities": {}, "fused": {}}
    for modality in model.config.experts:
        labels, logits = predict(model, valid, [condition_presence(c, (modality,)) for c in valid], expert=modality)
        if len(labels):
            temperatures["modalities"][modality] = round(fit_temperature(logits, labels), 4)
    for condition in CONDITIONS:
        labels, logits = predict(model, valid, [condition_presence(c, condition) for c in valid])
        if len(labels):
            temperatures["fused"][condition_name(condition)] = round(fit_temperature(logits, labels), 4)
    return temperatures


def train_recipe(
    recipe: dict[str, Any], corpora: dict[str, FeatureCorpus], **overrides: Any
) -> tuple[MoMKE | MoMKEEnsemble, list[TrainingResult]]:
    """Stage 1 + stage 2 on the unimodal corpora plus label-matched tri-modal conversations, once
    per seed of the recipe's `ensemble_seeds` (or its one `seed`), then calibration on validation;
    overrides replace recipe training settings. Returns the model (an ensemble when there are
    several seeds) and each seed's training result.

    Features are z-scored with the training data's statistics for training, then the
    statistics are folded into the model's input layers, so the result reads raw features."""
    some = next(iter(corpora.values())).metadata
    metadata = CorpusMetadata(recipe["feature_profile"], some.feature_dims, tuple(recipe["labels"]))
    config = model_config_for(metadata, **recipe["model"])
    training = {**recipe["training"], **overrides}
    settings = TrainingSettings(
        protocol=training["protocol"], stage1_epochs=training["stage1_epochs"], stage2_epochs=training["stage2_epochs"],
        patience=training["patience"], learning_rate=training["learning_rate"], batch_size=training["batch_size"],
        class_weights=training["class_weighting"] != "none", seed=training["seed"],
        class_weight_scope=CLASS_WEIGHTING_SCOPES[training["class_weighting"]],
        stage1_selection=training.get("stage1_selection", "joint"),
        utterance_drop_rate=training.get("utterance_drop_rate", 0.3), selection_metric=training.get("selection_metric"),
        unimodal_loss_weight=training.get("unimodal_loss_weight", 0.0),
        weight_average=training.get("weight_average"),
        precision=training.get("precision", "auto"),
        progress=training.get("progress", True),
    )
    seeds = [training["seed"]] if "seed" in overrides else list(training.get("ensemble_seeds", [training["seed"]]))
    chains = recipe.get("text_chains")
    splits = {}
    for split in ("train", "valid"):
        text = [c for source in text_keys(corpora) for c in corpora[source].split(split)]
        if chains:
            text = chained(text, chains["max_length"], chains["seed"])
        others = [c for source in [*speech_sources(recipe), "fer2013"] for c in corpora[source].split(split)]
        splits[split] = others + text + matched_conversations(recipe, corpora, split)
    stats = feature_statistics(splits["train"]) if recipe.get("standardize", True) else None
    train = splits["train"] if stats is None else standardized(splits["train"], stats)
    valid = splits["valid"] if stats is None else standardized(splits["valid"], stats)
    results = []
    for seed in seeds:
        result = train_momke(train, valid, config, replace(settings, seed=seed))
        if stats is not None:
            _, before = predict(result.model, valid[:16])
            fold_standardization(result.model, stats)
            _, after = predict(result.model, splits["valid"][:16])
            if not np.allclose(before, after, atol=1e-3, rtol=1e-3):
                raise RuntimeError(f"folding the standardisation changed the outputs by {np.abs(before - after).max():.2e}")
        results.append(result)
    if len(results) == 1:
        model = results[0].model
    else:
        model = MoMKEEnsemble(replace(config, ensemble_size=len(results)), [r.model for r in results])
    model.config.calibration = calibrate(model, splits["valid"])
    return model.eval(), results


def source_metrics(model, corpora: dict[str, FeatureCorpus], split: str) -> dict[str, dict[str, float]]:
    """Each source on its own modality ({a} RAVDESS, {t} MELD / EmoryNLP, {v} FER2013)."""
    results = {}
    for source, corpus in corpora.items():
        conversations = [c for c in corpus.split(split) if (c.labels >= 0).any()]
        if conversations:
            condition = (source_modality(source),)
            results[source] = evaluate_conditions(model, conversations, [condition])[condition_name(condition)]
    return results


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    """--data and --cache, as the recipe and the benchmarks that read its corpora take them."""
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder of the shared corpora")
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="feature cache (default ~/.cache/momke/recipe)")


def parse_benchmark_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None, out: Path) -> argparse.Namespace | None:
    """A recipe benchmark's arguments: --recipe (the conversation recipe by default), --data,
    --cache and --out beside the parser's own; None (after saying so) when the corpora are absent.
    Sets one torch thread, as every recipe benchmark runs."""
    parser.add_argument("--recipe", type=Path, default=CONVERSATION_RECIPE, help="the recipe whose sets and noise are used")
    add_corpus_options(parser)
    parser.add_argument("--out", type=Path, default=out, help="results file stem (.txt and .json are written)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"SKIP: {args.data} not found (the shared corpora)")
        return None
    torch.set_num_threads(1)
    return args


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    add_corpus_options(parser)
    # Required: a run without --out must never overwrite the shipped checkpoint by accident.
    parser.add_argument("--out", type=Path, required=True,
                        help=f"checkpoint folder to write (the shipped one is {DEFAULT_CHECKPOINT})")
    parser.add_argument("--limit", type=int, help="only N dialogues per source and split (a quick end-to-end run)")
    parser.add_argument("--stage1-epochs", type=int)
    parser.add_argument("--stage2-epochs", type=int)
    parser.add_argument("--seed", type=int, help="train one model with this seed instead of the recipe's ensemble (data draws keep their seeds)")
    parser.add_argument("--weight-average", type=float, metavar="DECAY",
                        help="keep a moving average of the weights (the recipe's setting by default; 0 = the last weights)")
    parser.add_argument("--class-weighting", choices=sorted(CLASS_WEIGHTING_SCOPES),
                        help="the recipe's setting by default; -per-modality: each expert's weights from its own modality's utterances")
    parser.add_argument("--stage1-selection", choices=("joint", "per-expert"),
                        help="stage 1 keeps one epoch for all experts (joint) or each expert's own best (the recipe's setting by default)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="training's matmuls: the recipe's setting by default (auto: bfloat16 where the CPU or GPU has it "
                             "natively and the model is 192 or more wide)")
    parser.add_argument("--device")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        recipe = load_recipe(args.recipe)
        started = time.time()
        corpora = build_corpora(recipe, args.data, args.cache, args.limit, progress=not args.quiet, device=args.device)
        extracted = time.time()
        overrides = {k: v for k, v in (("stage1_epochs", args.stage1_epochs), ("stage2_epochs", args.stage2_epochs),
                                       ("seed", args.seed), ("weight_average", args.weight_average),
                                       ("class_weighting", args.class_weighting),
                                       ("stage1_selection", args.stage1_selection),
                                       ("precision", args.precision)) if v is not None}
        model, results = train_recipe(recipe, corpora, progress=not args.quiet, **overrides)
    except ValueError as error:
        print(f"default recipe: {error}", file=sys.stderr)
        return 2
    trained = time.time()
    valid = source_metrics(model, corpora, "valid")
    settings = results[0].settings
    counts = {s: {split: sum(int((c.labels >= 0).sum()) for c in corpus.split(split)) for split in ("train", "valid", "test")}
              for s, corpus in corpora.items()}
    metadata = {
        "recipe": recipe.get("name", args.recipe.stem),
        "recipe_file": str(args.recipe.name),
        "protocol": settings.protocol,
        "context_mode": model.config.context_mode,
        "training": {**settings.to_dict(), "seed": [r.settings.seed for r in results] if len(results) > 1 else settings.seed,
                     "trained_in": results[0].precision},
        # Per seed (ensemble member, in order): the epoch each stage kept and its validation scores.
        "selected": [r.best for r in results] if len(results) > 1 else results[0].best,
        "data": {
            "sources": {s: {"modality": source_modality(s), "labelled_utterances": counts[s]} for s in corpora},
            "label_maps": recipe["label_maps"],
            "splits": recipe["splits"],
            "pseudo_dialogues": recipe["pseudo_dialogues"],
            "text_style": recipe.get("text_style"),
            "text_noise": recipe.get("text_noise"),
            "limit": args.limit,
        },
        "metrics": {"valid": valid, "note": "per source on its own modality; test figures: benchmarks/results/default_checkpoint.txt"},
        "licences": recipe.get("licences", {}),
        "timing_s": {"extraction": round(extracted - started), "training": round(trained - extracted)},
    }
    metadata = json.loads(json.dumps(metadata, default=float).replace("NaN", "null"))  # strict JSON
    save_checkpoint(model, args.out, metadata, half=len(results) > 1)  # several members: float16 keeps the file small
    print(json.dumps({"out": str(args.out), "valid": valid, "timing_s": metadata["timing_s"]}, indent=1))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
