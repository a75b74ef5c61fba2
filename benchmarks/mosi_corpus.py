"""CMU-MOSI bc-LSTM tri-modal features -> the project's feature-corpus format.

Only the bc-LSTM split is used (see ../shared/data/README.md: its text and visual features were
trained on this train split, so any other split would leak). Validation = a few whole training
videos held out, chosen once by a fixed seed, so model selection never sees the test videos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from momke.models.config import MODALITIES
from momke.models.training.data import Conversation, CorpusMetadata, FeatureCorpus

MOSI_FILE = "cmumosi_bclstm_trimodal.npz"
VALID_VIDEOS = 6  # of 62 training videos (~10 %)
VALID_SEED = 0


def load_mosi_corpus(
    path: str | Path, valid_videos: int = VALID_VIDEOS, seed: int = VALID_SEED, standardize: bool = True
) -> FeatureCorpus:
    """Regression corpus: one dialogue per video, utterances in position order, sentiment in [-3, 3].

    standardize: z-score every feature with the mean / std of the training videos (not the
    validation or test ones); the openSMILE audio functionals span several orders of magnitude
    and would otherwise swamp the projection.
    """
    arrays = dict(np.load(path, allow_pickle=False))
    conversations: list[Conversation] = []
    train_videos = sorted(set(arrays["train_video_id"].tolist()))
    if not 0 <= valid_videos < len(train_videos):
        raise ValueError(f"valid_videos must be in 0..{len(train_videos) - 1}, got {valid_videos}")
    held_out = set(np.random.default_rng(seed).choice(train_videos, size=valid_videos, replace=False).tolist())
    if standardize:
        fit_rows = ~np.isin(arrays["train_video_id"], sorted(held_out))
        for m in MODALITIES:
            mean = arrays[f"train_{m}"][fit_rows].mean(axis=0)
            std = arrays[f"train_{m}"][fit_rows].std(axis=0)
            std = np.where(std > 1e-8, std, 1.0)
            for part in ("train", "test"):
                arrays[f"{part}_{m}"] = ((arrays[f"{part}_{m}"] - mean) / std).astype(np.float32)
    for part in ("train", "test"):
        videos = arrays[f"{part}_video_id"]
        position = arrays[f"{part}_position"]
        for video in dict.fromkeys(videos.tolist()):  # first-seen order
            rows = np.flatnonzero(videos == video)
            rows = rows[np.argsort(position[rows], kind="stable")]
            split = "test" if part == "test" else ("valid" if video in held_out else "train")
            conversations.append(
                Conversation(
                    dialogue_id=video,
                    utterance_ids=arrays[f"{part}_utterance_id"][rows].tolist(),
                    speakers=[video] * len(rows),  # one speaker per MOSI video
                    features={m: arrays[f"{part}_{m}"][rows] for m in MODALITIES},
                    present=np.ones((len(rows), len(MODALITIES)), dtype=bool),
                    labels=arrays[f"{part}_sentiment"][rows].astype(np.float32),
                    split=split,
                )
            )
    dims = tuple(int(arrays[f"train_{m}"].shape[1]) for m in MODALITIES)
    metadata = CorpusMetadata(
        feature_profile="bclstm-mosi",
        feature_dims=dims,
        labels=(),
        task="regression",
        description="CMU-MOSI utterance features from bc-LSTM (Poria et al., 2017): text CNN, openSMILE audio, 3D-CNN visual",
        extra={"split": "bc-LSTM", "valid_videos": sorted(held_out), "valid_seed": seed, "standardized": standardize},
    )
    return FeatureCorpus(metadata, conversations)
