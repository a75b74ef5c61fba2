"""Probe: does fine-tuning MiniLM (a low-rank delta) beat the frozen encoder on conversation? (issue 19)

    python benchmarks/text_encoder_probe.py [--epochs 2] [--rank 8] [--delta-out FILE] [--out results/text_encoder_probe]

Lines: MELD train + EmoryNLP train + DailyDialog train, labelled with the conversation recipe's
label maps (happy / sad / neutral / angry), each written as the live speech-to-text writes it
(whisper_style) plus one transcription-like noisy copy (asr_noise at the recipe's text_noise
settings, every training dialogue). Both encoders get the same small head (384 -> 128 -> 4,
class-weighted cross-entropy):
- frozen: the shipped all-MiniLM-L6-v2, vectors computed once, the head trained on them
  (best of 40 epochs by the mean UA of the six validation sets);
- fine-tuned: a low-rank delta (LoRA) on the linears of all 6 layers trained with the head,
  end to end, for --epochs; scored after each epoch, the best epoch by the same mean is kept.
Scored per utterance (no dialogue context) on VALIDATION only: MELD dev, EmoryNLP dev,
DailyDialog valid, each clean and with ASR-like noise (the recipe's noisy copy).
The latency of one utterance through the frozen and the merged fine-tuned encoder is timed too.
Writes <out>.json and <out>.txt; --delta-out keeps the best epoch's delta.

    python benchmarks/text_encoder_probe.py --encoder mpnet [--train-copies clean|both] [--threads 2]

all-mpnet-base-v2 frozen (benchmarks/mpnet_text.py; 768-d) with the same lines, the same head
(768 -> 128 -> 4) and the same validation sets, against the MiniLM rows recorded in
results/text_encoder_probe.json (not rerun). Vectors are cached under
~/.cache/momke/bench/text_encoder_probe/ in chunks of length-sorted lines (an interrupted run
resumes); --train-copies clean trains the head on the clean training lines only (half the
embedding time). Writes results/text_encoder_probe_mpnet.{txt,json} by default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from momke.extractors.file_digest import weights_sha256
from momke.extractors.minilm import MAX_TOKENS, WEIGHTS, load_minilm
from momke.extractors.minilm_delta import add_low_rank, merge_delta, save_delta
from momke.extractors.text_lite import bundled_model_dir
from momke.models.commands.default_recipe import (
    CONVERSATION_RECIPE,
    DATA_DIR,
    load_recipe,
    noisy_dialogues,
    text_dialogues,
)
from momke.models.training.text_encoder import (
    EmotionHead,
    embed,
    evaluate_vectors,
    finetune,
    labelled_lines,
    token_ids,
    train_head,
)

RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = ("meld", "emorynlp", "dailydialog")


def line_sets(recipe: dict, data_dir: Path, train_limit: int | None) -> tuple[dict, dict]:
    """(training LineSets {clean, noisy}, validation LineSets {"<source> <clean|asr>"})."""
    labels, noise = recipe["labels"], recipe["text_noise"]
    train, valid = {"clean": [], "asr": []}, {}
    for source in SOURCES:
        dialogues = text_dialogues(source, data_dir / source, recipe)
        training = [d for d in dialogues if d.split == "train"]
        if train_limit:
            training = training[:train_limit]
        train["clean"] += training
        train["asr"] += noisy_dialogues(training, {**noise, "train_fraction": 1.0}, ["train"])
        validation = [d for d in dialogues if d.split == "valid"]
        valid[f"{source} clean"] = labelled_lines(validation, labels)
        valid[f"{source} asr"] = labelled_lines(noisy_dialogues(validation, noise, ["valid"]), labels)
    return {k: labelled_lines(v, labels) for k, v in train.items()}, valid


def latency_ms(encoder, tokenizer, texts: list[str], repeats: int = 3) -> float:
    """Median ms to embed one utterance (batch of one, token ids included), as live."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            for text in texts:
                started = time.perf_counter()
                encoded = tokenizer.encode_batch([text])
                encoder(torch.tensor([encoded[0].ids]), torch.tensor([encoded[0].attention_mask]))
                times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def mean_row(result: dict) -> dict:
    keys = ("wa", "ua", "recall_sad", "recall_angry")
    return {k: float(np.mean([r[k] for r in result.values()])) for k in keys}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--lr", type=float, default=5e-4, help="learning rate of the low-rank factors")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--targets", default="query,key,value,attention_out,inner,outer")
    parser.add_argument("--train-limit", type=int, default=None, help="first N training dialogues per source (a quick run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both heads and of the fine-tuning order")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    parser.add_argument("--delta-out", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default results/text_encoder_probe[_mpnet]")
    parser.add_argument("--encoder", choices=("minilm", "mpnet"), default="minilm",
                        help="mpnet: the frozen all-mpnet-base-v2 + head only, against the recorded MiniLM rows")
    parser.add_argument("--train-copies", choices=("both", "clean"), default="both",
                        help="(mpnet) train the head on the clean and noisy training lines, or the clean only")
    args = parser.parse_args(argv)
    args.out = args.out or RESULTS / ("text_encoder_probe_mpnet" if args.encoder == "mpnet" else "text_encoder_probe")
    torch.set_num_threads(args.threads)
    if args.encoder == "mpnet":
        return probe_mpnet(args)
    started = time.perf_counter()
    recipe = load_recipe(CONVERSATION_RECIPE)
    classes = recipe["labels"]
    train, valid = line_sets(recipe, DATA_DIR, args.train_limit)
    texts = train["clean"].texts + train["asr"].texts
    labels = np.concatenate([train["clean"].labels, train["asr"].labels])
    print(f"training lines {len(texts)} (clean {len(train['clean'].texts)}), class counts {np.bincount(labels).tolist()}",
          flush=True)

    encoder, tokenizer = load_minilm(bundled_model_dir())
    base_sha256 = weights_sha256(bundled_model_dir() / WEIGHTS)
    tokenizer.no_padding()
    ids = token_ids(tokenizer, texts, MAX_TOKENS)
    valid_ids = {name: token_ids(tokenizer, s.texts, MAX_TOKENS) for name, s in valid.items()}

    t0 = time.perf_counter()
    frozen_valid = {name: (embed(encoder, valid_ids[name]), s.labels) for name, s in valid.items()}
    frozen_train = embed(encoder, ids)
    embed_s = time.perf_counter() - t0
    _, frozen, frozen_epoch = train_head(frozen_train, labels, frozen_valid, classes, seed=args.seed)
    print(f"frozen ({embed_s:.0f} s to embed): mean {mean_row(frozen)}", flush=True)
    for name, row in frozen.items():
        print(f"  {name}: {row}", flush=True)

    torch.manual_seed(args.seed)  # the low-rank factors' start and the head's
    add_low_rank(encoder, args.rank, args.alpha, args.targets.split(","))
    head = EmotionHead(384, len(classes))
    epochs: list[dict] = []
    best: dict = {"mean_ua": -1.0}

    def on_epoch(epoch: int) -> None:
        result = evaluate_vectors(head, {n: (embed(encoder, valid_ids[n]), s.labels) for n, s in valid.items()}, classes)
        row = mean_row(result)
        epochs.append({"epoch": epoch, "mean": row, "sets": result})
        print(f"fine-tuned epoch {epoch}: mean {row}", flush=True)
        if row["ua"] > best["mean_ua"]:
            best.update(mean_ua=row["ua"], epoch=epoch)
            if args.delta_out:
                save_delta(encoder, args.delta_out, base_sha256, note=f"probe epoch {epoch}, rank {args.rank}")

    train_s = finetune(encoder, head, ids, labels, classes, args.epochs, args.lr, args.head_lr, seed=args.seed,
                       on_epoch=on_epoch)

    # Latency: the plain encoder, and the same encoder with the saved delta merged in.
    sample = [t for s in valid.values() for t in s.texts[:40]][:200]
    plain, _ = load_minilm(bundled_model_dir())
    timing = {"frozen_ms": latency_ms(plain, tokenizer, sample)}
    if args.delta_out:
        merged = merge_delta(load_minilm(bundled_model_dir())[0], args.delta_out, base_sha256)
        timing["merged_ms"] = latency_ms(merged, tokenizer, sample)
        timing["frozen_ms_again"] = latency_ms(plain, tokenizer, sample)

    report = {
        "settings": vars(args) | {"delta_out": str(args.delta_out), "out": str(args.out)},
        "training_lines": len(texts), "class_counts": np.bincount(labels).tolist(),
        "frozen": {"head_epoch": frozen_epoch, "mean": mean_row(frozen), "sets": frozen, "embed_s": embed_s},
        "finetuned": {"epochs": epochs, "best_epoch": best.get("epoch"), "train_s": train_s},
        "latency_per_utterance": timing | {"lines": len(sample), "threads": args.threads},
    }
    return finish(report, args.out, table, started)


def finish(report: dict, out: Path, render, started: float) -> int:
    """Adds the machine and the wall time, writes <out>.json and <out>.txt, prints the table."""
    report["machine"] = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads (shared CPU)"
    report["wall_s"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.with_suffix(".txt").write_text(render(report))
    print(render(report))
    return 0


def cached_vectors(encoder, ids: list[list[int]], folder: Path, chunk: int = 2048) -> torch.Tensor:
    """embed() of the lines in chunks of the length-sorted order, each chunk kept in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.argsort([len(i) for i in ids], kind="stable")
    out, started = None, time.perf_counter()
    for first in range(0, len(order), chunk):
        chosen = order[first:first + chunk]
        path = folder / f"{first // chunk:04d}.npy"
        if path.is_file():
            vectors = torch.from_numpy(np.load(path))
        else:
            vectors = embed(encoder, [ids[i] for i in chosen], batch_size=64)
            np.save(path, vectors.numpy())
            print(f"  {folder.name}: {first + len(chosen)} / {len(order)} ({time.perf_counter() - started:.0f} s)", flush=True)
        if out is None:
            out = torch.empty(len(ids), vectors.shape[1])
        out[torch.as_tensor(chosen)] = vectors
    return out


def probe_mpnet(args) -> int:
    # benchmarks/ is on the path when run as a script; transformers is imported only here
    from mpnet_text import DIM, REVISION, load_mpnet, model_dir
    from mpnet_text import MAX_TOKENS as MPNET_TOKENS

    started = time.perf_counter()
    recipe = load_recipe(CONVERSATION_RECIPE)
    classes = recipe["labels"]
    train, valid = line_sets(recipe, DATA_DIR, args.train_limit)
    copies = ["clean"] if args.train_copies == "clean" else ["clean", "asr"]
    encoder, tokenizer = load_mpnet(model_dir())
    tokenizer.no_padding()
    cache = Path.home() / ".cache" / "momke" / "bench" / "text_encoder_probe" / f"mpnet-{REVISION[:8]}"

    def vectors(name: str, texts: list[str]) -> torch.Tensor:
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
        return cached_vectors(encoder, token_ids(tokenizer, texts, MPNET_TOKENS), cache / f"{name.replace(' ', '-')}-{key}")

    t0 = time.perf_counter()
    valid_vectors = {name: (vectors(name, s.texts), s.labels) for name, s in valid.items()}
    train_x = torch.cat([vectors(f"train {c}", train[c].texts) for c in copies])
    train_y = np.concatenate([train[c].labels for c in copies])
    embed_s = time.perf_counter() - t0
    _, result, epoch = train_head(train_x, train_y, valid_vectors, classes, seed=args.seed)
    assert train_x.shape[1] == DIM
    recorded = json.loads((RESULTS / "text_encoder_probe.json").read_text())
    delta = next(e for e in recorded["finetuned"]["epochs"] if e["epoch"] == recorded["finetuned"]["best_epoch"])
    report = {
        "settings": {"encoder": "all-mpnet-base-v2", "revision": REVISION, "train_copies": copies, "seed": args.seed,
                     "threads": args.threads, "train_limit": args.train_limit, "out": str(args.out)},
        "training_lines": len(train_y), "class_counts": np.bincount(train_y).tolist(),
        "mpnet": {"head_epoch": epoch, "mean": mean_row(result), "sets": result,
                  "embed_s_this_run": embed_s, "note": "embed_s_this_run counts only the chunks not already cached"},
        "recorded_minilm": {"source": "results/text_encoder_probe.json (clean + noisy training lines)",
                            "frozen": {"mean": recorded["frozen"]["mean"], "sets": recorded["frozen"]["sets"]},
                            "delta": {"epoch": delta["epoch"], "mean": delta["mean"], "sets": delta["sets"]}},
    }
    return finish(report, args.out, mpnet_table, started)


def _cells(row: dict) -> str:
    return f"{row['wa']:.1f} / {row['ua']:.1f} / {row['recall_sad']:.1f} / {row['recall_angry']:.1f}"


def mpnet_table(report: dict) -> str:
    minilm, mpnet = report["recorded_minilm"], report["mpnet"]
    copies = " + ".join(report["settings"]["train_copies"])
    header = f"set | frozen MiniLM (recorded) | MiniLM + delta (recorded) | frozen mpnet (head on {copies} training lines)"
    lines = [header + " -- WA / UA / sad / angry", "---|---|---|---"]
    for name in mpnet["sets"]:
        lines.append(f"{name} | {_cells(minilm['frozen']['sets'][name])} | {_cells(minilm['delta']['sets'][name])} | "
                     f"{_cells(mpnet['sets'][name])}")
    lines.append(f"mean of six | {_cells(minilm['frozen']['mean'])} | {_cells(minilm['delta']['mean'])} | {_cells(mpnet['mean'])}")
    lines.append(f"training lines {report['training_lines']}; head epoch {mpnet['head_epoch']}; "
                 f"embedding {mpnet['embed_s_this_run']:.0f} s this run; wall {report['wall_s']:.0f} s; {report['machine']}")
    return "\n".join(lines) + "\n"


def table(report: dict) -> str:
    best = next(e for e in report["finetuned"]["epochs"] if e["epoch"] == report["finetuned"]["best_epoch"])
    lines = ["set | frozen WA / UA / sad / angry | fine-tuned WA / UA / sad / angry", "---|---|---"]
    for name in report["frozen"]["sets"]:
        f, t = report["frozen"]["sets"][name], best["sets"][name]
        lines.append(f"{name} | {f['wa']:.1f} / {f['ua']:.1f} / {f['recall_sad']:.1f} / {f['recall_angry']:.1f} | "
                     f"{t['wa']:.1f} / {t['ua']:.1f} / {t['recall_sad']:.1f} / {t['recall_angry']:.1f}")
    f, t = report["frozen"]["mean"], best["mean"]
    lines.append(f"mean of six | {f['wa']:.1f} / {f['ua']:.1f} / {f['recall_sad']:.1f} / {f['recall_angry']:.1f} | "
                 f"{t['wa']:.1f} / {t['ua']:.1f} / {t['recall_sad']:.1f} / {t['recall_angry']:.1f}")
    lines.append(f"fine-tuned epoch kept: {report['finetuned']['best_epoch']}; training {report['finetuned']['train_s']:.0f} s; "
                 f"latency per utterance {json.dumps(report['latency_per_utterance'])}; wall {report['wall_s']:.0f} s")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
