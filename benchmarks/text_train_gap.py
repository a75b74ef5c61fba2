"""The text path {t} on its training lines and on validation: does a checkpoint fit its text too closely?

    python benchmarks/text_train_gap.py CHECKPOINT [CHECKPOINT ...]

A text encoder fine-tuned on the same training lines MoMKE later learns from could make those
lines' vectors easy (over-confident on train): the gap between train and validation would grow.
Per checkpoint, MELD and EmoryNLP as the default recipe reads them (its corpora, each
checkpoint's own feature profile), train and dev splits, {t} alone, one causal pass per chained
dialogue as in training. Prints one JSON line per checkpoint (percent).
"""

from __future__ import annotations

import json
import sys

import torch
from momke.extractors.profiles import load_profile
from momke.models.checkpoint import load_checkpoint
from momke.models.commands.default_recipe import (
    DATA_DIR,
    DEFAULT_RECIPE,
    default_cache_dir,
    extract_source,
    load_recipe,
    source_metrics,
    text_dialogues,
)


def main(argv=None) -> int:
    torch.set_num_threads(1)
    recipe = load_recipe(DEFAULT_RECIPE)
    for path in argv if argv is not None else sys.argv[1:]:
        model = load_checkpoint(path, device="cpu")
        profile = load_profile(model.config.feature_profile)
        corpora = {s: extract_source(s, text_dialogues(s, DATA_DIR / s, recipe), profile, default_cache_dir(),
                                     recipe["labels"], False) for s in ("meld", "emorynlp")}
        figures = {split: {s: {k: round(100 * v, 1) for k, v in r.items()} for s, r in source_metrics(model, corpora, split).items()}
                   for split in ("train", "valid")}
        print(json.dumps({"checkpoint": str(path), **figures}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
