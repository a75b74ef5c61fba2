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
    """(labels, log-probabilities [n, C]) of every labelled utterance with text, one live session
    per dialogue.

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
    shifted = outputs - outputs.max(-1, keepdims=True)  # logits -> log-probabilities
    all_labels, log_probabilities = list(labels.astype(int)), list(shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))
    stream = StreamingMoMKE(model)
    for c in (c for c in kept if len(c) > model.config.max_context):
        stream.reset()
        for i in range(len(c)):
            output = stream.step({"text": c.features["text"][i]})
            if c.labels[i] >= 0:
                all_labels.append(int(c.labels[i]))
                log_probabilities.append(np.log(np.maximum(np.asarray(output.probabilities, dtype=np.float64), 1e-12)))
    return np.array(all_labels), np.array(log_probabilities)


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
    parser.add_argument("--prior-shifts", type=float, nargs="+", metavar="B",
                        help="diagnostic: also score each clean set with B added to neutral's log-probability, and "
                             "the best shift of every class's log-prior chosen on the set itself (an upper bound "
                             "of what calibration could give); written to <out>_prior_shift.txt")
    args = parse_benchmark_args(parser, argv, RESULTS / "text_conversation")
    if args is None:
        return 0
    started = time.time()
    model = load_checkpoint(args.checkpoint, device="cpu")
    # The sets and the noise come from this recipe, whatever the checkpoint; the features from the checkpoint's profile.
    recipe = {**load_recipe(args.recipe), "feature_profile": model.config.feature_profile}
    names = list(model.config.labels)
    outputs = {name: streamed(model, conversations) for name, conversations in text_sets(recipe, args.data, args.cache).items()}
    results = {name: scores(labels, log_probabilities.argmax(-1), names)
               for name, (labels, log_probabilities) in outputs.items()}
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
    if args.prior_shifts:
        clean = {name: value for name, value in outputs.items() if name.endswith("clean")}
        shift_text = "\n".join(lines[:5] + [""] + prior_shift_lines(clean, names, args.prior_shifts))
        print(shift_text)
        Path(f"{args.out}_prior_shift.txt").write_text(shift_text + "\n", encoding="utf-8")
    return 0


def prior_shift_lines(outputs: dict[str, tuple[np.ndarray, np.ndarray]], names: list[str], shifts: list[float]) -> list[str]:
    """WA / UA / recall of each set with neutral's log-probability shifted, and the best WA any shift of
    the class log-priors gives on the set itself (a grid of -2..2 in steps of 0.25 for every class but
    neutral; neutral's own shift is the same as shifting all the others the other way)."""
    neutral = names.index("neutral")
    grid = np.arange(-2.0, 2.001, 0.25)
    lines = [f"{'set':<62} {'neutral +B':>10} {'WA':>6} {'UA':>6}  recall {' / '.join(names)}"]
    for name, (labels, log_probabilities) in outputs.items():
        for shift in [0.0, *shifts]:
            moved = log_probabilities.copy()
            moved[:, neutral] += shift
            r = scores(labels, moved.argmax(-1), names)
            recall = " / ".join(f"{100 * r['recall'].get(k, float('nan')):.1f}" for k in names)
            lines.append(f"{name:<62} {shift:>+10.2f} {100 * r['wa']:6.2f} {100 * r['ua']:6.2f}  {recall}")
        others = [k for k in range(len(names)) if k != neutral]
        best, best_shift = -1.0, None
        for values in np.stack(np.meshgrid(*[grid] * len(others)), -1).reshape(-1, len(others)):
            offset = np.zeros(len(names))
            offset[others] = values
            wa = float(np.mean((log_probabilities + offset).argmax(-1) == labels))
            if wa > best:
                best, best_shift = wa, offset
        shown = ", ".join(f"{names[k]} {best_shift[k]:+.2f}" for k in others)
        lines.append(f"{name:<62} {'best':>10} {100 * best:6.2f}  (chosen on this set itself: {shown})")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
