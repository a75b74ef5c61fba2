"""Does the fused prediction follow the evidence? The shipped checkpoint on held-out data.

    python benchmarks/fusion.py [--checkpoint DIR] [--cache DIR] [--seeds 0 1 2]

Test items are label-matched tri-modal pseudo-conversations built from the held-out parts only
(RAVDESS actors 17-20 + the FER2013 public-test half kept for testing (the other half validates:
see the recipe) + MELD/EmoryNLP test lines; drawn as in
training, models/training/label_matched.py, without swapped modalities), several seeds. Reports:
- the seven conditions, WA / UA (targets: {a,t,v} >= 85 WA and >= best single path + 10; no
  condition below its best member);
- conflicts: where two paths disagree and exactly one is right, how often the fused label is the
  right one (target >= 60 %);
- calibration: ECE (15 bins) of each path and of the fused output per condition, with the
  checkpoint's temperatures and without (target <= 0.06 per path);
- accuracy by position in a conversation (1-110) for text (MELD/EmoryNLP test dialogues back to
  back) and audio (one unseen actor talking on), streamed as live with the checkpoint's context
  limit (target: positions 60-110 within 2 points of 1-10);
- FER2013 public test (its test half), 4 classes: MoMKE {v} on shuffled pseudo-dialogues against the
  mini-Xception's own 4-class argmax (the last 7 visual features are its probabilities).
Features come from the recipe's cache. Writes results/fusion.{txt,json}.
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
from momke.models.calibration import (
    expected_calibration_error,
    fused_temperature,
    modality_temperature,
    softmax,
)
from momke.models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from momke.models.commands.default_recipe import (
    FER_CLASSES,
    add_corpus_options,
    build_corpora,
    matched_conversations,
    recipe_of,
)
from momke.models.config import MODALITIES
from momke.models.metrics import classification_metrics
from momke.models.streaming import StreamingMoMKE
from momke.models.training.data import Conversation
from momke.models.training.label_matched import conflict_items
from momke.models.training.trainer import CONDITIONS, condition_name, condition_presence, predict

RESULTS = Path(__file__).resolve().parent / "results"
BUCKETS = ((1, 10), (11, 30), (31, 60), (60, 110))


def conditions_and_conflicts(model, conversations: list[Conversation]) -> dict:
    config = model.config
    out: dict = {"conditions": {}, "ece_fused": {}, "ece_fused_uncalibrated": {}, "ece_paths": {}, "ece_paths_uncalibrated": {}}
    for condition in CONDITIONS:
        name = condition_name(condition)
        labels, logits = predict(model, conversations, [condition_presence(c, condition) for c in conversations])
        out["conditions"][name] = {**classification_metrics(labels, logits.argmax(-1)), "n": len(labels)}
        out["ece_fused"][name] = expected_calibration_error(softmax(logits, fused_temperature(config, condition)), labels)
        out["ece_fused_uncalibrated"][name] = expected_calibration_error(softmax(logits), labels)
    full = [condition_presence(c, MODALITIES) for c in conversations]
    labels, fused = predict(model, conversations, full)
    paths = {}
    for modality in config.experts:
        _, logits = predict(model, conversations, full, expert=modality)
        paths[modality] = logits.argmax(-1)
        out["ece_paths"][modality] = expected_calibration_error(softmax(logits, modality_temperature(config, modality)), labels)
        out["ece_paths_uncalibrated"][modality] = expected_calibration_error(softmax(logits), labels)
        out.setdefault("path_accuracy", {})[modality] = float((paths[modality] == labels).mean())
    out["conflicts"] = conflict_items(labels, paths, fused.argmax(-1))
    return out


def stream_accuracy(model, conversations: list[Conversation], modality: str) -> dict[str, float]:
    """Accuracy by position, streamed one utterance at a time with the checkpoint's context limit."""
    hits: dict[int, list[bool]] = {}
    for conversation in conversations:  # each conversation its own session
        for position, hit in stream_hits(model, [conversation], modality):
            hits.setdefault(position, []).append(hit)
    result = {}
    for low, high in BUCKETS:
        values = [h for p in range(low, high + 1) for h in hits.get(p, [])]
        result[f"{low}-{high}"] = float(np.mean(values)) if values else float("nan")
        result[f"n {low}-{high}"] = len(values)
    return result


