"""Does bfloat16 mixed precision learn as float32 does? Learning curves, seed by seed.

    python benchmarks/precision_curves.py --seeds 0 1 2 --out results/precision_curves_a.jsonl
    python benchmarks/precision_curves.py --summary results/precision_curves_*.jsonl

Held-out accuracy after early stopping varies by +-7 points from seed to seed on IEMOCAP text
(results/precision_accuracy.jsonl), which hides a small effect of the precision. The training
loss at a fixed epoch is steadier: here every run trains the same fixed number of epochs (no
early stopping) and records, per epoch, the mean training loss and the validation WA; the kept
model's test WA / UA come along. IEMOCAP transcripts, `lite` text features, fixed protocol {t},
the paper's d = 256, 4 blocks, 2 heads, dropout 0.5, lr 5e-4, batches of 8 dialogues (as
mlp_ratio_accuracy.py's longer budget), test session 5. Each seed runs in float32 and in bfloat16.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from mlp_ratio_accuracy import IEMOCAP_SETTINGS, iemocap_trained
from momke.extractors.runtime import cache_root
from momke.models.training.data import load_corpus

FEATURES = cache_root() / "benchmarks" / "iemocap_lite_text"  # benchmarks/iemocap_text.py makes them


def run(corpus, seed: int, precision: str, stage1: int, stage2: int) -> dict:
    settings = replace(IEMOCAP_SETTINGS, seed=seed, precision=precision, stage1_epochs=stage1,
                       stage2_epochs=stage2, patience=None, batch_size=8)
    cpu = time.process_time()
    _, result, metrics = iemocap_trained(corpus, 2.0, settings)  # the default feed-forward width
    curve = {stage: [(h["train_loss"], 100 * h["valid"]["wa"]) for h in result.history if h["stage"] == stage]
             for stage in ("stage1", "stage2")}
    return {"seed": seed, "precision": result.precision, "test_wa": 100 * metrics["wa"], "test_ua": 100 * metrics["ua"],
            "kept_epochs": {s: b["epoch"] for s, b in result.best.items()}, "curve": curve,
            "cpu_s": round(time.process_time() - cpu, 1)}


def summary(records: list[dict]) -> list[str]:
    """Per precision and epoch: the mean training loss and validation WA over the seeds that ran
    in both precisions, with the mean paired difference (bfloat16 - float32) and its standard error."""
    seeds = sorted({r["seed"] for r in records if r["precision"] == "float32"}
                   & {r["seed"] for r in records if r["precision"] == "bfloat16"})
    pick = {(r["seed"], r["precision"]): r for r in records}
    lines = [f"seeds in both precisions: {seeds}"]
    for stage in ("stage1", "stage2"):
        lines.append(f"{stage}: epoch, train loss float32 / bfloat16 (paired difference ± s.e.), validation WA float32 / bfloat16")
        epochs = len(pick[(seeds[0], "float32")]["curve"][stage])
        for epoch in range(epochs):
            values = {p: np.array([pick[(s, p)]["curve"][stage][epoch] for s in seeds]) for p in ("float32", "bfloat16")}
            loss = values["bfloat16"][:, 0] - values["float32"][:, 0]
            lines.append(f"  {epoch + 1:3d}  {values['float32'][:, 0].mean():.4f} / {values['bfloat16'][:, 0].mean():.4f}"
                         f" ({loss.mean():+.4f} ± {loss.std(ddof=1) / np.sqrt(len(seeds)):.4f})"
                         f"   {values['float32'][:, 1].mean():.1f} / {values['bfloat16'][:, 1].mean():.1f}")
    for key in ("test_wa", "test_ua"):
        a = np.array([pick[(s, "float32")][key] for s in seeds])
        b = np.array([pick[(s, "bfloat16")][key] for s in seeds])
        lines.append(f"{key} of the kept model: float32 {a.mean():.2f} ± {a.std(ddof=1):.2f}, bfloat16 "
                     f"{b.mean():.2f} ± {b.std(ddof=1):.2f}; paired difference {(b - a).mean():+.2f} "
                     f"± {(b - a).std(ddof=1) / np.sqrt(len(seeds)):.2f} (s.e.)")
    for precision in ("float32", "bfloat16"):
        lines.append(f"CPU per run, {precision}: {np.mean([pick[(s, precision)]['cpu_s'] for s in seeds]):.0f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs=2, default=[20, 20], metavar=("STAGE1", "STAGE2"))
    parser.add_argument("--features", type=Path, default=FEATURES)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision_curves.jsonl")
    parser.add_argument("--summary", type=Path, nargs="+", help="only summarise these recorded files")
    args = parser.parse_args(argv)
    if args.summary:
        records = [json.loads(line) for path in args.summary for line in path.read_text(encoding="utf-8").splitlines()]
        print("\n".join(summary(records)))
        return 0
    torch.set_num_threads(1)
    corpus = load_corpus(args.features)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        for seed in args.seeds:
            for precision in ("float32", "bfloat16"):
                record = run(corpus, seed, precision, *args.epochs)
                out.write(json.dumps(record) + "\n")
                out.flush()
                print(json.dumps({k: v for k, v in record.items() if k != "curve"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
