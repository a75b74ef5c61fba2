"""The text path {t} on conversations, streamed as the app streams them, clean and with ASR-like noise.

    python benchmarks/text_conversation.py [--checkpoint DIR] [--out results/text_conversation]

Every line is written as the live speech-to-text writes it (models/training/asr_text.py
whisper_style); the noisy copy adds transcription-like errors at the recipe's word error rate
(asr_noise, per-utterance rates around 21.4 %, the default ASR's measured WER). Each dialogue is
one live session: its utterances go one at a time, in conversation order, through
`StreamingMoMKE` (the app's own streaming inference: causal context, rolled past the
checkpoint's max_context), unlabelled lines included as context; only labelled lines are scored.

Sets: DailyDialog valid, MELD dev, EmoryNLP dev (VALIDATION: the recipe chose on these), MELD
test, EmoryNLP test (held out), IEMOCAP transcripts, 5 sessions (cross-corpus: never trained on).
Per set: WA, UA, per-class recall, and the always-"neutral" baseline.
Writes <out>.txt and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from momke.models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from momke.models.commands.default_recipe import (
    NOISY,
    extract_source,
    load_recipe,
    noisy_dialogues,
    parse_benchmark_args,
    text_dialogues,
)
from momke.models.config import MODALITIES
from momke.models.streaming import StreamingMoMKE

RESULTS = Path(__file__).resolve().parent / "results"
SETS = (("dailydialog", "valid"), ("meld", "valid"), ("emorynlp", "valid"), ("meld", "test"), ("emorynlp", "test"),
        ("iemocap", None))


def streamed(model, conversations) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of every labelled utterance with text, one live session per dialogue.

    A dialogue no longer than the checkpoint's max_context goes through one causal forward pass
    (equal to stepping it, tests/test_streaming.py); a longer one is stepped through
    StreamingMoMKE, whose context rolls as the app's does."""
    from momke.models.training.trainer import condition_presence, predict

    index = MODALITIES.index("text")
    # Lines without words send nothing to the text path: they are not in the context either.
    kept = [_rows(c, c.present[:, index]) for c in conversations]
    kept = [c for c in kept if len(c)]
    short = [c for c in kept if len(c) <= model.config.max_context]
    labels, outputs = predict(model, short, [condition_presence(c, ("text",)) for c in short])
    all_labels, predictions = list(labels.astype(int)), list(outputs.argmax(-1))
    stream = StreamingMoMKE(model)
    for c in (c for c in kept if len(c) > model.config.max_context):
        stream.reset()
        for i in range(len(c)):
            output = stream.step({"text": c.features["text"][i]})
            if c.labels[i] >= 0:
                all_labels.append(int(c.labels[i]))
                predictions.append(int(np.argmax(output.probabilities)))
    return np.array(all_labels), np.array(predictions)


def _rows(c, keep: np.ndarray):
    from dataclasses import replace

    return replace(c, utterance_ids=[u for u, k in zip(c.utterance_ids, keep) if k],
                   speakers=[s for s, k in zip(c.speakers, keep) if k],
                   features={m: x[keep] for m, x in c.features.items()}, present=c.present[keep], labels=c.labels[keep])


def scores(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> dict:
    from momke.models.metrics import classification_metrics, confusion_matrix, per_class_recall

    recall = per_class_recall(labels, predictions)
    neutral = names.index("neutral")
    return {
        **classification_metrics(labels, predictions), "n": len(labels),
        "recall": {names[k]: v for k, v in recall.items()},
        "always_neutral_wa": float(np.mean(labels == neutral)),
        "confusion": confusion_matrix(labels, predictions, len(names)).tolist(),
    }


def iemocap_dialogues(data: Path) -> list:
    """IEMOCAP's transcripts (4 classes, excited -> happy), written as the live ASR writes them, as "test"."""
    from dataclasses import replace

    from momke.models.commands.corpus_readers import map_labels, read_corpus
    from momke.models.training.asr_text import whisper_style

    mapping = {"happy": "happy", "excited": "happy", "sad": "sad", "neutral": "neutral", "angry": "angry"}
    dialogues = map_labels(read_corpus(data / "iemocap4_transcripts.jsonl", "iemocap"), mapping)
    return [replace(d, id=f"iemocap-{d.id}", split="test",
                    utterances=[replace(u, transcript=whisper_style(u.transcript or "")) for u in d.utterances])
            for d in dialogues]


def text_sets(recipe: dict, data: Path, cache: Path) -> dict[str, list]:
    """{set name: conversations} for every set, clean and noisy (features from the recipe's cache)."""
    from momke.extractors.profiles import load_profile

    profile = load_profile(recipe["feature_profile"])
    labels = recipe["labels"]
    noise = {**recipe["text_noise"], "splits": ["valid", "test"]}
    sets = {}
    for source, split in SETS:
        if source == "iemocap":
            dialogues = iemocap_dialogues(data)
            name, shown = "iemocap-crosscorpus-whisperstyle", "IEMOCAP transcripts, 5 sessions (cross-corpus)"
        else:
            dialogues = [d for d in text_dialogues(source, data / source, recipe) if d.split == split]
            name = f"{source}-{split}-whisperstyle"
            shown = f"{source} {'dev' if split == 'valid' and source != 'dailydialog' else split}"
            shown += " (VALIDATION)" if split == "valid" else ""
        clean = extract_source(source, dialogues, profile, cache, labels, progress=False, name=f"bench-{name}")
        noisy = extract_source(source, noisy_dialogues(dialogues, noise, ["valid", "test"]), profile, cache, labels,
                               progress=False, name=f"bench-{name}{NOISY}")
        sets[f"{shown}, clean"] = clean.conversations
        sets[f"{shown}, ASR-like noise"] = noisy.conversations
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    args = parse_benchmark_args(parser, argv, RESULTS / "text_conversation")
    if args is None:
        return 0
    started = time.time()
    model = load_checkpoint(args.checkpoint, device="cpu")
    # The sets and the noise come from this recipe, whatever the checkpoint; the features from the checkpoint's profile.
    recipe = {**load_recipe(args.recipe), "feature_profile": model.config.feature_profile}
    names = list(model.config.labels)
    results = {name: scores(*streamed(model, conversations), names)
               for name, conversations in text_sets(recipe, args.data, args.cache).items()}
    trained_on = model.config.metadata.get("data", {}).get("sources", {})
    lines = [
        "# The text path {t} on conversations, streamed as the app streams them (StreamingMoMKE, causal context)",
        f"command: python benchmarks/text_conversation.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"checkpoint: {args.checkpoint} (text trained on: {', '.join(s for s in trained_on if 'text' in str(trained_on[s]))})",
        f"noise: recipe text_noise {json.dumps(recipe['text_noise'])} (the test copies seeded by dialogue id)",
        f"machine: {platform.machine()} CPU, torch threads 1; {time.time() - started:.0f} s wall",
        "",
        f"{'set':<62} {'n':>5} {'WA':>6} {'UA':>6}  {'recall ' + ' / '.join(names):<40} always-neutral WA",
    ]
    for name, r in results.items():
        recall = " / ".join(f"{100 * r['recall'].get(k, float('nan')):.1f}" for k in names)
        lines.append(f"{name:<62} {r['n']:>5} {100 * r['wa']:6.2f} {100 * r['ua']:6.2f}  {recall:<40} {100 * r['always_neutral_wa']:.2f}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text(text + "\n", encoding="utf-8")
    Path(f"{args.out}.json").write_text(json.dumps({"command": lines[1], "checkpoint": str(args.checkpoint), "results": results},
                                                   indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
