"""Per-utterance latency of the live text extractor with and without the conversation delta.

    python benchmarks/text_encoder_latency.py [--lines 200] [--threads 1] [--encoder mpnet] [--load-runs 3]

Both extractors (LiteTextExtractor as the whisper-prosody and whisper-prosody-conv profiles build
it) embed the same transcripts one at a time, as the live path does, alternating line by line so
that load on a shared CPU hits both alike; prints the median and 90th percentile in ms. The delta
is merged into the weights at load, so the two should be equal.

--encoder mpnet adds all-mpnet-base-v2 (benchmarks/mpnet_text.py: transformers' MPNetModel, mean
pooled, unit length) to the rotation, one utterance at a time the same way (tokenizer, tensors,
forward, numpy). --load-runs N also times loading each encoder in N fresh processes (torch
imported first and not counted; the weights file in the page cache after the first run): MiniLM
as the live app loads it (the project's encoder, delta merged), mpnet as transformers loads it,
with `import transformers` timed apart (a live mpnet path could avoid it, as minilm.py does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch
from momke.extractors.base import Utterance
from momke.extractors.profiles import load_profile
from momke.models.commands.default_recipe import (
    CONVERSATION_RECIPE,
    DATA_DIR,
    load_recipe,
    text_dialogues,
)

PROFILES = ("whisper-prosody", "whisper-prosody-conv")
MPNET = "all-mpnet-base-v2"

# Run in a fresh process: prints {phase: seconds}. torch is imported before the clock starts.
LOAD_MINILM = """
import json, time, torch
t = time.perf_counter()
from momke.extractors.profiles import load_profile
from momke.extractors.base import Utterance
extractor = load_profile("whisper-prosody-conv", device="cpu").extractor("text")
extractor.model
loaded = time.perf_counter()
extractor.extract(Utterance(transcript="Warm up."))
print(json.dumps({"load_s": loaded - t, "first_utterance_s": time.perf_counter() - loaded}))
"""
LOAD_MPNET = """
import json, os, sys, time, torch
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, "benchmarks")
t = time.perf_counter()
import transformers, transformers.models.mpnet.modeling_mpnet
imported = time.perf_counter()
from mpnet_text import load_mpnet, model_dir
encoder, tokenizer = load_mpnet(model_dir())
loaded = time.perf_counter()
e = tokenizer.encode_batch(["Warm up."])[0]
with torch.inference_mode():
    encoder(torch.tensor([e.ids]), torch.tensor([e.attention_mask]))
print(json.dumps({"import_transformers_s": imported - t, "weights_s": loaded - imported,
                  "load_s": loaded - t, "first_utterance_s": time.perf_counter() - loaded}))
"""


def mpnet_embedder():
    """One utterance -> its mpnet vector, as an extractor would compute it live."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from mpnet_text import load_mpnet, model_dir

    encoder, tokenizer = load_mpnet(model_dir())

    def embed(line: str) -> np.ndarray:
        encoded = tokenizer.encode_batch([line])[0]
        with torch.inference_mode():
            return encoder(torch.tensor([encoded.ids]), torch.tensor([encoded.attention_mask]))[0].numpy()

    return embed


def load_times(script: str, runs: int, threads: int) -> dict:
    rows = []
    for _ in range(runs):
        code = f"import torch; torch.set_num_threads({threads})\n" + script
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: [round(r[key], 3) for r in rows] for key in rows[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encoder", choices=("minilm", "mpnet"), default="minilm",
                        help="mpnet: time all-mpnet-base-v2 beside the two MiniLM extractors")
    parser.add_argument("--load-runs", type=int, default=0, help="also time loading each encoder in N fresh processes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dialogues = [d for d in text_dialogues("meld", DATA_DIR / "meld", load_recipe(CONVERSATION_RECIPE)) if d.split == "valid"]
    lines = [u.transcript for d in dialogues for u in d.utterances if u.transcript.strip()][: args.lines]
    extractors = {name: load_profile(name, device="cpu").extractor("text") for name in PROFILES}
    embedders = {name: (lambda line, e=e: e.extract(Utterance(transcript=line))) for name, e in extractors.items()}
    if args.encoder == "mpnet":
        embedders[MPNET] = mpnet_embedder()
    for embedder in embedders.values():
        embedder("Warm up.")  # loads the weights (and merges the delta)
    times = {name: [] for name in embedders}
    for line in lines:
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder(line)
            times[name].append(1000 * (time.perf_counter() - started))
    result = {name: {"median_ms": round(float(np.median(t)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2)}
              for name, t in times.items()}
    if args.load_runs:
        result["load_in_fresh_process"] = {"whisper-prosody-conv": load_times(LOAD_MINILM, args.load_runs, args.threads)}
        if args.encoder == "mpnet":
            result["load_in_fresh_process"][MPNET] = load_times(LOAD_MPNET, args.load_runs, args.threads)
    print(json.dumps({"lines": len(lines), "threads": args.threads, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
