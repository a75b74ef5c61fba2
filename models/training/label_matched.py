"""Label-matched pseudo-conversations: several modalities per utterance from unimodal corpora.

No corpus reachable here pairs a voice, a face and words of the same emotional moment, but each
modality has a labelled corpus of its own (RAVDESS speech, FER2013 faces, MELD/EmoryNLP lines).
Stage 2 must see utterances with several modalities at once, or its head never learns how far
to trust each path (it learnt to follow whichever path was present, so with two present the
most confident won). How items are drawn, for one split (train, valid or test; never mixed):

- A conversation is one RAVDESS actor (one voice over time, as live), with `length` utterances
  (uniform in `length_range`, long enough to cover the live context). Each utterance gets a
  label drawn uniformly from the classes (those every pool has: all of them on the real corpora;
  a --limit slice may lack some, and actors without one are left out) (independently: no label sequence to learn from the
  context), then one sample of that label from each modality's pool: a clip of the same actor,
  a face (any FER2013 person), a line of dialogue (any MELD/EmoryNLP speaker). Clips of the
  actor are reused when the conversation is longer than the actor's clips of that label.
- Disagreement: with probability `conflict_rate` an utterance gets one modality (chosen
  uniformly) replaced by a sample of another label, while its label stays. Real paths disagree
  (a polite line said angrily, a smile at bad news); without such items the head would learn
  that all paths always agree. On the held-out splits the paths disagree by themselves (each
  is wrong part of the time), so test and validation items use `conflict_rate=0`.
- Every utterance carries all three modalities; the training protocol (`random`) then hides
  subsets per conversation and per utterance, so every condition is trained.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from ..config import MODALITIES
from .data import Conversation

# pools[modality][group][label] -> [n, d] features; audio groups are speakers, others one group.
Pools = dict[str, dict[str, dict[int, np.ndarray]]]


def build_pools(audio: Iterable[Conversation], text: Iterable[Conversation], visual: Iterable[Conversation],
                speaker_of=lambda conversation: conversation.session) -> Pools:
    """Labelled features of each modality, de-duplicated by utterance id (RAVDESS training
    actors appear several times in the unimodal corpus, regrouped)."""
    pools: Pools = {}
    for modality, conversations in (("audio", audio), ("text", text), ("visual", visual)):
        index = MODALITIES.index(modality)
        rows: dict[str, dict[int, dict[str, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
        for conversation in conversations:
            group = str(speaker_of(conversation)) if modality == "audio" else "all"
            for i, (uid, label) in enumerate(zip(conversation.utterance_ids, conversation.labels)):
                if label >= 0 and conversation.present[i, index]:
                    rows[group][int(label)][uid] = conversation.features[modality][i]
        pools[modality] = {g: {lab: np.stack(list(v.values())) for lab, v in by_label.items()} for g, by_label in rows.items()}
    return pools


def label_matched_conversations(
    pools: Pools, num_classes: int, conversations_per_speaker: int, length_range: tuple[int, int],
    conflict_rate: float, seed: int, split: str, prefix: str = "matched",
) -> list[Conversation]:
    """Tri-modal pseudo-conversations drawn as the module docstring says."""
    if not 0.0 <= conflict_rate <= 1.0:
        raise ValueError(f"conflict_rate must be in [0, 1], got {conflict_rate}")
    low, high = length_range
    if not 1 <= low <= high:
        raise ValueError(f"length_range must be 1 <= low <= high, got {length_range}")
    # Classes every modality can show (all of them on the real corpora; a --limit slice may lack
    # some), and speakers with every one of those (all RAVDESS actors have them).
    classes = set(range(num_classes))
    for modality in ("text", "visual"):
        classes &= set(pools[modality].get("all", {}))
    speakers = sorted(g for g, by_label in pools["audio"].items() if classes and classes <= set(by_label))
    if not speakers:
        raise ValueError(f"no class has samples in every modality's pool and a speaker with all of them "
                         f"(classes in the text and visual pools: {sorted(classes)})")
    drawable = np.array(sorted(classes))
    rng = np.random.default_rng(seed)
    out = []
    for speaker in speakers:
        for k in range(conversations_per_speaker):
            length = int(rng.integers(low, high + 1))
            labels = drawable[rng.integers(0, len(drawable), length)]
            drawn = {m: [] for m in MODALITIES}
            for label in labels:
                conflict = MODALITIES[rng.integers(3)] if rng.random() < conflict_rate else None
                for m in MODALITIES:
                    source = int(label)
                    if m == conflict and len(drawable) > 1:  # another class, uniformly
                        position = int(np.searchsorted(drawable, label))
                        source = int(drawable[(position + rng.integers(1, len(drawable))) % len(drawable)])
                    group = speaker if m == "audio" else "all"
                    pool = pools[m][group][source]
                    drawn[m].append(pool[rng.integers(len(pool))])
            out.append(Conversation(
                dialogue_id=f"{prefix}-{split}-{speaker}-{k}",
                utterance_ids=[f"{prefix}-{split}-{speaker}-{k}-{i}" for i in range(length)],
                speakers=[str(speaker)] * length,
                features={m: np.stack(v).astype(np.float32) for m, v in drawn.items()},
                present=np.ones((length, len(MODALITIES)), dtype=bool),
                labels=labels.astype(np.int64), split=split, session=speaker,
            ))
    return out


def conflict_items(labels: Sequence[int], per_modality: dict[str, Sequence[int]], fused: Sequence[int]) -> dict:
    """Where two paths disagree and exactly one of them is right: how often the fused label is
    the right one, per pair of modalities (the evidence-following check)."""
    labels = np.asarray(labels)
    fused = np.asarray(fused)
    table = {}
    names = list(per_modality)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = np.asarray(per_modality[first]), np.asarray(per_modality[second])
            one_right = (a != b) & ((a == labels) ^ (b == labels))
            n = int(one_right.sum())
            table[f"{first}-{second}"] = {
                "items": n,
                "fused_right": float((fused[one_right] == labels[one_right]).mean()) if n else float("nan"),
                "first_right_share": float((a[one_right] == labels[one_right]).mean()) if n else float("nan"),
            }
    return table
