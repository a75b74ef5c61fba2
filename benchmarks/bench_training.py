"""Training speed of `momke train`'s own epoch loop at the paper's settings, per speed lever.

    python benchmarks/bench_training.py --baseline 815d515   # results/bench_training.txt
    python benchmarks/bench_training.py --reps 2 --variants mlp4 mlp1

Data: IEMOCAP-shaped random features (bench_model.py's: 151 dialogues, 5,531 utterances, at most
110 per dialogue, dimensions 512/1024/1024, 4 classes, every modality present). Model and
training: d = 256, 4 blocks, 2 heads, dropout 0.5, Adam, batch 16 dialogues, random protocol,
one torch thread. Each variant runs in its own process (so its peak memory is its own) and
times one stage-1 and one stage-2 epoch of momke.models.training.trainer's trainer (the code `momke
train` runs; validation excluded). Variants:
  mlp4          feed-forward width 4*d (`--mlp-ratio 4`)
  mlp1          1*d, the authors' code's width (`--mlp-ratio 1`)
  mlp4-bucket   4*d, dialogues of similar length batched together (`--bucket-by-length`)
  mlp1-bucket   both
  mlp2, mlp2-bucket   2*d (`--mlp-ratio 2`), without and with bucketing
  mlp1-bucket-torch-dropout   mlp1-bucket with torch's own dropout (bernoulli_ masks) instead of
                momke.py's random-byte masks (keep_mask): what that lever is worth
  mlp1-bucket-compile   mlp1-bucket with each expert under torch.compile(dynamic=True); two
                epochs per stage, the second timed (the first, with compiling, is recorded as
                *_first_cpu_s). Not run unless named.
  baseline      with --baseline REV: mlp4 run with the models/ folder of git revision REV (say
                the code before a lever), so old and new code are timed in one session
The authors' code is not on this machine (no network), so it is not run here. Issue 13 timed it
side by side with ours at 815d515's code and default (mlp4, no bucketing), same data and
settings, CPU seconds per epoch: ours stage 1 11.3, stage 2 32.3; the authors' 6.0 and 16.2.
With --baseline 815d515 the summary scales each variant through that shared point as well as
comparing raw CPU seconds (on a loaded machine CPU seconds grow too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import DIMS, LABELS, machine, make_corpus
from momke.models.config import MoMKEConfig

try:
    from momke.models.training.trainer import TrainingSettings, _Trainer
except ModuleNotFoundError:  # --baseline: a revision before models/training/ was a package
    from momke.models.training import TrainingSettings, _Trainer

VARIANTS = {
    "mlp4": {"mlp_ratio": 4.0, "bucket_by_length": False},
    "mlp1": {"mlp_ratio": 1.0, "bucket_by_length": False},
    "mlp4-bucket": {"mlp_ratio": 4.0, "bucket_by_length": True},
    "mlp1-bucket": {"mlp_ratio": 1.0, "bucket_by_length": True},
    "mlp2": {"mlp_ratio": 2.0, "bucket_by_length": False},
    "mlp2-bucket": {"mlp_ratio": 2.0, "bucket_by_length": True},
    "mlp1-bucket-torch-dropout": {"mlp_ratio": 1.0, "bucket_by_length": True, "torch_dropout": True},
    "mlp1-bucket-compile": {"mlp_ratio": 1.0, "bucket_by_length": True, "compile": True},
}
DEFAULT_VARIANTS = [name for name in VARIANTS if not name.endswith("compile")]
# Issue 13's side-by-side figures, CPU s per epoch: ours at 815d515 (mlp4) and the authors' code.
ISSUE_BASELINE = {"stage1": 11.3, "stage2": 32.3}
OFFICIAL = {"stage1": 6.0, "stage2": 16.2}
OFFICIAL_PEAK_MB = 3400


def use_torch_dropout() -> None:
    """Put torch's dropout back into the model (the lever's "before")."""
    from momke.models import momke, packing
    from torch.nn import functional as F

    packing.dropout = F.dropout
    momke.attend = lambda q, k, v, allowed, p: F.scaled_dot_product_attention(
        q, k, v, attn_mask=allowed.unsqueeze(1), dropout_p=p)
    # Packed attention's weights and the residual dropout: bernoulli_'s masks, as torch draws them.
    packing.keep_mask = lambda x, p: torch.empty_like(x).bernoulli_(1.0 - p)


def time_variant(name: str, batch_size: int) -> dict:
    """One stage-1 and one stage-2 epoch of the trainer, in this process."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    conversations = make_corpus(np.random.default_rng(0))
    variant = dict(VARIANTS[name])
    if variant.pop("torch_dropout", False):
        use_torch_dropout()
    config = MoMKEConfig(feature_dims=DIMS, labels=LABELS, mlp_ratio=variant["mlp_ratio"])
    settings = TrainingSettings(batch_size=batch_size, bucket_by_length=variant["bucket_by_length"], progress=False,
                                device="cpu")
    trainer = _Trainer(conversations, conversations[:2], config, settings)
    compiled = variant.pop("compile", False)
    if compiled:
        for name_k in list(trainer.model.experts):
            trainer.model.experts[name_k] = torch.compile(trainer.model.experts[name_k], dynamic=True)
    experts = trainer.stage1_experts()
    steps = {"stage1": lambda batch: trainer.stage1_step(batch, experts), "stage2": trainer.stage2_step}
    padded = sum(len(i) * max(len(conversations[j]) for j in i) for i in trainer._batch_indices())
    record = {"variant": name, **variant, "padding_share": round(1 - sum(map(len, conversations)) / padded, 3)}
    for stage, step in steps.items():
        if hasattr(trainer, "optimizer"):  # the trainer's own (fused Adam)
            optimizer = trainer.optimizer()
        else:  # a --baseline revision before it had one
            optimizer = torch.optim.Adam(trainer.model.parameters(), lr=settings.learning_rate,
                                         weight_decay=settings.weight_decay)
        if compiled:  # the first epoch compiles; the second is the one timed
            cpu = time.process_time()
            trainer.train_epoch(stage, step, optimizer)
            record[f"{stage}_first_cpu_s"] = round(time.process_time() - cpu, 2)
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train_epoch(stage, step, optimizer)
        record[f"{stage}_wall_s"] = round(time.perf_counter() - wall, 2)
        record[f"{stage}_cpu_s"] = round(time.process_time() - cpu, 2)
    record["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return record


def code_of(revision: str, folder: Path) -> dict:
    """Environment for a child that imports momke.models from git revision `revision`."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "models"], capture_output=True, check=True)
    (folder / "momke").mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder / "momke")], input=archive.stdout, check=True)
    return {**os.environ, "PYTHONPATH": str(folder)}  # found before the installed momke/models


def summary(records: list[dict], names: list[str]) -> list[str]:
    lines = ["mean over rounds (CPU seconds per epoch; wall in brackets):"]
    totals = {}
    for name in names:
        mine = [r for r in records if r["variant"] == name]
        stage1, stage2 = (float(np.mean([r[f"{s}_cpu_s"] for r in mine])) for s in ("stage1", "stage2"))
        walls = [float(np.mean([r[f"{s}_wall_s"] for r in mine])) for s in ("stage1", "stage2")]
        totals[name] = stage1 + stage2
        lines.append(f"  {name:26s} stage1 {stage1:5.1f} s ({walls[0]:5.1f})  stage2 {stage2:5.1f} s ({walls[1]:5.1f})  "
                     f"both {totals[names[0]] / totals[name]:.2f}x {names[0]}'s speed  "
                     f"padding {mine[0]['padding_share']:.0%}  peak memory {max(r['peak_memory_mb'] for r in mine)} MB")
    official = sum(OFFICIAL.values())
    lines += ["", (f"against the authors' code (issue 13's figures: stage 1 {OFFICIAL['stage1']} s + stage 2 "
                  f"{OFFICIAL['stage2']} s = {official:.1f} s CPU; 2x faster = at most {official / 2:.1f} s):")]
    scale = sum(ISSUE_BASELINE.values()) / totals["baseline"] if "baseline" in totals else None
    for name in names:
        line = f"  {name:26s} raw {official / totals[name]:.2f}x"
        if scale:
            line += f"  scaled through the baseline (x{scale:.2f}) {official / (totals[name] * scale):.2f}x"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--baseline", metavar="REV", help="also time mlp4 with the models/ code of this git revision")
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
    names = (["baseline"] if args.baseline else []) + args.variants
    records = []
    with tempfile.TemporaryDirectory() as folder:
        baseline_env = code_of(args.baseline, Path(folder)) if args.baseline else None
        for round_number in range(args.reps):  # interleaved, so load changes hit every variant alike
            for name in names:
                command = [sys.executable, __file__, "--one", "mlp4" if name == "baseline" else name,
                           "--batch-size", str(args.batch_size)]
                child = subprocess.run(command, capture_output=True, text=True, check=True,
                                       env=baseline_env if name == "baseline" else None)
                record = {"round": round_number, **json.loads(child.stdout.strip().splitlines()[-1]), "variant": name}
                records.append(record)
                print(json.dumps(record), flush=True)
    print("\n" + "\n".join(summary(records, names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