def same_dialogues_late(model, dialogues: list[Conversation], offset: int = 84, seed: int = 0) -> dict[str, float]:
    """The same test dialogues scored from position 1, and again after `offset` utterances of
    other test dialogues (so they sit at positions offset+1...): what a long session does to the
    very same words, content held fixed."""
    rng = np.random.default_rng(seed)
    lines = [(c, i) for c in dialogues for i in range(len(c))]
    early, late = [], []
    for dialogue in dialogues:
        filler_rows = [lines[j] for j in rng.choice(len(lines), offset, replace=False)]
        filler = Conversation(
            "filler", [c.utterance_ids[i] for c, i in filler_rows], [c.speakers[i] for c, i in filler_rows],
            {"text": np.stack([c.features["text"][i] for c, i in filler_rows])},
            np.array([[False, True, False]] * offset), np.full(offset, -1))
        early += [hit for _, hit in stream_hits(model, [dialogue], "text")]
        late += [hit for _, hit in stream_hits(model, [filler, dialogue], "text")]  # the filler is unlabelled
    return {"positions_from_1": float(np.mean(early)), f"positions_from_{offset + 1}": float(np.mean(late)), "n": len(early)}


def stream_hits(model, conversations: list[Conversation], modality: str) -> list[tuple[int, bool]]:
    """(position in its conversation from 1, right or wrong) per labelled utterance, streaming the
    conversations back to back in one session with the checkpoint's context limit."""
    stream = StreamingMoMKE(model, max_context=model.config.max_context)
    index = MODALITIES.index(modality)
    hits = []
    for conversation in conversations:
        for i in range(len(conversation)):
            if conversation.present[i, index]:
                output = stream.step({modality: conversation.features[modality][i]})
                if conversation.labels[i] >= 0:
                    hits.append((i + 1, int(np.argmax(output.probabilities)) == int(conversation.labels[i])))
    return hits


def long_text_streams(conversations: list[Conversation], length: int = 110) -> list[Conversation]:
    """Test dialogues back to back, cut into conversations of `length` utterances."""
    rows = [(c, i) for c in conversations for i in range(len(c))]
    streams = []
    for start in range(0, len(rows) - length + 1, length):
        part = rows[start : start + length]
        streams.append(Conversation(
            f"text-stream-{start}", [c.utterance_ids[i] for c, i in part], [c.speakers[i] for c, i in part],
            {"text": np.stack([c.features["text"][i] for c, i in part])},
            np.array([[False, True, False]] * length), np.array([c.labels[i] for c, i in part])))
    return streams


def fer_comparison(model, fer_test: list[Conversation], labels: list[str], recipe: dict, seed: int = 0) -> dict:
    """MoMKE {v} on shuffled pseudo-dialogues of 8 faces vs mini-Xception's 4-class argmax."""
    features = np.concatenate([c.features["visual"] for c in fer_test])
    truth = np.concatenate([c.labels for c in fer_test])
    order = np.random.default_rng(seed).permutation(len(truth))
    features, truth = features[order], truth[order]
    shuffled = [Conversation(f"fer-shuffled-{k}", [str(j) for j in range(k, min(k + 8, len(truth)))], [""] * len(truth[k : k + 8]),
                             {"visual": features[k : k + 8]}, np.tile([False, False, True], (len(truth[k : k + 8]), 1)), truth[k : k + 8])
                for k in range(0, len(truth), 8)]
    got, logits = predict(model, shuffled)
    mapping = recipe["label_maps"]["fer2013"]
    columns = [FER_CLASSES.index(next(k for k, v in mapping.items() if v == label)) for label in labels]
    xception = features[:, -len(FER_CLASSES):][:, columns].argmax(-1)
    return {"momke_v": classification_metrics(got, logits.argmax(-1)), "mini_xception_4class": classification_metrics(truth, xception),
            "n": len(truth)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    add_corpus_options(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "fusion")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"SKIP: {args.data} not found (the shared corpora)")
        return 0
    torch.set_num_threads(1)
    started = time.time()
    model = load_checkpoint(args.checkpoint, device="cpu")
    recipe = recipe_of(model.config)
    corpora = build_corpora(recipe, args.data, args.cache, progress=False)
    runs = []
    for seed in args.seeds:
        seeded = {**recipe, "label_matched": {**recipe["label_matched"], "seed": 1000 + seed}}
        runs.append(conditions_and_conflicts(model, matched_conversations(seeded, corpora, "test")))
    text_test = [c for s in ("meld", "emorynlp") for c in corpora[s].split("test")]
    long_audio = {**recipe, "label_matched": {**recipe["label_matched"], "length_range": [110, 110],
                                              "conversations_per_speaker": {"test": 3}, "seed": 2000}}
    audio_streams = [Conversation(c.dialogue_id, c.utterance_ids, c.speakers, {"audio": c.features["audio"]},
                                  c.present & np.array([True, False, False]), c.labels)
                     for c in matched_conversations(long_audio, corpora, "test")]
    positions = {"text": stream_accuracy(model, long_text_streams(text_test), "text"),
                 "audio": stream_accuracy(model, audio_streams, "audio"),
                 "text_same_dialogues": same_dialogues_late(model, [c for c in text_test if (c.labels >= 0).any()])}
    fer = fer_comparison(model, corpora["fer2013"].split("test"), list(model.config.labels), recipe)
    report = {"command": "python benchmarks/fusion.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "checkpoint": str(args.checkpoint), "seeds": args.seeds, "runs": runs, "positions": positions, "fer2013": fer,
              "machine": f"{platform.machine()} CPU, torch threads 1", "wall_s": round(time.time() - started)}
    text = summary(report)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text(text + "\n", encoding="utf-8")
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


