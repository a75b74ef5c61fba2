"""Two checkpoints side by side on the recipe's VALIDATION data: did retraining one path move the others?

    python benchmarks/checkpoint_validation.py --before DIR --after DIR [--out results/checkpoint_validation]

Both are scored on the same sets, built by the current recipe (features from its cache): each
source's validation split on its own modality ({a} per speech corpus, {v} FER2013, {t} per text
source, clean and its noisy copy), then the label-matched tri-modal validation conversations
(models/training/label_matched.py) under all seven modality conditions. Validation only: nothing
here is a held-out test figure. Writes <out>.txt and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from momke.models.checkpoint import load_checkpoint, load_config
from momke.models.commands.default_recipe import (
    build_corpora,
    load_recipe,
    matched_conversations,
    parse_benchmark_args,
    source_metrics,
)
from momke.models.training.evaluation import evaluate_conditions
from momke.models.training.trainer import CONDITIONS, condition_name

RESULTS = Path(__file__).resolve().parent / "results"


def before_after_corpora(argv: list[str] | None, doc: str, out: Path):
    """(args, recipe, {"before": corpora, "after": corpora}) of a benchmark that compares --before
    and --after on the recipe's sets; None when the corpora are absent (parse_benchmark_args has
    said so). Each side's features come from its checkpoint's feature profile (the same sets, in
    the same order: a checkpoint of another text encoder reads its own text vectors)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    args = parse_benchmark_args(parser, argv, out)
    if args is None:
        return None
    recipe = load_recipe(args.recipe)
    built: dict[str, dict] = {}
    corpora = {}
    for side, path in (("before", args.before), ("after", args.after)):
        profile = load_config(path).feature_profile  # the config alone: the weights load later, once
        if profile not in built:
            built[profile] = build_corpora({**recipe, "feature_profile": profile}, args.data, args.cache, progress=False)
        corpora[side] = built[profile]
    corpora["after"] = in_order_of(corpora["before"], corpora["after"])
    return args, recipe, corpora


def in_order_of(reference: dict, corpora: dict) -> dict:
    """`corpora` with each source's conversations in the reference's order (caches of two profiles
    may have been written in different orders); the same dialogues are required."""
    if corpora is reference:
        return corpora
    ordered = {}
    for source, corpus in reference.items():
        by_id = {c.dialogue_id: c for c in corpora[source].conversations}
        if set(by_id) != {c.dialogue_id for c in corpus.conversations}:
            raise ValueError(f"{source}: the two checkpoints' feature corpora hold different dialogues")
        ordered[source] = corpora[source].subset(by_id[c.dialogue_id] for c in corpus.conversations)
    return ordered


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    loaded = before_after_corpora(argv, __doc__, RESULTS / "checkpoint_validation")
    if loaded is None:
        return 0
    args, recipe, corpora = loaded
    results = {}
    for name, path in (("before", args.before), ("after", args.after)):
        model = load_checkpoint(path, device="cpu")
        per_source = source_metrics(model, corpora[name], "valid")
        per_condition = evaluate_conditions(model, matched_conversations(recipe, corpora[name], "valid"), CONDITIONS)
        results[name] = {"checkpoint": str(path), "sources": per_source, "label_matched": per_condition}
    lines = [
        "# Two checkpoints on the recipe's validation data (UA %, WA % in brackets)",
        f"command: python benchmarks/checkpoint_validation.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"before: {args.before}; after: {args.after}; {time.time() - started:.0f} s wall",
        "",
        f"{'set (validation)':<58} {'before':>14} {'after':>14}",
    ]

    def cell(r: dict) -> str:
        return f"{100 * r['ua']:6.2f} ({100 * r['wa']:5.1f})"

    for source in results["after"]["sources"]:
        before = results["before"]["sources"].get(source)
        lines.append(f"{source + ' on its own modality':<58} {cell(before) if before else '':>14} {cell(results['after']['sources'][source]):>14}")
    for condition in CONDITIONS:
        key = condition_name(condition)
        lines.append(f"{'label-matched tri-modal, {' + ','.join(key) + '}':<58} "
                     f"{cell(results['before']['label_matched'][key]):>14} {cell(results['after']['label_matched'][key]):>14}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text(text + "\n", encoding="utf-8")
    Path(f"{args.out}.json").write_text(json.dumps({"command": lines[1], "results": results}, indent=1, default=float) + "\n",
                                        encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
