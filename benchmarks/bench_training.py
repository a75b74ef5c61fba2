"""Training speed of `momke train`'s trainer, timed through its public API, against an older revision.

    python benchmarks/bench_training.py --baseline 471c5b2 --reps 3   # results/bench_training.txt
    python benchmarks/bench_training.py --variants mlp2 mlp1 --protocol random

Data: IEMOCAP-shaped random features (bench_model.py's: 151 dialogues, 5,531 utterances, at most
110 per dialogue, dimensions 512/1024/1024, 4 classes, every modality present). Model and
training: d = 256, 4 blocks, 2 heads, dropout 0.5, Adam, batch 16 dialogues, one torch thread,
the fixed protocol with condition atv by default (every modality through every expert: the
setting issue 21 compares with the authors' code), or the random protocol.

What is timed: `momke.models.training.train_momke` with one stage-1 and one stage-2 epoch,
CPU seconds of the whole call (model built, each stage's one validation pass over two dialogues
and the kept-weights copy included: about 0.1 s, the same for every variant). Each run is its own
process, so its peak memory is its own. With `--baseline REV` the same call runs on the models/
folder of git revision REV in the same rounds, variants interleaved, so a change of load hits
every variant alike. The call includes what a fresh process pays once: before baa20bc, the first
Adam step imports torch._dynamo (0.8 s); `--preimport-dynamo` imports it before the clock in
every run, which leaves the per-epoch cost alone.

The matmul floor (`--floor`): the run's matrix-multiply FLOPs (torch's FlopCounterMode over the
same two epochs, backward included) divided by this CPU's one-thread sgemm rate on the expert's
own shape: how long the run would take if it did nothing but its matmuls at that rate.

Variants: mlp1, mlp2 (the default), mlp4: the feed-forward width (`--mlp-ratio`); with -bucket,
dialogues of similar length batched together (`--bucket-by-length`). Each trains at the default
precision ("auto": bfloat16 mixed precision where this CPU has it natively, else float32; each
record says which); mlp2-fp32 is mlp2 in float32, which `--same-weights` checks bit for bit
against the baseline (mlp2 too, as the largest difference).

The authors' code (github wxxv/MoMKE) is not on this machine (no network): issue 21 timed it side by
side with 471c5b2 on this data and setting (fixed atv, 1 thread, 3 alternating rounds): 17.4 s CPU
per stage-1 + stage-2 epoch pair; 471c5b2's default 9.41 s.
"""

from __future__ import annotations

import argparse
import importlib
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
from bench_model import (  # benchmarks/ is on the path when run as a script
    DIMS,
    LABELS,
    machine,
    make_corpus,
)
from momke.models.config import MoMKEConfig
from momke.models.training import trainer as training

VARIANTS = {
    "mlp1": {"mlp_ratio": 1.0, "bucket_by_length": False},
    "mlp2": {"mlp_ratio": 2.0, "bucket_by_length": False},
    "mlp2-fp32": {"mlp_ratio": 2.0, "bucket_by_length": False, "precision": "float32"},
    "mlp4": {"mlp_ratio": 4.0, "bucket_by_length": False},
    "mlp1-bucket": {"mlp_ratio": 1.0, "bucket_by_length": True},
    "mlp2-bucket": {"mlp_ratio": 2.0, "bucket_by_length": True},
    "mlp4-bucket": {"mlp_ratio": 4.0, "bucket_by_length": True},
}
AUTHORS_FIXED_ATV_S = 17.4  # issue 21's side-by-side figure, CPU s per epoch pair
BASELINE_FIXED_ATV_S = 9.41  # 471c5b2's default in the same run


def settings_for(variant: dict, protocol: str, batch_size: int) -> training.TrainingSettings:
    # precision only where the variant names one: the default's, and older revisions, have none
    precision = {"precision": variant["precision"]} if "precision" in variant else {}
    return training.TrainingSettings(
        batch_size=batch_size, bucket_by_length=variant["bucket_by_length"], stage1_epochs=1, stage2_epochs=1,
        protocol=protocol, condition=("audio", "text", "visual"), progress=False, device="cpu", patience=None,
        **precision,
    )


