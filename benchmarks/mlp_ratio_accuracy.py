"""Which feed-forward width (mlp_ratio) to ship by default: accuracy on real features.

    python benchmarks/mlp_ratio_accuracy.py --iemocap-features DIR   # appends to results/mlp_ratio_accuracy.jsonl
    python benchmarks/mlp_ratio_accuracy.py --summary                # mean ± std per corpus and width
    python benchmarks/mlp_ratio_accuracy.py --ratios 2 --bucket-by-length ...  # the bucketing lever's accuracy
    python benchmarks/mlp_ratio_accuracy.py --ratios 2 --precision bfloat16 ...  # mixed precision's accuracy

Two real corpora, runs capped so that each one takes minutes on one CPU thread:
- CMU-MOSI (bc-LSTM features and split, benchmarks/mosi_corpus.py): the random protocol (the live
  app's one model), d = 128 as the paper's MOSI, 4 blocks, 2 heads, dropout 0.5, Adam 1e-3,
  at most 10 + 10 epochs with patience 3 (mosi.py's budget); Acc2 (non-zero labels) on the
  test videos, averaged over the six incomplete conditions, and on {a,t,v}.
- IEMOCAP transcripts, `lite` text features (benchmarks/iemocap_text.py extracts them): the
  fixed protocol {t}, the paper's d = 256, 4 blocks, 2 heads, dropout 0.5, Adam 5e-4, batches of
  16 dialogues, at most 15 + 10 epochs with patience 5 (`--iemocap-budget 40 20 10 8`: 40 + 20
  epochs, patience 10, batches of 8); WA / UA on session 5 (test), trained on sessions 1-4 with
  10 % of their dialogues held out for validation.
Every (corpus, seed) is trained once per mlp_ratio, in one process, one after the other. Each
record names the precision training's matmuls ran in (`--precision`; runs recorded before
mixed precision existed ran in float32).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from momke.models.training.data import load_corpus
from momke.models.training.evaluation import AVERAGE, evaluate_conditions, folds_of
from momke.models.training.precision import PRECISIONS
from momke.models.training.trainer import (
    TrainingResult,
    TrainingSettings,
    model_config_for,
    split_for_training,
    train_momke,
)
from mosi import DATA_DIR, RESULTS
from mosi import MODEL as MOSI_MODEL
from mosi_corpus import MOSI_FILE, load_mosi_corpus

MOSI_SETTINGS = TrainingSettings(protocol="random", stage1_epochs=10, stage2_epochs=10, patience=3,
                                 learning_rate=1e-3, progress=False)
IEMOCAP_MODEL = {"hidden_dim": 256, "router_hidden_dim": 256, "num_blocks": 4, "num_heads": 2, "dropout": 0.5}
IEMOCAP_SETTINGS = TrainingSettings(protocol="fixed", condition=("text",), stage1_epochs=15, stage2_epochs=10,
                                    patience=5, learning_rate=5e-4, batch_size=16, progress=False)


def mosi_run(corpus, ratio: float, seed: int, bucket: bool = False, precision: str = "float32") -> dict:
    settings = replace(MOSI_SETTINGS, seed=seed, bucket_by_length=bucket, precision=precision)
    train, valid, test = split_for_training(corpus, settings.valid_fraction, seed)
    result = train_momke(train, valid, model_config_for(corpus.metadata, **MOSI_MODEL, mlp_ratio=ratio), settings)
    metrics = evaluate_conditions(result.model, test)
    return {"precision": result.precision, "acc2_avg6": 100 * metrics[AVERAGE]["acc2_nonzero"],
            "acc2_atv": 100 * metrics["atv"]["acc2_nonzero"], "mae_atv": metrics["atv"]["mae"]}


def iemocap_trained(corpus, ratio: float, settings: TrainingSettings) -> tuple[str, TrainingResult, dict]:
    """(test fold, training result, its {t} metrics on the test session) of one IEMOCAP run."""
    fold, train, valid, test = folds_of(corpus, "sessions", settings.valid_fraction, settings.seed)[-1]
    result = train_momke(train, valid, model_config_for(corpus.metadata, **IEMOCAP_MODEL, mlp_ratio=ratio), settings)
    return fold, result, evaluate_conditions(result.model, test, [("text",)])["t"]


def iemocap_run(corpus, ratio: float, seed: int, budget: TrainingSettings = IEMOCAP_SETTINGS) -> dict:
    fold, result, metrics = iemocap_trained(corpus, ratio, replace(budget, seed=seed))
    return {"precision": result.precision, "fold": fold, "wa": 100 * metrics["wa"], "ua": 100 * metrics["ua"]}


SHOWN = {"mosi": ("acc2_avg6", "acc2_atv", "mae_atv"), "iemocap": ("wa", "ua")}


def summary(records: list[dict]) -> list[str]:
    """Mean ± std over seeds per corpus and mlp_ratio, and the per-seed differences to ratio 1."""
    lines = []
    for corpus in sorted({r["corpus"] for r in records}):
        keys = SHOWN[corpus.split("_")[0]]
        mine = [r for r in records if r["corpus"] == corpus]
        seeds = sorted({r["seed"] for r in mine})
        lines.append(f"{corpus} (seeds {seeds}):")
        precisions = sorted({r.get("precision", "float32") for r in mine}, reverse=True)  # float32 first
        for ratio in sorted({r["mlp_ratio"] for r in mine}):
            for precision in precisions:
                runs = [r for r in mine if r["mlp_ratio"] == ratio and r.get("precision", "float32") == precision]
                if not runs:
                    continue
                cells = [f"{k} {np.mean([r[k] for r in runs]):.2f}±{np.std([r[k] for r in runs]):.2f}" for k in keys]
                cpu = np.mean([r["cpu_s"] for r in runs])
                shown = f"mlp_ratio {ratio:g}" + (f" {precision}" if len(precisions) > 1 else "")
                lines.append(f"  {shown}: " + "  ".join(cells) + f"  (n={len(runs)}, {cpu:.0f} s CPU a run)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--mosi-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--iemocap-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--iemocap-features", type=Path, help="a `lite` text corpus of the IEMOCAP transcripts")
    parser.add_argument("--iemocap-budget", type=int, nargs=4, metavar=("STAGE1", "STAGE2", "PATIENCE", "BATCH"),
                        help="IEMOCAP epochs per stage, patience and batch size (default 15 10 5 16)")
    parser.add_argument("--out", type=Path, default=RESULTS / "mlp_ratio_accuracy.jsonl")
    parser.add_argument("--summary", action="store_true", help="only summarise the runs recorded in --out")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="training's matmuls (float32 by default, as every run recorded before mixed precision)")
    parser.add_argument("--bucket-by-length", action="store_true",
                        help="train with dialogues of similar length batched together (recorded as <corpus>_bucketed)")
    args = parser.parse_args(argv)
    if args.summary:
        print("\n".join(summary([json.loads(line) for line in args.out.read_text(encoding="utf-8").splitlines()])))
        return 0
    torch.set_num_threads(1)
    jobs = []
    if args.mosi_seeds:
        mosi = load_mosi_corpus(DATA_DIR / MOSI_FILE)
        run = functools.partial(mosi_run, bucket=args.bucket_by_length, precision=args.precision)
        jobs += [("mosi", mosi, run, seed) for seed in args.mosi_seeds]
    if args.iemocap_seeds and args.iemocap_features:
        iemocap = load_corpus(args.iemocap_features)
        budget, name = IEMOCAP_SETTINGS, "iemocap_text"
        if args.iemocap_budget:
            stage1, stage2, patience, batch = args.iemocap_budget
            budget = replace(budget, stage1_epochs=stage1, stage2_epochs=stage2, patience=patience, batch_size=batch)
            name += "_" + "-".join(map(str, args.iemocap_budget))
        budget = replace(budget, bucket_by_length=args.bucket_by_length, precision=args.precision)
        jobs += [(name, iemocap, functools.partial(iemocap_run, budget=budget), seed) for seed in args.iemocap_seeds]
    if args.bucket_by_length:
        jobs = [(f"{name}_bucketed", *rest) for name, *rest in jobs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        for corpus_name, corpus, run, seed in jobs:
            for ratio in args.ratios:  # ratios side by side per seed, so a cut-short run still compares
                wall, cpu = time.perf_counter(), time.process_time()
                record = {"corpus": corpus_name, "mlp_ratio": ratio, "seed": seed, **run(corpus, ratio, seed),
                          "wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}
                out.write(json.dumps(record) + "\n")
                out.flush()
                print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