def _mean(runs: list[dict], *keys: str) -> float:
    values = []
    for run in runs:
        value = run
        for key in keys:
            value = value[key]
        values.append(value)
    return float(np.nanmean(values))


def summary(report: dict) -> str:
    runs = report["runs"]
    lines = ["# Fusion on held-out label-matched items (mean over seeds " + ", ".join(map(str, report["seeds"])) + ")",
             f"command: {report['command'].strip()}", f"checkpoint: {report['checkpoint']}; {report['machine']}; {report['wall_s']} s", "",
             f"{'condition':<10} {'n':>6} {'WA':>6} {'UA':>6} {'ECE':>6} {'ECE(T=1)':>9}"]
    for name in runs[0]["conditions"]:
        lines.append(f"{name:<10} {runs[0]['conditions'][name]['n']:>6} {100 * _mean(runs, 'conditions', name, 'wa'):6.2f} "
                     f"{100 * _mean(runs, 'conditions', name, 'ua'):6.2f} {_mean(runs, 'ece_fused', name):6.3f} "
                     f"{_mean(runs, 'ece_fused_uncalibrated', name):9.3f}")
    lines += ["", f"{'path (all present)':<20} {'acc':>6} {'ECE':>6} {'ECE(T=1)':>9}"]
    for modality in runs[0]["ece_paths"]:
        lines.append(f"{modality:<20} {100 * _mean(runs, 'path_accuracy', modality):6.2f} {_mean(runs, 'ece_paths', modality):6.3f} "
                     f"{_mean(runs, 'ece_paths_uncalibrated', modality):9.3f}")
    lines += ["", "conflicts (two paths disagree, exactly one right): items, fused right, first path right"]
    for pair in runs[0]["conflicts"]:
        lines.append(f"{pair:<14} {sum(r['conflicts'][pair]['items'] for r in runs):>6} "
                     f"{100 * _mean(runs, 'conflicts', pair, 'fused_right'):6.1f} % {100 * _mean(runs, 'conflicts', pair, 'first_right_share'):6.1f} %")
    lines += ["", "accuracy by position (streamed, context limited as live):"]
    same = report["positions"]["text_same_dialogues"]
    lines.append(f"text, the same {same['n']} test utterances: from position 1 {100 * same['positions_from_1']:.1f}, "
                 f"after 84 other lines {100 * same['positions_from_85']:.1f}")
    for modality, result in report["positions"].items():
        if modality == "text_same_dialogues":
            continue
        lines.append(f"{modality:<6} " + "  ".join(f"{b[0]}-{b[1]}: {100 * result[f'{b[0]}-{b[1]}']:5.1f} (n {result[f'n {b[0]}-{b[1]}']})"
                                                   for b in BUCKETS))
    fer = report["fer2013"]
    lines += ["", (f"FER2013 public test (test half), 4 classes (n {fer['n']}): MoMKE {{v}} WA {100 * fer['momke_v']['wa']:.2f} UA "
              f"{100 * fer['momke_v']['ua']:.2f}; mini-Xception argmax WA {100 * fer['mini_xception_4class']['wa']:.2f} "
              f"UA {100 * fer['mini_xception_4class']['ua']:.2f}")]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
