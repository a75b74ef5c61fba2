"""Seed spread of the default recipe, and what averaging members gives (models/ensemble.py).

    for s in 0 1 2 3 4; do python -m momke.models.commands.default_recipe --seed $s --out runs/s$s --quiet; done
    python benchmarks/ensemble.py runs/s0 runs/s1 runs/s2 runs/s3 runs/s4   # results/ensemble.txt

Each checkpoint is one training run of the recipe with another training seed (same data, same
splits). For each one, and for ensembles of them (members' logits averaged, as the shipped
checkpoint does: the first three, the last three, all), the held-out figures of
benchmarks/fusion.py that decide the fusion targets: WA under the seven conditions on
label-matched test items (3 draws), {a,t,v} minus the best single path, and FER2013's test half
through {v} against the mini-Xception's own 4-class argmax. Each run's validation score (mean UA
over the conditions, what picks its epochs) is shown beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fusion import (
    build_corpora,
    conditions_and_conflicts,
    fer_comparison,
)
from momke.models.checkpoint import load_checkpoint
from momke.models.commands.default_recipe import (
    add_corpus_options,
    matched_conversations,
    recipe_of,
)
from momke.models.ensemble import MoMKEEnsemble

RESULTS = Path(__file__).resolve().parent / "results"
CONDITIONS = ("a", "t", "v", "av", "at", "tv", "atv")


def figures(model, recipe: dict, corpora: dict, draws: list[int]) -> dict:
    runs = []
    for draw in draws:
        seeded = {**recipe, "label_matched": {**recipe["label_matched"], "seed": 1000 + draw}}
        runs.append(conditions_and_conflicts(model, matched_conversations(seeded, corpora, "test")))
    wa = {c: 100 * float(np.mean([r["conditions"][c]["wa"] for r in runs])) for c in CONDITIONS}
    fer = fer_comparison(model, corpora["fer2013"].split("test"), list(model.config.labels), recipe)
    return {"wa": wa, "margin": wa["atv"] - max(wa[c] for c in "atv"),
            "fer_v": 100 * fer["momke_v"]["wa"], "fer_xception": 100 * fer["mini_xception_4class"]["wa"]}


def ensemble_of(models: list) -> MoMKEEnsemble:
    config = dataclasses.replace(models[0].config, ensemble_size=len(models))
    return MoMKEEnsemble(config, models).eval()


def line(name: str, valid: str, result: dict) -> str:
    wa = result["wa"]
    return (f"{name:<16} {valid:>6} " + " ".join(f"{wa[c]:5.1f}" for c in CONDITIONS)
            + f"  {result['margin']:+6.2f}  {result['fer_v']:5.2f} ({result['fer_xception']:.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="single-seed runs of the recipe")
    add_corpus_options(parser)
    parser.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2], help="label-matched test draws")
    parser.add_argument("--out", type=Path, default=RESULTS / "ensemble")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"SKIP: {args.data} not found (the shared corpora)")
        return 0
    torch.set_num_threads(1)
    started = time.time()
    models = [load_checkpoint(path, device="cpu") for path in args.checkpoints]
    recipe = recipe_of(models[0].config)
    corpora = build_corpora(recipe, args.data, args.cache, progress=False)
    rows, report = [], {"checkpoints": [str(p) for p in args.checkpoints], "runs": {}, "ensembles": {}}
    for path, model in zip(args.checkpoints, models):
        selected = model.config.metadata.get("selected", {})
        valid = selected.get("stage2", {}).get("valid", {}).get("ua") if isinstance(selected, dict) else None
        result = figures(model, recipe, corpora, args.draws)
        report["runs"][path.name] = {**result, "valid_ua": valid}
        rows.append(line(path.name, "n/a" if valid is None else f"{100 * valid:.2f}", result))
    singles = list(report["runs"].values())
    spread = {key: (float(np.mean([r[key] for r in singles])), float(np.std([r[key] for r in singles])))
              for key in ("margin", "fer_v")}
    groups = {"first 3": models[:3], "last 3": models[-3:], f"all {len(models)}": models} if len(models) > 3 else {"all": models}
    for name, members in groups.items():
        result = figures(ensemble_of(members), recipe, corpora, args.draws)
        report["ensembles"][name] = result
        rows.append(line("ensemble " + name, "", result))
    header = f"{'run':<16} {'valid':>6} " + " ".join(f"{c:>5}" for c in CONDITIONS) + "  margin  FER {v} (mini-Xception)"
    text = "\n".join([
        "# Seed spread of the default recipe and ensembles (held-out: RAVDESS 17-20 + FER2013 test half + MELD/EmoryNLP test)",
        f"command: python benchmarks/ensemble.py {' '.join(str(p) for p in args.checkpoints)}",
        f"x86_64 CPU, torch threads 1; {round(time.time() - started)} s; WA %, mean of label-matched draws {args.draws}", "",
        header, *rows, "",
        f"single runs: margin {spread['margin'][0]:+.2f} +- {spread['margin'][1]:.2f}, FER {{v}} {spread['fer_v'][0]:.2f} +- {spread['fer_v'][1]:.2f}",
    ])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text(text + "\n", encoding="utf-8")
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