def prepared_run(name: str, protocol: str, batch_size: int) -> tuple[list, MoMKEConfig, training.TrainingSettings]:
    """The data, model config and settings of one variant's run (one torch thread, seeded)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    variant = VARIANTS[name]
    config = MoMKEConfig(feature_dims=DIMS, labels=LABELS, mlp_ratio=variant["mlp_ratio"])
    return make_corpus(np.random.default_rng(0)), config, settings_for(variant, protocol, batch_size)


def run_variant(
    name: str, protocol: str, batch_size: int, preimport_dynamo: bool = False, weights_to: str | None = None
) -> dict:
    """One train_momke call, one epoch per stage, in this process (weights_to: save the trained
    state dict there, after the clock)."""
    conversations, config, settings = prepared_run(name, protocol, batch_size)
    if preimport_dynamo:  # what torch.optim's first step imports (0.8 s), before the clock starts
        importlib.import_module("torch._dynamo")
    wall, cpu = time.perf_counter(), time.process_time()
    result = training.train_momke(conversations, conversations[:2], config, settings)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if weights_to:
        torch.save(result.model.state_dict(), weights_to)
    return {**VARIANTS[name], "precision": trained_precision(result), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def trained_precision(result) -> str:
    """What the run's matmuls ran in (revisions before mixed precision: float32)."""
    return getattr(result, "precision", "float32")


def matmul_floor(name: str, protocol: str, batch_size: int) -> dict:
    """The run's matmul FLOPs and the one-thread matmul rate on an expert's shape, in the dtype
    the run's matmuls ran in (sgemm for float32; bfloat16's under mixed precision)."""
    from torch.utils.flop_counter import FlopCounterMode

    conversations, config, settings = prepared_run(name, protocol, batch_size)
    with FlopCounterMode(display=False) as counter:
        result = training.train_momke(conversations, conversations[:2], config, settings)
    flops = counter.get_total_flops()
    dtype = getattr(torch, trained_precision(result))
    rows = 3 * sum(map(len, conversations)) // (len(conversations) // batch_size)  # one stage-2 batch's rows
    a = torch.randn(rows, config.hidden_dim, dtype=dtype)
    b = torch.randn(config.hidden_dim, 3 * config.hidden_dim, dtype=dtype)
    for _ in range(3):
        a @ b
    start, repeats = time.process_time(), 50
    for _ in range(repeats):
        a @ b
    rate = 2 * rows * config.hidden_dim * 3 * config.hidden_dim * repeats / (time.process_time() - start)
    return {"matmul_gflop": round(flops / 1e9, 1), "dtype": str(dtype).removeprefix("torch."), "gflop_per_s": round(rate / 1e9, 1),
            "floor_s": round(flops / rate, 2)}


