"""MoMKE as a method on real tri-modal features: CMU-MOSI (bc-LSTM features and split).

    python benchmarks/mosi.py                     # the recorded run (results/mosi.{json,txt})
    python benchmarks/mosi.py --seeds 0 --quick   # a smoke run

Runs (5 seeds each, d = 128 as the paper's MOSI, Q = 4, H = 2, dropout 0.5):
  momke-fixed        the paper's protocol: one model per condition, bidirectional context
  momke-random       one model for every condition (random modality masks), bidirectional
  momke-random-causal  the same, causal context (the live setting)
  no-stage1 / no-mixing / no-router   the paper's three ablations, random protocol, bidirectional
  momke-random-late  random protocol, each modality's own head kept trained in stage 2
                     (unimodal_loss_weight 1), fused score = a least-squares combination of the
                     present modalities' own scores fitted per condition on the training videos
                     (mosi_late_fusion.py; chosen on validation, benchmarks/README.md section 5)
Every run scores all seven conditions and the average of the six incomplete ones: Acc2 / F1 on
non-zero labels (the paper's rule), MAE and Pearson correlation. Reduced budget (to fit a
2-core CPU): Adam lr 1e-3 instead of 1e-4, at most 10 + 10 epochs per stage with early stopping
(patience 3) on a validation split of 6 held-out training videos; the paper runs 100 + 100.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from momke.models.training.evaluation import (
    AVERAGE,
    COLUMNS,
    EvaluationReport,
    nan_to_none,
    run_evaluation,
)
from momke.models.training.trainer import (
    TrainingSettings,
    model_config_for,
    split_for_training,
    train_momke,
)
from mosi_corpus import MOSI_FILE, load_mosi_corpus
from mosi_late_fusion import evaluate_late_fusion, fit_late_fusion, own_predictions

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ("acc2_nonzero", "f1_nonzero", "mae", "corr")

MODEL = {"hidden_dim": 128, "router_hidden_dim": 128, "num_blocks": 4, "num_heads": 2, "dropout": 0.5}
RUNS = {
    "momke-fixed": ({"protocol": "fixed"}, {}),
    "momke-random": ({"protocol": "random"}, {}),
    "momke-random-causal": ({"protocol": "random"}, {"context_mode": "causal"}),
    "no-stage1": ({"protocol": "random", "skip_stage1": True}, {}),
    "no-mixing": ({"protocol": "random"}, {"mixing": False}),
    "no-router": ({"protocol": "random"}, {"use_router": False}),
    "momke-random-late": ({"protocol": "random", "unimodal_loss_weight": 1.0}, {}),
}
LATE_FUSION_RUNS = {"momke-random-late"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR / MOSI_FILE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--stage1-epochs", type=int, default=10)
    parser.add_argument("--stage2-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--quick", action="store_true", help="2 + 2 epochs, for a smoke test")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one torch thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "mosi")
    return parser.parse_args(argv)


def table(name: str, summary: dict) -> list[str]:
    header = ["metric", *("Avg" if c == AVERAGE else "{" + ",".join(c) + "}" for c in COLUMNS)]
    rows = [header]
    for key in SHOWN:
        row = [key]
        for column in COLUMNS:
            cell = summary.get(column, {}).get(key)
            if cell is None:
                row.append("n/a")
                continue
            scale = 1.0 if key in ("mae", "corr") else 100.0
            row.append(f"{scale * cell['mean']:.2f}±{scale * cell['std']:.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return [f"## {name}"] + ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]


def delta_lines(summaries: dict) -> list[str]:
    """MoMKE minus each ablation, Acc2 (non-zero) points, per condition: does it help more when incomplete?"""
    lines = ["## MoMKE (random, bidirectional) minus variant, Acc2 non-zero, points (positive: MoMKE better)"]
    base = summaries.get("momke-random")
    if not base:
        return lines + ["(momke-random not run)"]
    for variant in ("no-stage1", "no-mixing", "no-router", "momke-fixed", "momke-random-causal"):
        other = summaries.get(variant)
        if not other:
            continue
        cells = []
        for column in COLUMNS:
            if column in base and column in other:
                cells.append(f"{column}:{100 * (base[column]['acc2_nonzero']['mean'] - other[column]['acc2_nonzero']['mean']):+.2f}")
        lines.append(f"{variant:>20}  " + "  ".join(cells))
    return lines


def recorded_summaries(path: Path) -> dict:
    """{run: summary} of an earlier recorded results file (e.g. results/mosi.json), or {}."""
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    return {name: run["summary"] for name, run in runs.items()}


def target_lines(summaries: dict, reference: dict, reference_file: str) -> list[str]:
    """Issue 10's targets for each late-fusion run, Acc2 (non-zero) means: within 1 point of the
    fixed models on every condition; no condition more than 1 point below a subset of it."""
    fixed = summaries.get("momke-fixed") or reference.get("momke-fixed")
    lines = []
    for name in LATE_FUSION_RUNS & set(summaries):
        acc = {c: 100 * v["acc2_nonzero"]["mean"] for c, v in summaries[name].items() if c != AVERAGE}
        lines.append(f"## Targets for {name} (Acc2 non-zero means; fixed models from "
                     f"{'this run' if 'momke-fixed' in summaries else reference_file})")
        if fixed:
            gaps = {c: acc[c] - 100 * fixed[c]["acc2_nonzero"]["mean"] for c in acc if c in fixed}
            short = [f"{c} {g:+.2f}" for c, g in gaps.items() if g < -1.0]
            lines.append("minus fixed: " + "  ".join(f"{c}:{g:+.2f}" for c, g in gaps.items())
                         + f"  -> within 1 point everywhere: {'yes' if not short else 'no (' + ', '.join(short) + ')'}")
        drops = [f"{c} vs {s} {acc[c] - acc[s]:+.2f}" for c in acc for s in acc
                 if set(s) < set(c) and acc[c] < acc[s] - 1.0]
        lines.append("no condition > 1 point below a subset: " + ("yes" if not drops else "no (" + ", ".join(drops) + ")"))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_file():
        print(f"SKIP: {args.data} not found (the CMU-MOSI bc-LSTM features from ../shared/data)")
        return 0
    epochs = (2, 2) if args.quick else (args.stage1_epochs, args.stage2_epochs)
    base = TrainingSettings(
        stage1_epochs=epochs[0], stage2_epochs=epochs[1], patience=args.patience,
        learning_rate=args.lr, progress=False,
    )
    started_wall = time.time()
    # Seed-major order: after k seeds every run has k seeds, so an interrupted run still compares
    # like with like; results are rewritten after every finished (run, seed).
    tasks = [(name, seed, args.data, base) for seed in args.seeds for name in args.runs]
    reports: dict[str, list] = {name: [] for name in args.runs}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for name, report, wall, cpu in pool.imap_unordered(_one_run, tasks):
            reports[name].append((report, wall, cpu))
            print(f"done {name} seed {report.runs[0]['seed']} ({wall:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
            write_results(args, argv, epochs, reports, time.time() - started_wall)
    print("\n".join(delta_lines({n: merged(r).summary() for n, r in reports.items() if r})))
    return 0


def merged(parts: list):
    """One EvaluationReport holding the runs of every finished seed."""
    report = copy.deepcopy(parts[0][0])
    report.runs = sorted((r for rep, _, _ in parts for r in rep.runs), key=lambda r: r["seed"])
    return report


def write_results(args, argv, epochs, reports: dict, wall: float) -> None:
    summaries, results, lines = {}, {}, []
    total_cpu = 0.0
    for name, parts in reports.items():
        if not parts:
            continue
        report = merged(parts)
        cpu = sum(c for _, _, c in parts)
        total_cpu += cpu
        seeds = [r["seed"] for r in report.runs]
        summaries[name] = report.summary()
        results[name] = report.to_dict() | {"cpu_s": cpu, "seeds": seeds}
        lines += table(f"{name} (seeds {seeds}; {cpu:.0f} s CPU)", summaries[name]) + [""]
    lines += delta_lines(summaries)
    reference = recorded_summaries(RESULTS / "mosi.json")
    lines += [""] + target_lines(summaries, reference, "results/mosi.json, same seeds, recorded earlier")
    finished = sum(len(p) for p in reports.values())
    planned = len(args.seeds) * len(args.runs)
    header = [
        f"# CMU-MOSI, bc-LSTM features and split; mean±std over seeds; {finished}/{planned} (run, seed) pairs finished",
        f"command: python benchmarks/mosi.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        (f"machine: {platform.machine()} CPU (2 cores shared with other jobs), torch threads 1, {platform.python_version()}; "
         f"{args.jobs} worker processes; {wall:.0f} s wall so far, {total_cpu:.0f} s CPU in workers"),
        f"budget: lr {args.lr}, stage epochs {epochs}, patience {args.patience}, model {MODEL}",
        "train 56 videos / valid 6 held-out training videos / test 31 videos (752 utterances, 31 zero labels)",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    payload = {"command": header[1], "header": header, "runs": results}
    Path(f"{args.out}.json").write_text(json.dumps(payload, indent=1, default=_json_default) + "\n", encoding="utf-8")


def _one_run(task):
    """One (run, seed) in a worker process: returns (name, report, wall s, CPU s)."""
    name, seed, data, base = task
    torch.set_num_threads(1)
    settings_change, model_change = RUNS[name]
    wall, cpu = time.time(), time.process_time()
    corpus = load_mosi_corpus(data)
    settings, model = replace(base, **settings_change), {**MODEL, **model_change}
    if name in LATE_FUSION_RUNS:
        report = late_fusion_evaluation(corpus, settings, model, seed)
    else:
        report = run_evaluation(corpus, settings, model, scheme="split", seeds=[seed])
    return name, report, time.time() - wall, time.process_time() - cpu


def late_fusion_evaluation(corpus, settings: TrainingSettings, model_overrides: dict, seed: int) -> EvaluationReport:
    """One random-protocol model; fusion weights fitted on its training videos, scored on every
    condition of the test videos (and of the validation videos, recorded as `valid_metrics`)."""
    train, valid, test = split_for_training(corpus, settings.valid_fraction, seed)
    config = model_config_for(corpus.metadata, **model_overrides)
    result = train_momke(train, valid, config, replace(settings, seed=seed))
    weights = fit_late_fusion(*own_predictions(result.model, train))
    report = EvaluationReport(
        task=config.task, protocol="random+late-fusion", scheme="split", labels=[],
        settings=settings.to_dict(), model=config.to_dict(),
    )
    report.runs.append({
        "fold": "split", "seed": seed, "num_train": len(train), "num_valid": len(valid), "num_test": len(test),
        "metrics": evaluate_late_fusion(weights, *own_predictions(result.model, test)),
        "valid_metrics": evaluate_late_fusion(weights, *own_predictions(result.model, valid)),
        "late_fusion_weights": {name: w.tolist() for name, w in weights.items()},
        "selected": nan_to_none(result.best),
    })
    return report


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value))


if __name__ == "__main__":
    raise SystemExit(main())
