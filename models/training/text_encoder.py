"""Fine-tuning the MiniLM text encoder on 4-class emotion with a low-rank delta (issue 19).

Lines come from the text corpora's training dialogues, written as the live speech-to-text writes
them (`whisper_style`) plus one transcription-like noisy copy of each (`asr_noise`), labelled
with a recipe's label map. A small head (384 -> hidden -> classes) reads the encoder's mean-pooled,
unit-length sentence vector, as MoMKE later does; the loss is class-weighted cross-entropy
(inverse frequency). Only the low-rank factors (extractors/minilm_delta.py) and the head train;
token ids are computed once and batches are length-sorted, so an epoch fits a 2-core CPU.

The head is a probe: it is thrown away, the delta is kept (merged into the encoder at load).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LineSet:
    """Texts and their class indices (one set: a corpus split, clean or noisy)."""

    texts: list[str]
    labels: np.ndarray


def labelled_lines(dialogues: Sequence, labels: Sequence[str]) -> LineSet:
    """Every utterance with words and one of `labels` (already mapped) -> a LineSet."""
    index = {label: i for i, label in enumerate(labels)}
    pairs = [(u.transcript.strip(), index[u.label]) for d in dialogues for u in d.utterances
             if u.label in index and u.transcript and u.transcript.strip()]
    return LineSet([t for t, _ in pairs], np.array([y for _, y in pairs], dtype=np.int64))


def token_ids(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Unpadded token ids (with [CLS]/[SEP]) cut at max_tokens."""
    encoded = tokenizer.encode_batch(list(texts))
    return [e.ids[:max_tokens] if len(e.ids) <= max_tokens else e.ids[: max_tokens - 1] + [e.ids[-1]] for e in encoded]


def length_batches(ids: Sequence[Sequence[int]], batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches of similar length (less padding); shuffled within length bands when rng is given."""
    lengths = np.array([len(i) for i in ids])
    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:  # sort by length plus a little noise, so each epoch groups lines differently
        order = np.argsort(lengths + rng.random(len(lengths)) * 3, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def padded(ids: Sequence[Sequence[int]], chosen: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids[i]) for i in chosen)
    tokens = torch.zeros(len(chosen), width, dtype=torch.long)
    mask = torch.zeros(len(chosen), width, dtype=torch.long)
    for row, i in enumerate(chosen):
        tokens[row, : len(ids[i])] = torch.tensor(ids[i])
        mask[row, : len(ids[i])] = 1
    return tokens, mask


class EmotionHead(nn.Module):
    """The probe classifier on a sentence vector."""

    def __init__(self, dim: int, classes: int, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = counts.sum() / (classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def scores(labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """WA, UA and per-class recall, in %."""
    recalls = {c: float(np.mean(predictions[labels == i] == i) * 100) if np.any(labels == i) else float("nan")
               for i, c in enumerate(classes)}
    return {"wa": float(np.mean(predictions == labels) * 100), "ua": float(np.nanmean(list(recalls.values()))),
            **{f"recall_{c}": r for c, r in recalls.items()}, "n": len(labels)}


@torch.no_grad()
def embed(encoder, ids: Sequence[Sequence[int]], batch_size: int = 256) -> torch.Tensor:
    """Sentence vectors [len(ids), dim] in the original order."""
    encoder.eval()
    out = None
    for chosen in length_batches(ids, batch_size, None):
        tokens, mask = padded(ids, chosen)
        vectors = encoder(tokens, mask)
        if out is None:
            out = torch.empty(len(ids), vectors.shape[1])
        out[torch.as_tensor(chosen)] = vectors
    return out


def train_head(train_x: torch.Tensor, train_y: np.ndarray, valid: dict[str, tuple[torch.Tensor, np.ndarray]],
               classes: Sequence[str], epochs: int = 40, seed: int = 0, lr: float = 1e-3, batch_size: int = 64):
    """A head on fixed vectors; returns (head from the best epoch by mean validation UA, its scores, epoch)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = EmotionHead(train_x.shape[1], len(classes))
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    weights, targets = class_weights(train_y, len(classes)), torch.as_tensor(train_y)
    best = (-1.0, None, None, 0)
    for epoch in range(1, epochs + 1):
        head.train()
        for chosen in np.array_split(rng.permutation(len(train_y)), max(1, len(train_y) // batch_size)):
            loss = F.cross_entropy(head(train_x[chosen]), targets[chosen], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        result = evaluate_vectors(head, valid, classes)
        mean_ua = float(np.mean([r["ua"] for r in result.values()]))
        if mean_ua > best[0]:
            best = (mean_ua, {k: v.clone() for k, v in head.state_dict().items()}, result, epoch)
    head.load_state_dict(best[1])
    return head, best[2], best[3]


@torch.no_grad()
def evaluate_vectors(head, sets: dict[str, tuple[torch.Tensor, np.ndarray]], classes) -> dict[str, dict[str, float]]:
    head.eval()
    return {name: scores(y, head(x).argmax(-1).numpy(), classes) for name, (x, y) in sets.items()}


def finetune(encoder, head: EmotionHead, ids: Sequence[Sequence[int]], labels: np.ndarray, classes: Sequence[str],
             epochs: int, lr: float, head_lr: float, batch_size: int = 32, seed: int = 0,
             on_epoch: Callable[[int], None] | None = None, log: Callable[[str], None] = print) -> float:
    """Trains the encoder's trainable (low-rank) parameters and the head together; returns seconds."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": trainable, "lr": lr, "weight_decay": 0.0},
                                   {"params": head.parameters(), "lr": head_lr, "weight_decay": 1e-4}])
    weights, targets = class_weights(labels, len(classes)), torch.as_tensor(labels)
    steps = epochs * len(length_batches(ids, batch_size, None))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
    started, step = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        encoder.train()
        head.train()
        running = 0.0
        for i, chosen in enumerate(length_batches(ids, batch_size, rng)):
            tokens, mask = padded(ids, chosen)
            loss = F.cross_entropy(head(encoder(tokens, mask)), targets[torch.as_tensor(chosen)], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            running += float(loss.detach())
            if (i + 1) % 200 == 0:
                log(f"epoch {epoch} step {i + 1}: loss {running / 200:.3f} ({time.perf_counter() - started:.0f} s)")
                running = 0.0
        encoder.eval()
        if on_epoch is not None:
            on_epoch(epoch)
    return time.perf_counter() - started
