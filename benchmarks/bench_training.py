"""Training speed of `momke train`'s own epoch loop at the paper's settings, per speed lever.

    python benchmarks/bench_training.py                  # results/bench_training.txt
    python benchmarks/bench_training.py --reps 2 --variants mlp4 mlp1

Data: IEMOCAP-shaped random features (bench_model.py's: 151 dialogues, 5,531 utterances, at most
110 per dialogue, dimensions 512/1024/1024, 4 classes, every modality present). Model and
training: d = 256, 4 blocks, 2 heads, dropout 0.5, Adam, batch 16 dialogues, random protocol,
one torch thread. Each variant runs in its own process (so its peak memory is its own) and
times one stage-1 and one stage-2 epoch of momke.models.training's trainer (the code `momke
train` runs; validation excluded). Variants:
  mlp4          the default feed-forward width, 4*d
  mlp1          1*d, the authors' code's width (`--mlp-ratio 1`)
  mlp4-bucket   4*d, dialogues of similar length batched together (`--bucket-by-length`)
  mlp1-bucket   both
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import DIMS, LABELS, machine, make_corpus
from momke.models.config import MoMKEConfig
from momke.models.training import TrainingSettings, _Trainer

VARIANTS = {
    "mlp4": {"mlp_ratio": 4.0, "bucket_by_length": False},
    "mlp1": {"mlp_ratio": 1.0, "bucket_by_length": False},
    "mlp4-bucket": {"mlp_ratio": 4.0, "bucket_by_length": True},
    "mlp1-bucket": {"mlp_ratio": 1.0, "bucket_by_length": True},
}


def time_variant(name: str, batch_size: int) -> dict:
    """One stage-1 and one stage-2 epoch of the trainer, in this process."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    conversations = make_corpus(np.random.default_rng(0))
    variant = VARIANTS[name]
    config = MoMKEConfig(feature_dims=DIMS, labels=LABELS, mlp_ratio=variant["mlp_ratio"])
    settings = TrainingSettings(batch_size=batch_size, bucket_by_length=variant["bucket_by_length"], progress=False,
                                device="cpu")
    trainer = _Trainer(conversations, conversations[:2], config, settings)
    experts = trainer.stage1_experts()
    steps = {"stage1": lambda batch: trainer.stage1_step(batch, experts), "stage2": trainer.stage2_step}
    padded = sum(len(i) * max(len(conversations[j]) for j in i) for i in trainer._batch_indices())
    record = {"variant": name, **variant, "padding_share": round(1 - sum(map(len, conversations)) / padded, 3)}
    for stage, step in steps.items():
        optimizer = torch.optim.Adam(trainer.model.parameters(), lr=settings.learning_rate)
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train_epoch(stage, step, optimizer)
        record[f"{stage}_wall_s"] = round(time.perf_counter() - wall, 2)
        record[f"{stage}_cpu_s"] = round(time.process_time() - cpu, 2)
    record["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--reps", type=int, default=1, help="rounds; each round runs every variant once")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--one", choices=list(VARIANTS), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(time_variant(args.one, args.batch_size)))
        return 0
    print(f"machine: {machine()}; torch threads 1")
    print(f"data: bench_model.py's IEMOCAP-shaped set; d=256, 4 blocks, 2 heads, batch {args.batch_size}, "
          "random protocol; one epoch per stage, validation excluded")
    records = []
    for round_number in range(args.reps):  # interleaved, so load changes hit every variant alike
        for name in args.variants:
            child = subprocess.run([sys.executable, __file__, "--one", name, "--batch-size", str(args.batch_size)],
                                   capture_output=True, text=True, check=True)
            record = {"round": round_number, **json.loads(child.stdout.strip().splitlines()[-1])}
            records.append(record)
            print(json.dumps(record), flush=True)
    print("\nmean over rounds (CPU seconds per epoch; wall in brackets):")
    base = [r for r in records if r["variant"] == args.variants[0]]
    for name in args.variants:
        mine = [r for r in records if r["variant"] == name]
        stage1, stage2 = (float(np.mean([r[f"{s}_cpu_s"] for r in mine])) for s in ("stage1", "stage2"))
        walls = [float(np.mean([r[f"{s}_wall_s"] for r in mine])) for s in ("stage1", "stage2")]
        reference = float(np.mean([r["stage1_cpu_s"] + r["stage2_cpu_s"] for r in base]))
        print(f"  {name:12s} stage1 {stage1:6.1f} s ({walls[0]:.1f})  stage2 {stage2:6.1f} s ({walls[1]:.1f})  "
              f"both {reference / (stage1 + stage2):.2f}x {args.variants[0]}'s speed  "
              f"padding {mine[0]['padding_share']:.0%}  peak memory {max(r['peak_memory_mb'] for r in mine)} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
