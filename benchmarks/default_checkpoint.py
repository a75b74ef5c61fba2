"""The shipped checkpoint (assets/checkpoints/momke-whisper-4class), per modality, on held-out data.

    python benchmarks/default_checkpoint.py [--cache DIR] [--checkpoint DIR]

- RAVDESS actors 17-20, audio only ({a}); target >= 65 % UA (4 classes).
- MELD test, text only ({t}), the 4-class subset: WA / UA / weighted F1. EmoryNLP test likewise.
- FER2013 public test (the half the recipe keeps for testing), visual only ({v}), 4 classes;
  target >= 70 % WA. Scored in the recipe's pseudo-dialogues of 8 faces (causal context over earlier random faces) and one face
  at a time.
- Cross-corpus text: the IEMOCAP transcripts (never seen in training), all 5 sessions, {t}.
Features come from the recipe's cache (extracted when absent, which takes a while on a CPU).
Writes results/default_checkpoint.{txt,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from momke.models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from momke.models.commands.default_recipe import (
    add_corpus_options,
    build_corpora,
    extract_source,
    recipe_of,
    source_modality,
)
from momke.models.training.data import Conversation
from momke.models.training.trainer import condition_presence, predict

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"ravdess": ("ua", 0.65), "fer2013": ("wa", 0.70)}


def scores(model, conversations: list[Conversation], modality: str) -> dict:
    """WA / UA / weighted F1 and the confusion matrix (rows: true, columns: predicted)."""
    from momke.models.metrics import classification_metrics

    conversations = [c for c in conversations if (c.labels >= 0).any()]
    presence = [condition_presence(c, (modality,)) for c in conversations]
    labels, outputs = predict(model, conversations, presence)
    predictions = outputs.argmax(-1)
    classes = len(model.config.labels)
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (labels.astype(int), predictions), 1)
    return {**classification_metrics(labels, predictions), "n": len(labels), "confusion": confusion.tolist()}


def single_utterances(conversations: list[Conversation]) -> list[Conversation]:
    """Every utterance as its own one-utterance dialogue (no context)."""
    out = []
    for c in conversations:
        for i in range(len(c)):
            out.append(Conversation(f"{c.dialogue_id}#{i}", [c.utterance_ids[i]], [c.speakers[i]],
                                    {m: x[i : i + 1] for m, x in c.features.items()}, c.present[i : i + 1],
                                    c.labels[i : i + 1], c.split))
    return out


def iemocap_corpus(recipe: dict, cache: Path, data: Path):
    from momke.extractors.profiles import load_profile
    from momke.models.commands.corpus_readers import read_corpus

    dialogues = read_corpus(data / "iemocap4_transcripts.jsonl", "iemocap")
    profile = load_profile(recipe["feature_profile"])
    return extract_source("iemocap", dialogues, profile, cache, recipe["labels"], progress=False, name="iemocap-crosscorpus")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    add_corpus_options(parser)
    parser.add_argument("--out", type=Path, default=RESULTS / "default_checkpoint")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"SKIP: {args.data} not found (the shared corpora)")
        return 0
    torch.set_num_threads(1)
    started = time.time()
    model = load_checkpoint(args.checkpoint, device="cpu")
    meta = model.config.metadata
    recipe = recipe_of(model.config)
    if list(recipe["labels"]) != list(model.config.labels):
        raise SystemExit(f"recipe labels {recipe['labels']} differ from the checkpoint's {model.config.labels}")
    corpora = build_corpora(recipe, args.data, args.cache, progress=False)
    results = {}
    for source, corpus in corpora.items():
        if any((c.labels >= 0).any() for c in corpus.split("test")):  # DailyDialog and the noisy copies have no test part here
            results[f"{source} test {{{source_modality(source)[0]}}}"] = scores(model, corpus.split("test"), source_modality(source))
    results["fer2013 test {v}, one face at a time"] = scores(model, single_utterances(corpora["fer2013"].split("test")), "visual")
    results["ravdess test {a}, one clip at a time"] = scores(model, single_utterances(corpora["ravdess"].split("test")), "audio")
    iemocap = iemocap_corpus(recipe, args.cache, args.data)
    results["iemocap transcripts {t} (cross-corpus, 5 sessions)"] = scores(model, iemocap.conversations, "text")

    labels = list(model.config.labels)
    lines = [
        "# Shipped checkpoint, per modality on held-out data",
        f"command: python benchmarks/default_checkpoint.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        (f"checkpoint: {args.checkpoint.name} (profile {model.config.feature_profile}, dims {list(model.config.feature_dims)}, "
         f"context {model.config.context_mode}, protocol {meta.get('protocol')}); labels {labels}"),
        f"machine: {platform.machine()} CPU, torch threads 1; {time.time() - started:.0f} s wall (features from the cache)",
        "",
        f"{'set':<52} {'n':>5} {'WA':>6} {'UA':>6} {'wF1':>6}  target",
    ]
    for name, r in results.items():
        source = name.split()[0]
        target = ""
        if source in TARGETS and "at a time" not in name:
            key, value = TARGETS[source]
            target = f"{key.upper()} >= {100 * value:.0f}: {'met' if r[key] >= value else 'NOT met'}"
        lines.append(f"{name:<52} {r['n']:>5} {100 * r['wa']:6.2f} {100 * r['ua']:6.2f} {100 * r['f1']:6.2f}  {target}")
    lines += ["", "confusion matrices (rows true, columns predicted, order " + ", ".join(labels) + "):"]
    for name, r in results.items():
        lines.append(f"{name}: {r['confusion']}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text(text + "\n", encoding="utf-8")
    Path(f"{args.out}.json").write_text(json.dumps({"command": lines[1], "results": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
