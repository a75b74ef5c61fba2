"""The options of `momke extract` (extract_corpus.py does the work), kept apart from it so that
`momke extract --help` and its usage errors answer before torch and the extractors load."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_common import OneLineErrorParser, UsageProblem, check_output_folder
from .corpus_readers import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="momke extract",
        description="Turn a corpus of recordings or transcripts into a feature corpus (corpus.json + one .npz "
                    "per dialogue) that `momke train` and `momke evaluate` read. An interrupted run, started "
                    "again with the same arguments, skips the dialogues already written.")
    parser.add_argument("source", metavar="SOURCE",
                        help="manifest (.csv/.jsonl), IEMOCAP jsonl, or a MELD/EmoryNLP/RAVDESS folder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output feature-corpus folder (resumes the corpus in it, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over: remove the feature corpus already in --out instead of resuming it")
    parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS,
                        help="layout of SOURCE (default auto: found from SOURCE)")
    parser.add_argument("--profile", default="lite", choices=("lite", "research"),
                        help="feature extractors: lite (shipped, offline; default) or research (local checkpoints)")
    parser.add_argument("--modalities", metavar="MODS", help="e.g. 'a,t' or 'text' (default: all the source has)")
    parser.add_argument("--task", default="auto", choices=("auto", "classification", "regression"),
                        help="classification (labels are class names) or regression (labels are numeric scores, "
                             "e.g. sentiment in [-3, 3]); auto (default): regression when every label is a number "
                             "and some are fractional or negative, with a message saying so")
    parser.add_argument("--labels", metavar="NAMES",
                        help="class names in order, comma-separated (default: sorted labels found)")
    parser.add_argument("--label-map", metavar="MAP", help="source=target pairs, comma-separated, or a .json file")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="feature cache folder (default $MOMKE_CACHE_DIR or "
                                                                  "~/.cache/momke/features)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    parser.add_argument("--device", metavar="DEVICE", help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N dialogues (a quick look)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--description", default="", metavar="TEXT", help="a note stored in corpus.json")
    research = parser.add_argument_group("research profile")
    research.add_argument("--audio-path", metavar="DIR", help="local wav2vec 2.0 / HuBERT checkpoint folder")
    research.add_argument("--text-path", metavar="DIR", help="local DeBERTa (or other encoder) checkpoint folder")
    research.add_argument("--audio-layer", default="-1", metavar="N",
                          help="hidden-state index or 'features' (default -1)")
    research.add_argument("--audio-pooling", default="mean", choices=("mean", "mean_std"))
    research.add_argument("--text-layers", default="-4,-3,-2,-1", metavar="LIST",
                          help="hidden states to average, comma-separated (default: the last 4)")
    research.add_argument("--text-pooling", default="mean", choices=("mean", "cls"))
    ravdess = parser.add_argument_group("RAVDESS")
    ravdess.add_argument("--ravdess-group", default="clip", choices=("clip", "actor"),
                         help="one dialogue per clip (default) or per actor")
    ravdess.add_argument("--with-transcripts", action="store_true", help="add RAVDESS's fixed sentence as text")
    return parser


def check_paths(args: argparse.Namespace) -> None:
    """Mistakes in paths, found before the extractors load (minutes for the research profile)."""
    check_output_folder("--out", args.out, overwrite=True)  # a corpus already there is resumed
    if args.cache is not None:
        check_output_folder("--cache", args.cache, overwrite=True)
    if args.label_map and Path(args.label_map).is_dir():
        raise UsageProblem(f"--label-map: {args.label_map} is a directory; give a .json file or source=target pairs")
