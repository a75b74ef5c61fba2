"""IEMOCAP text-only ({t}) benchmark of MoMKE on the `lite` text features (all-MiniLM-L6-v2).

1. Extract lite text features of ../shared/data/iemocap4_transcripts.jsonl with `momke extract`'s
   code (cached and resumable; the features stay outside the repository: IEMOCAP is not ours
   to redistribute).
2. Train and test MoMKE on the text modality with the paper's 5-fold leave-one-session-out
   protocol (each session is the test set once; validation dialogues are carved out of the four
   training sessions, never from the test session), in both context modes, with the `fixed`
   protocol (the paper's: one model for {t}) and the `random` protocol (the live app's one
   model for every condition; with text as the only modality here it sees text alone, so it
   differs from `fixed` only by its utterance-drop masks being no-ops).
3. Print WA / UA per fold and on average next to the paper's {t} row, and write JSON.

    python benchmarks/iemocap_text.py --out benchmarks/results/iemocap_text.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

DATA = Path(os.environ.get("MOMKE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
LABELS = ("happy", "sad", "neutral", "angry")
PAPER = {"MoMKE {t} (DeBERTa-large features), paper Table 2": {"wa": 77.82, "ua": 78.37},
         "earlier methods {t} (paper's baselines)": {"wa": "62-67"}}


def ensure_features(features_dir: Path, cache_dir: Path):
    from momke.extractors.profiles import load_profile
    from momke.models.commands.corpus_readers import read_corpus
    from momke.models.commands.extract_corpus import FeatureCache, extract_corpus, profile_key
    from momke.models.training.data import load_corpus

    source = DATA / "iemocap4_transcripts.jsonl"
    if not source.is_file():
        raise SystemExit(f"IEMOCAP transcripts not found at {source} (set MOMKE_DATA_DIR)")
    profile = load_profile("lite")
    extract_corpus(read_corpus(source, "iemocap"), profile, features_dir, modalities=["text"], labels=LABELS,
                   cache=FeatureCache(cache_dir, profile_key(profile)), description="IEMOCAP 4-class transcripts",
                   extra={"source": str(source), "format": "iemocap"}, progress=False)
    return load_corpus(features_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from momke.extractors.runtime import cache_root

    root = cache_root()
    parser.add_argument("--features", type=Path, default=root / "benchmarks" / "iemocap_lite_text")
    parser.add_argument("--cache", type=Path, default=root / "features")
    parser.add_argument("--modes", default="bidirectional,causal")
    parser.add_argument("--protocols", default="fixed,random")
    parser.add_argument("--stage1-epochs", type=int, default=60)
    parser.add_argument("--stage2-epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32, help="dialogues per batch")
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--num-blocks", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    import torch
    from momke.models.training.evaluation import run_evaluation
    from momke.models.training.trainer import TrainingSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    corpus = ensure_features(args.features, args.cache)
    extracted = time.perf_counter() - started
    print(f"features: {len(corpus)} dialogues, {corpus.num_utterances} utterances, dims "
          f"{corpus.metadata.feature_dims} ({extracted:.0f} s incl. extraction/loading)", flush=True)

    base = TrainingSettings(condition=("text",), stage1_epochs=args.stage1_epochs, stage2_epochs=args.stage2_epochs,
                            patience=args.patience, learning_rate=args.learning_rate, batch_size=args.batch_size,
                            seed=args.seed, progress=False)
    overrides = {"hidden_dim": args.hidden_dim, "router_hidden_dim": args.hidden_dim, "num_blocks": args.num_blocks,
                 "dropout": args.dropout}
    results = {"command": "python benchmarks/iemocap_text.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "features": {"profile": "lite", "text": "all-MiniLM-L6-v2 (384-d)", "dialogues": len(corpus),
                            "utterances": corpus.num_utterances},
               "protocol": "5-fold leave-one-session-out; validation = 10 % of the training sessions' dialogues "
                           "(seeded), epochs selected on validation WA, early stopping",
               "settings": {**base.to_dict(), "protocol": "see each run", "model": overrides}, "paper": PAPER, "runs": []}
    for protocol in args.protocols.split(","):
        for mode in args.modes.split(","):
            run_started = time.perf_counter()
            report = run_evaluation(corpus, replace(base, protocol=protocol), {**overrides, "context_mode": mode},
                                    scheme="sessions", seeds=(args.seed,), conditions=[("text",)])
            folds = [{"fold": run["fold"], "wa": 100 * run["metrics"]["t"]["wa"], "ua": 100 * run["metrics"]["t"]["ua"],
                      "f1": 100 * run["metrics"]["t"]["f1"], "num_test_dialogues": run["num_test"],
                      "selected_on_validation": run.get("selected")}
                     for run in report.runs]
            mean = {k: sum(f[k] for f in folds) / len(folds) for k in ("wa", "ua", "f1")}
            entry = {"context_mode": mode, "protocol": protocol, "folds": folds, "average": mean,
                     "seconds": round(time.perf_counter() - run_started, 1)}
            results["runs"].append(entry)
            print(f"\n{{t}} context={mode} protocol={protocol} ({entry['seconds']:.0f} s)")
            for f in folds:
                print(f"  {f['fold']:<10} WA {f['wa']:6.2f}  UA {f['ua']:6.2f}  wF1 {f['f1']:6.2f}")
            print(f"  {'average':<10} WA {mean['wa']:6.2f}  UA {mean['ua']:6.2f}  wF1 {mean['f1']:6.2f}"
                  f"   (paper, DeBERTa-large: WA 77.82 UA 78.37; earlier methods WA 62-67)", flush=True)
            if args.out:  # written after every run, so a long benchmark leaves partial results
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1) + "\n")
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
