"""MoMKE speed on this machine: training epochs, an evaluation pass, and the live step.

IEMOCAP-shaped random data (151 dialogues, 5,531 utterances, at most 110 per dialogue, feature
dimensions 512/1024/1024, 4 classes) and the paper's model (d=256, 4 blocks, 2 heads):
- one stage-1 epoch and one stage-2 epoch (Adam 1e-4, cross-entropy, 32 dialogues a batch, all
  modalities present: the most work per batch), batches made by momke.models.training.data's collate;
- one evaluation pass over every dialogue with momke.models.training.trainer.predict (a Table-2
  evaluation is seven such passes, one per modality condition);
- the live step: one new utterance with the longest context the model keeps (its max_context:
  110 for the paper-sized model, 40 for the default checkpoint, so the checkpoint is timed at what
  it really holds), StreamingMoMKE (causal, key/value cache) against a full causal forward pass
  over the same utterances, plus the amortised cost per step of a long conversation through the
  model's own window (rolls included).

Usage: python benchmarks/bench_model.py [--threads 2] [--skip-training | --skip-step] [--reps 30]
                                        [--checkpoint assets/checkpoints/momke-whisper-4class]
Each figure is given as wall time and this process's CPU time: on a shared machine the first
grows with the other jobs' load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from momke.models import MODALITIES, MoMKE, MoMKEConfig, StreamingMoMKE, load_checkpoint
from momke.models.training.data import Conversation, collate_conversations
from momke.models.training.trainer import predict
from torch.nn import functional as F

DIMS = (512, 1024, 1024)
DIALOGUES, UTTERANCES, LONGEST = 151, 5531, 110
LABELS = ("happy", "sad", "neutral", "angry")


def dialogue_lengths(rng: np.random.Generator) -> list[int]:
    """151 lengths in [5, 110] summing to 5,531, one of them 110 (IEMOCAP's longest)."""
    lengths = np.clip(rng.normal(UTTERANCES / DIALOGUES, 20, DIALOGUES).round(), 5, LONGEST).astype(int)
    lengths[0] = LONGEST
    while (difference := UTTERANCES - lengths.sum()) != 0:
        index = rng.integers(1, DIALOGUES)
        step = 1 if difference > 0 else -1
        if 5 <= lengths[index] + step <= LONGEST:
            lengths[index] += step
    return lengths.tolist()


def make_corpus(rng: np.random.Generator) -> list[Conversation]:
    conversations = []
    for i, n in enumerate(dialogue_lengths(rng)):
        conversations.append(
            Conversation(
                dialogue_id=f"d{i:03d}",
                utterance_ids=[f"d{i:03d}_{j:03d}" for j in range(n)],
                speakers=["M" if j % 2 else "F" for j in range(n)],
                features={m: rng.standard_normal((n, d), dtype=np.float32) for m, d in zip(MODALITIES, DIMS)},
                present=np.ones((n, 3), dtype=bool),
                labels=rng.integers(0, len(LABELS), n),
            )
        )
    return conversations


class Clock:
    """Wall time and this process's CPU time (all threads): on a machine shared with other jobs
    the wall time grows with the load, the CPU time much less."""

    def __enter__(self):  # -> this Clock
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def train_epoch(model: MoMKE, conversations: list[Conversation], stage: str, rng: np.random.Generator) -> None:
    """One epoch of stage 1 (the three unimodal experts, losses summed) or stage 2 (mixing)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    order = rng.permutation(len(conversations))
    for start in range(0, len(order), 32):
        batch = collate_conversations([conversations[i] for i in order[start : start + 32]], DIMS)
        optimizer.zero_grad()
        use = batch.label_mask
        if stage == "stage1":
            loss = sum(
                F.cross_entropy(
                    model.forward_unimodal(m, batch.features[m], batch.modality_mask[..., i], batch.utterance_mask)[use],
                    batch.labels[use],
                )
                for i, m in enumerate(MODALITIES)
            )
        else:
            logits = model(batch.features, batch.modality_mask, batch.utterance_mask).logits
            loss = F.cross_entropy(logits[use], batch.labels[use])
        loss.backward()
        optimizer.step()


def step_features(rng: np.random.Generator, dims=DIMS) -> dict[str, np.ndarray]:
    return {m: rng.standard_normal(d, dtype=np.float32) for m, d in zip(MODALITIES, dims)}


def time_live_step(model: MoMKE, rng: np.random.Generator, reps: int) -> dict[str, list[Clock]]:
    dims, longest = model.config.feature_dims, model.config.max_context
    # The longest context the model keeps (the paper-sized model 110, the default checkpoint 40),
    # the new utterance included: the step at its fullest, with no roll.
    context = [step_features(rng, dims) for _ in range(longest - 1)]
    new = step_features(rng, dims)
    stream = StreamingMoMKE(model)
    times: dict[str, list[Clock]] = {"streaming": [], "full": [], "amortised": []}
    for _ in range(reps):
        stream.reset()
        for features in context:
            stream.step(features)
        with Clock() as clock:
            stream.step(new)
        times["streaming"].append(clock)
    features = {m: torch.from_numpy(np.stack([c[m] for c in context] + [new[m]])).unsqueeze(0) for m in MODALITIES}
    mask = torch.ones(1, longest, 3, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(reps):
            with Clock() as clock:
                model(features, mask)
            times["full"].append(clock)
    # A long conversation through the default window: rebuilds included, averaged per step.
    stream = StreamingMoMKE(model)
    steps = [step_features(rng, dims) for _ in range(400)]
    with Clock() as clock:
        for features in steps:
            stream.step(features)
    clock.wall, clock.cpu = clock.wall / len(steps), clock.cpu / len(steps)
    times["amortised"].append(clock)
    return times


def describe(clocks: list[Clock]) -> str:
    wall = [c.wall * 1e3 for c in clocks]
    cpu = statistics.median(c.cpu * 1e3 for c in clocks)
    if len(wall) == 1:
        return f"{wall[0]:.2f} ms wall, {cpu:.2f} ms CPU"
    return (
        f"median {statistics.median(wall):.2f} ms wall (min {min(wall):.2f}, max {max(wall):.2f}), "
        f"median {cpu:.2f} ms CPU (n={len(wall)})"
    )


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return f"{cpu}; {os.cpu_count()} CPUs visible; load average {load[0]:.2f}; torch {torch.__version__}; Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--reps", type=int, default=30, help="repetitions of the live-step timings")
    parser.add_argument("--skip-training", action="store_true", help="only time the live step")
    parser.add_argument("--skip-step", action="store_true", help="only time training and evaluation")
    parser.add_argument(
        "--checkpoint", help="time the live step with this (causal) checkpoint instead of the paper-sized model"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}")
    print(f"paper-sized model: d=256, 4 blocks, 2 heads, dims {DIMS}, {len(LABELS)} classes")

    if not args.skip_training:
        conversations = make_corpus(rng)
        lengths = [len(c) for c in conversations]
        print(f"data: {len(conversations)} dialogues, {sum(lengths)} utterances, longest {max(lengths)}, all modalities present")
        model = MoMKE(MoMKEConfig(feature_dims=DIMS, labels=LABELS))
        for stage, what in (("stage1", "3 unimodal experts"), ("stage2", "experts mixing")):
            with Clock() as clock:
                train_epoch(model, conversations, stage, rng)
            print(f"training, {stage} epoch ({what}): {clock}")
        with Clock() as clock:
            labels, _ = predict(model, conversations)
        print(f"evaluation pass (predict, {len(labels)} utterances, one condition): {clock}")
        if args.skip_step:
            return

    if args.checkpoint:
        model = load_checkpoint(args.checkpoint, device="cpu")
        config = model.config
        print(
            f"live step with checkpoint {args.checkpoint}: d={config.hidden_dim}, {config.num_blocks} blocks, "
            f"{config.num_heads} heads, dims {config.feature_dims}, {config.context_mode}"
        )
    else:
        model = MoMKE(MoMKEConfig(feature_dims=DIMS, labels=LABELS, context_mode="causal")).eval()
    times = time_live_step(model, rng, args.reps)
    longest = model.config.max_context
    print(f"live step, 1 new utterance + {longest - 1} of context (the model's max_context {longest}), "
          f"StreamingMoMKE (KV cache): {describe(times['streaming'])}")
    print(f"live step, full causal forward over the {longest} utterances: {describe(times['full'])}")
    print(f"live step, 400-utterance conversation through the model's own window, amortised: "
          f"{describe(times['amortised'])} per step")
    wall = statistics.median(c.wall for c in times["streaming"]) * 1e3
    cpu = statistics.median(c.cpu for c in times["streaming"]) * 1e3
    print(f"target < 5 ms for the streaming step: {'met' if wall < 5 else 'NOT met'} (median {wall:.2f} ms wall, {cpu:.2f} ms CPU)")


if __name__ == "__main__":
    main(sys.argv[1:])