def code_of(revision: str, folder: Path) -> dict:
    """Environment for a child that imports momke.models from git revision `revision`."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "models"], capture_output=True, check=True)
    (folder / "momke").mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder / "momke")], input=archive.stdout, check=True)
    return {**os.environ, "PYTHONPATH": str(folder)}  # found before the installed momke/models


def summary(records: list[dict], names: list[str], default: str) -> list[str]:
    lines = ["mean over rounds (CPU seconds per stage-1 + stage-2 epoch pair; wall in brackets):"]
    totals = {}
    for name in names:
        mine = [r for r in records if r["variant"] == name]
        totals[name] = float(np.mean([r["cpu_s"] for r in mine]))
        wall = float(np.mean([r["wall_s"] for r in mine]))
        spread = f"{min(r['cpu_s'] for r in mine):.2f}-{max(r['cpu_s'] for r in mine):.2f}"
        lines.append(f"  {name:18s} {totals[name]:6.2f} s ({wall:6.2f})  rounds {spread}  "
                     f"peak memory {max(r['peak_memory_mb'] for r in mine)} MB")
    if "baseline" in totals:
        lines += ["", "against the baseline revision, same rounds (CPU):"]
        for name in names[1:]:
            lines.append(f"  {name:18s} {totals[name] / totals['baseline']:.3f} of its time "
                         f"({1 - totals[name] / totals['baseline']:+.1%} less)")
        if default in totals:
            scaled = AUTHORS_FIXED_ATV_S * totals["baseline"] / BASELINE_FIXED_ATV_S
            lines += ["", f"against the authors' code (issue 21: {AUTHORS_FIXED_ATV_S} s beside the baseline's "
                          f"{BASELINE_FIXED_ATV_S} s; scaled to this run's baseline: {scaled:.2f} s): "
                          f"{default} {scaled / totals[default]:.2f}x"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["mlp2"], choices=list(VARIANTS))
    parser.add_argument("--baseline", metavar="REV", help="also time mlp2 with the models/ code of this git revision")
    parser.add_argument("--reps", type=int, default=1, help="rounds; each round runs every variant once")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--protocol", choices=("fixed", "random"), default="fixed")
    parser.add_argument("--floor", action="store_true", help="also measure the matmul floor of each variant")
    parser.add_argument("--preimport-dynamo", action="store_true",
                        help="import torch._dynamo in every run before timing: the per-epoch cost without the "
                             "one-off import that torch.optim's first step makes (the baseline's Adam does)")
    parser.add_argument("--same-weights", action="store_true",
                        help="with --baseline: also train once more on each code and compare the trained weights")
    parser.add_argument("--one", choices=list(VARIANTS), help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--one-weights", help=argparse.SUPPRESS)
    parser.add_argument("--one-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        if args.one_floor:
            print(json.dumps(matmul_floor(args.one, args.protocol, args.batch_size)))
        else:
            print(json.dumps(run_variant(args.one, args.protocol, args.batch_size, args.preimport_dynamo, args.one_weights)))
        return 0
    print(f"machine: {machine()}; torch threads 1")
    print(f"data: bench_model.py's IEMOCAP-shaped set; d=256, 4 blocks, 2 heads, batch {args.batch_size}, "
          f"{args.protocol} protocol{' atv' if args.protocol == 'fixed' else ''}; train_momke, one epoch per stage"
          f"{'; torch._dynamo imported before timing' if args.preimport_dynamo else ''}")
    names = (["baseline"] if args.baseline else []) + args.variants

    def child(name: str, env=None, floor: bool = False, weights_to: str | None = None) -> dict:
        command = [sys.executable, __file__, "--one", "mlp2" if name == "baseline" else name,
                   "--batch-size", str(args.batch_size), "--protocol", args.protocol] + (["--one-floor"] if floor else [])
        command += ["--preimport-dynamo"] if args.preimport_dynamo else []
        command += ["--one-weights", weights_to] if weights_to else []
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{name}: the child failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    records = []
    with tempfile.TemporaryDirectory() as folder:
        baseline_env = code_of(args.baseline, Path(folder)) if args.baseline else None
        for round_number in range(args.reps):  # interleaved, so load changes hit every variant alike
            for name in names:
                record = {"round": round_number, "variant": name,
                          **child(name, baseline_env if name == "baseline" else None)}
                records.append(record)
                print(json.dumps(record), flush=True)
        lines = summary(records, names, "mlp2")
        if args.floor:
            lines += ["", "matmul floor (FLOPs of the run's matmuls / one-thread sgemm rate on the expert's shape):"]
            for name in names:
                floor = child(name, baseline_env if name == "baseline" else None, floor=True)
                mean = float(np.mean([r["cpu_s"] for r in records if r["variant"] == name]))
                lines.append(f"  {name:18s} {floor['matmul_gflop']} GFLOP at {floor['gflop_per_s']} GFLOP/s ({floor['dtype']}) "
                             f"= {floor['floor_s']:.2f} s: {floor['floor_s'] / mean:.0%} of its {mean:.2f} s")
        if args.same_weights and args.baseline:
            trained = {}
            for name in ("baseline", "mlp2-fp32", "mlp2"):
                path = str(Path(folder) / f"{name}.pt")
                child(name, baseline_env if name == "baseline" else None, weights_to=path)
                trained[name] = torch.load(path)
            lines += ["", f"trained weights against {args.baseline}'s (same seed):"]
            for name in ("mlp2-fp32", "mlp2"):
                ours, theirs = trained[name], trained["baseline"]
                same = [k for k in theirs if torch.equal(theirs[k], ours[k])]
                largest = max((theirs[k] - ours[k]).abs().max().item() for k in theirs)
                lines.append(f"  {name:18s} {len(same)} of {len(theirs)} tensors equal to the bit; "
                             f"largest difference {largest:.3g}")
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
