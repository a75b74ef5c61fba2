"""How much of a validation difference between two checkpoints is noise? (issue 19, part 3)

    python benchmarks/checkpoint_noise.py --before DIR --after DIR [--out results/checkpoint_noise]

Two kinds of noise beside checkpoint_validation.py's table, on the same VALIDATION sets:
- data: a paired bootstrap of the difference (after - before) in UA and WA, resampling whole
  dialogues (speech pseudo-dialogues, text dialogues, label-matched conversations; 1,000 draws,
  95 % interval). Label-matched conversations reuse the same validation clips, faces and lines,
  so their interval is narrower than the clips alone would give.
- training: each ensemble member alone (members differ only by seed), so the spread between
  members shows how far one draw of training moves a figure, and the ensemble's own row shows
  what averaging them adds.
Validation only. Writes <out>.txt and <out>.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from checkpoint_validation import (
    before_after_corpora,  # benchmarks/ is on the path when run as a script
)
from momke.models.checkpoint import load_checkpoint
from momke.models.commands.default_recipe import matched_conversations, source_modality
from momke.models.metrics import score
from momke.models.training.trainer import condition_name, condition_presence, predict

RESULTS = Path(__file__).resolve().parent / "results"
MATCHED = (("audio",), ("text",), ("visual",), ("audio", "text", "visual"))
DRAWS = 1000


def validation_sets(recipe, corpora) -> dict[str, tuple[list, tuple[str, ...]]]:
    sets = {f"{source} {{{condition_name((source_modality(source),))}}}":
            ([c for c in corpus.split("valid") if (c.labels >= 0).any()], (source_modality(source),))
            for source, corpus in corpora.items()}
    matched = matched_conversations(recipe, corpora, "valid")
    sets.update({f"label-matched {{{condition_name(c)}}}": (matched, c) for c in MATCHED})
    return {name: value for name, value in sets.items() if value[0]}


def per_dialogue(model, conversations, condition) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, predicted class) of each dialogue's scored utterances under the condition."""
    out = []
    for conversation in conversations:
        labels, logits = predict(model, [conversation], [condition_presence(conversation, condition)])
        out.append((labels, logits.argmax(-1)))
    return out


def ua_wa(labels: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    recalls = [np.mean(predicted[labels == k] == k) for k in np.unique(labels)]
    return float(np.mean(recalls)), float(np.mean(predicted == labels))


def paired_bootstrap(before, after, rng) -> dict[str, float]:
    """before/after: per-dialogue (labels, predicted) of the same dialogues."""
    def difference(indices):
        labels = np.concatenate([before[i][0] for i in indices])
        ua_b, wa_b = ua_wa(labels, np.concatenate([before[i][1] for i in indices]))
        ua_a, wa_a = ua_wa(labels, np.concatenate([after[i][1] for i in indices]))
        return 100 * (ua_a - ua_b), 100 * (wa_a - wa_b)

    observed = difference(range(len(before)))
    draws = np.array([difference(rng.integers(0, len(before), len(before))) for _ in range(DRAWS)])
    (ua_lo, wa_lo), (ua_hi, wa_hi) = np.percentile(draws, [2.5, 97.5], axis=0)
    return {"d_ua": observed[0], "ua_95": [ua_lo, ua_hi], "d_wa": observed[1], "wa_95": [wa_lo, wa_hi]}


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    loaded = before_after_corpora(argv, __doc__, RESULTS / "checkpoint_noise")
    if loaded is None:
        return 0
    args, recipe, corpora = loaded
    # Each side reads its own features (its checkpoint's profile); the sets hold the same dialogues in the same order.
    sets = {side: validation_sets(recipe, corpora[side]) for side in ("before", "after")}
    models = {name: load_checkpoint(path, device="cpu") for name, path in (("before", args.before), ("after", args.after))}
    rng = np.random.default_rng(0)
    bootstrap, members = {}, {}
    for name, (_, condition) in sets["before"].items():
        bootstrap[name] = paired_bootstrap(*(per_dialogue(models[k], sets[k][name][0], condition) for k in ("before", "after")), rng)
    for side, model in models.items():
        rows = [("ensemble", model)] + [(f"member {i}", m) for i, m in enumerate(getattr(model, "members", []))]
        for label, one in rows:
            figures = {}
            for name, (conversations, condition) in sets[side].items():
                labels, logits = predict(one, conversations, [condition_presence(c, condition) for c in conversations])
                figures[name] = 100 * score("classification", labels, logits)["ua"]
            members[f"{side} {label}"] = figures
    lines = [
        "# Two checkpoints on validation: the difference with its data noise, and each member alone",
        f"command: python benchmarks/checkpoint_noise.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"before: {args.before}; after: {args.after}; {time.time() - started:.0f} s wall",
        "",
        f"## after - before, paired bootstrap over dialogues ({DRAWS} draws, 95 % interval), points",
        f"{'set (validation)':<32} {'dUA':>6} {'95 %':>16} {'dWA':>6} {'95 %':>16}",
    ]
    for name, b in bootstrap.items():
        lines.append(f"{name:<32} {b['d_ua']:+6.1f} [{b['ua_95'][0]:+5.1f}, {b['ua_95'][1]:+5.1f}] "
                     f"{b['d_wa']:+6.1f} [{b['wa_95'][0]:+5.1f}, {b['wa_95'][1]:+5.1f}]")
    names = list(sets["before"])
    lines += ["", "## UA % of each ensemble and of each member alone (seeds differ)",
              "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, figures in members.items():
        lines.append(f"| {label} | " + " | ".join(f"{figures[n]:.1f}" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".txt").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"before": str(args.before), "after": str(args.after), "bootstrap": bootstrap, "members_ua": members}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
