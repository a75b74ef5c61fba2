"""Which random-protocol design fuses well on MOSI? Stage-2 variants from one shared stage 1 per seed.

    python benchmarks/mosi_fusion_sweep.py --seeds 0 1 --cache /tmp/mosi_sweep   # the recorded sweep
    python benchmarks/mosi_fusion_sweep.py --table                               # table from the cache

The choice is made on the validation videos (6 held-out training videos); test figures are
printed beside them, never used to choose. Caveat, measured: bc-LSTM's text and visual features
were trained with labels on the whole training split, validation videos included, so validation
sees text at ~98 % and visual at ~90 % Acc2 (test: ~78 % and ~53 %); only audio (openSMILE, no
labels) is as informative there as on test. Validation therefore cannot show the test failure
(a condition with visual below its subset without it); it can only rank designs on the whole.

Exploration tool: it drives the trainer's internals (training.Trainer) so every variant starts
from the same stage-1 weights and costs only its stage 2. Budget as benchmarks/mosi.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from momke.models.momke import MoMKE
from momke.models.training.evaluation import COLUMNS, evaluate_conditions
from momke.models.training.trainer import (
    Trainer,
    TrainingSettings,
    model_config_for,
    random_presence,
    random_subset,
    split_for_training,
)
from mosi import DATA_DIR, MODEL, RESULTS
from mosi_corpus import MOSI_FILE, load_mosi_corpus
from mosi_late_fusion import evaluate_late_fusion, fit_late_fusion, own_predictions

BASE = TrainingSettings(protocol="random", stage1_epochs=10, stage2_epochs=10, patience=3, learning_rate=1e-3, progress=False)
VARIANTS = {
    "base": {},  # the recorded momke-random
    "uw0.5": {"settings": {"unimodal_loss_weight": 0.5}},
    "uw1": {"settings": {"unimodal_loss_weight": 1.0}},
    "full0.5": {"full_set_rate": 0.5},  # half the conversations keep all three modalities
    "drop0": {"settings": {"utterance_drop_rate": 0.0}},  # one subset per conversation, no per-utterance re-draw
    "freeze": {"freeze": True},  # stage 2 trains only the routers and the fused head
    "select-atv": {"select": ["atv"]},  # epochs chosen on {a,t,v} instead of the mean of the conditions
    "late-stage1": {"late": True, "no_stage2": True},  # stage-1 model, least-squares late fusion
    "late-uw1": {"late": True, "settings": {"unimodal_loss_weight": 1.0}},  # the chosen design
}


def full_set_sampler(rate: float, drop_rate: float):
    """random_presence, except that a `rate` share of conversations keeps every modality (per-utterance re-draws stay)."""
    def sample(conversation, rng):
        if rng.random() >= rate:
            return random_presence(conversation, drop_rate, rng)
        mask = conversation.present.copy()
        for row in np.flatnonzero(rng.random(len(conversation)) < drop_rate):
            mask[row] = conversation.present[row] & random_subset(conversation.present[row], rng)
        return mask
    return sample


class Sweep:
    def __init__(self, data: Path, cache: Path) -> None:
        self.corpus = load_mosi_corpus(data)
        self.train, self.valid, self.test = split_for_training(self.corpus)
        self.config = model_config_for(self.corpus.metadata, **MODEL)
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def stage1(self, seed: int) -> dict:
        path = self.cache / f"stage1_{seed}.pt"
        if path.exists():
            return torch.load(path)
        trainer = Trainer(self.train, self.valid, self.config, replace(BASE, seed=seed))
        experts = trainer.stage1_experts()
        trainer.run_stage("stage1", BASE.stage1_epochs, lambda b: trainer.stage1_step(b, experts),
                          lambda: trainer.stage1_validation(experts))
        torch.save(trainer.model.state_dict(), path)
        return trainer.model.state_dict()

    def stage2(self, seed: int, name: str) -> MoMKE:
        variant = VARIANTS[name]
        settings = replace(BASE, seed=seed, **variant.get("settings", {}))
        trainer = Trainer(self.train, self.valid, self.config, settings)
        trainer.rng = np.random.default_rng(1000 + seed)  # the same stage-2 draws whether or not stage 1 ran here
        torch.manual_seed(1000 + seed)
        trainer.model.load_state_dict(self.stage1(seed))
        if variant.get("no_stage2"):
            return trainer.model.eval()
        if "full_set_rate" in variant:
            sample = full_set_sampler(variant["full_set_rate"], settings.utterance_drop_rate)
            trainer.training_presence = lambda conversation, stage: sample(conversation, trainer.rng)
        if variant.get("freeze"):
            for part in (trainer.model.projections, trainer.model.experts, trainer.model.unimodal_heads):
                part.requires_grad_(False)
        if "select" in variant:
            validate = trainer.stage2_validation

            def on_selected_conditions():
                result = validate()
                result[trainer.metric] = float(np.mean([result["per_condition"][c] for c in variant["select"]]))
                return result
            trainer.stage2_validation = on_selected_conditions
        trainer.run_stage("stage2", settings.stage2_epochs, trainer.stage2_step, trainer.stage2_validation)
        return trainer.model.eval()

    def scores(self, model: MoMKE, late: bool) -> dict:
        if late:
            weights = fit_late_fusion(*own_predictions(model, self.train))
            return {s: evaluate_late_fusion(weights, *own_predictions(model, c)) for s, c in (("valid", self.valid), ("test", self.test))}
        return {s: evaluate_conditions(model, c) for s, c in (("valid", self.valid), ("test", self.test))}


def table(rows: list[dict]) -> str:
    latest = {(r["variant"], r["seed"]): r for r in rows}
    names = list(dict.fromkeys(r["variant"] for r in rows))
    out = []
    for split in ("valid", "test"):
        out.append(f"## {split}: Acc2 non-zero, mean over seeds; 'mean7' = mean of the seven conditions")
        out.append(f"{'variant':>12} seeds  " + " ".join(f"{c:>6}" for c in [*COLUMNS, "mean7"]))
        for name in names:
            runs = [r for (n, _), r in latest.items() if n == name]
            cells = [np.mean([100 * r[split][c]["acc2_nonzero"] for r in runs]) for c in COLUMNS]
            mean7 = np.mean([100 * r[split][c]["acc2_nonzero"] for r in runs for c in COLUMNS if c != "avg"])
            out.append(f"{name:>12} {len(runs):>5}  " + " ".join(f"{v:6.1f}" for v in [*cells, mean7]))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR / MOSI_FILE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/mosi_sweep"), help="stage-1 weights and the rows")
    parser.add_argument("--table", action="store_true", help="only print the table of the rows in --cache")
    parser.add_argument("--out", type=Path, default=RESULTS / "mosi_fusion_sweep.txt")
    args = parser.parse_args(argv)
    rows_file = args.cache / "rows.jsonl"
    if not args.table:
        if not args.data.is_file():
            print(f"SKIP: {args.data} not found (the CMU-MOSI bc-LSTM features from ../shared/data)")
            return 0
        torch.set_num_threads(1)
        sweep = Sweep(args.data, args.cache)
        for seed in args.seeds:
            for name in args.variants:
                model = sweep.stage2(seed, name)
                row = {"variant": name, "seed": seed, **sweep.scores(model, VARIANTS[name].get("late", False))}
                with rows_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"done {name} seed {seed}", flush=True)
    rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines()]
    text = table(rows)
    print(text)
    if not args.table:
        header = f"# MOSI random-protocol design sweep (bc-LSTM split; validation = 6 held-out training videos)\ncommand: python benchmarks/mosi_fusion_sweep.py {' '.join(argv if argv is not None else sys.argv[1:])}\n\n"
        args.out.write_text(header + text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
