"""When may early stopping end a stage? Measured on a small sentiment corpus from transcripts.

    python benchmarks/early_stopping.py --seeds 0 1 2            # results/early_stopping.{json,txt}

Corpus: CMU-MOSI transcripts (the bc-LSTM split, 6 training videos held out for validation)
embedded with the lite text extractor (all-MiniLM-L6-v2): ~1,300 training utterances, text
only, sentiment in [-3, 3]. Model and training: `momke train`'s defaults except d = 128 (the
paper's MOSI width): lr 1e-4, patience 20, 100 + 100 epochs, batch 32, dropout 0.5.
Rules compared (the same seeds, one thread):
  from-first-epoch  patience counted from epoch 1 (the rule before this benchmark)
  after-learning    patience counted from the first epoch better on validation than a constant
                    predictor (the training mean) by the learnt margin (the rule now)
  none              no early stopping (--patience 0; the paper's code has none)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from momke.models.training import trainer as training
from momke.models.training.data import FeatureCorpus
from momke.models.training.evaluation import evaluate_model
from momke.models.training.trainer import (
    TrainingSettings,
    model_config_for,
    split_for_training,
    train_momke,
)
from mosi import DATA_DIR
from mosi_corpus import MOSI_FILE, load_mosi_corpus

RULES = ("from-first-epoch", "after-learning", "none")


def transcript_corpus(mosi_path: Path, cache: Path) -> FeatureCorpus:
    """The MOSI corpus with MiniLM embeddings of the transcripts as its only modality."""
    arrays = dict(np.load(mosi_path, allow_pickle=False))
    if not cache.is_file():
        from momke.extractors.text_lite import LiteTextExtractor

        extractor = LiteTextExtractor(device="cpu")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{part: np.stack(extractor.embed(list(arrays[f"{part}_transcript"])))
                           for part in ("train", "test")})
    vectors = dict(np.load(cache, allow_pickle=False))
    by_id = {u: vectors[part][i] for part in ("train", "test") for i, u in enumerate(arrays[f"{part}_utterance_id"])}
    corpus = load_mosi_corpus(mosi_path)
    for conversation in corpus.conversations:
        conversation.features = {"text": np.stack([by_id[u] for u in conversation.utterance_ids])}
        conversation.present = np.zeros_like(conversation.present)
        conversation.present[:, 1] = True
    corpus.metadata = replace(corpus.metadata, feature_profile="lite", feature_dims=(1, 384, 1),
                              description="CMU-MOSI transcripts, all-MiniLM-L6-v2")
    return corpus


def run(corpus: FeatureCorpus, rule: str, seed: int, stage_epochs: int) -> dict:
    settings = TrainingSettings(seed=seed, stage1_epochs=stage_epochs, stage2_epochs=stage_epochs, progress=False,
                                patience=None if rule == "none" else 20)
    train, valid, test = split_for_training(corpus, settings.valid_fraction, settings.seed)
    config = model_config_for(corpus.metadata, hidden_dim=128, router_hidden_dim=128)
    started = time.process_time()
    always = mock.patch.object(training, "beats_constant", lambda *_: True)
    if rule == "from-first-epoch":
        with always:
            result = train_momke(train, valid, config, settings)
    else:
        result = train_momke(train, valid, config, settings)
    seconds = time.process_time() - started
    metrics = evaluate_model(result.model, test).runs[0]["metrics"]["t"]
    return {"rule": rule, "seed": seed, "cpu_s": round(seconds, 1), "learnt": result.learnt,
            "stopped": {stage: max(h["epoch"] for h in result.history if h["stage"] == stage) for stage in result.best},
            "kept": {stage: best["epoch"] for stage, best in result.best.items()},
            "valid_mae": round(result.best["stage2"]["valid"]["mae"], 4),
            "constant_mae": round(result.best["stage2"]["valid"]["constant"], 4),
            "test": {k: round(metrics[k], 4) for k in ("acc2_nonzero", "f1_nonzero", "mae", "corr")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR / MOSI_FILE)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "momke" / "mosi_minilm.npz")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stage-epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, help="JSON lines file to append each run to")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    corpus = transcript_corpus(args.data, args.cache)
    for seed in args.seeds:
        for rule in args.rules:
            record = run(corpus, rule, seed, args.stage_epochs)
            line = json.dumps(record)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as stream:
                    stream.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
