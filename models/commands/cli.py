"""`momke`: the research command line (train, evaluate, extract, toy corpus, paper-layout import).

Every subcommand explains itself with --help. Training options can also come from a JSON or
TOML file (--config FILE): keys are the long option names (``stage1-epochs`` or
``stage1_epochs``); options given on the command line win over the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import tomllib

from ..cli_common import (
    OneLineErrorParser,
    VersionAction,
    check_file,
    check_folder,
    check_output_file,
    check_output_folder,
    discard_stdout,
    say,
)

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
CORPUS_FOLDER = "a feature corpus folder (holds corpus.json)"

EPILOG_TRAIN = """\
examples:
  momke make-toy-corpus toy                      # a tiny SYNTHETIC corpus to try things on
  momke train toy --out runs/toy-model --epochs 20 --hidden-dim 32
  momke train features/iemocap --protocol fixed --condition at --out runs/iemocap-at

The corpus is a directory written by `momke extract` or `momke import-paper` (format: see
momke.models.training.data). Training uses the corpus's "train" split (and "valid" split, or a part of
train carved out for validation); the "test" split is only scored after training, and its
metrics are stored in the checkpoint's config.json.

Early stopping: a stage stops after --patience epochs without a better validation score, counted
from the first epoch that beats a constant predictor (the training data's majority class or mean
score), so a slow start is never cut short. If the kept model is still no better than that
constant, train says so and exits 3 (the checkpoint is written; --allow-constant-model: exit 0).
"""

# `momke train` exit codes: 0 done, 2 bad input, 3 trained but no better than a constant predictor.
EXIT_NOT_LEARNT = 3

EPILOG_EVALUATE = """\
examples:
  momke evaluate toy --checkpoint runs/toy-model           # score a checkpoint on the test split
  momke evaluate toy --epochs 20 --hidden-dim 32 --seeds 0 1 2 --report results.json
  momke evaluate toy --checkpoint runs/toy-model --json | jq .summary   # results as JSON on stdout
  momke evaluate features/iemocap --scheme sessions --protocol fixed   # the paper's Table 2

Without --checkpoint, models are trained and tested: one per condition ({a}, {t}, {v}, {a,v},
{a,t}, {t,v}, {a,t,v}) with --protocol fixed (the paper's), or one for all conditions with
--protocol random. --scheme sessions runs leave-one-session-out folds (IEMOCAP); --scheme split
uses the corpus's train/test split. Results of all folds and seeds are averaged.
"""


# ------------------------------------------------------------------------------------------------
# Options shared by train and evaluate


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="JSON or TOML file with any of these options")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--protocol", choices=("random", "fixed"), default="random",
                          help="random: one model for every modality condition (default); "
                               "fixed: the paper's, one model per condition")
    protocol.add_argument("--condition", default="atv", metavar="MODS",
                          help="fixed protocol with `train`: the modalities present, e.g. a, t, at, atv (default atv)")
    protocol.add_argument("--drop-rate", type=float, default=0.3, dest="utterance_drop_rate", metavar="RATE",
                          help="random protocol: probability an utterance gets its own random modality subset (0.3)")
    model = parser.add_argument_group("model (paper defaults)")
    model.add_argument("--context-mode", choices=("bidirectional", "causal"), default="bidirectional",
                       help="bidirectional (the paper) or causal (live use: only past utterances)")
    model.add_argument("--hidden-dim", type=int, default=256, metavar="D", help="expert width d (256; the paper uses 128 for MOSI)")
    model.add_argument("--num-blocks", type=int, default=4, metavar="N", help="transformer blocks per expert Q (4)")
    model.add_argument("--num-heads", type=int, default=2, metavar="N", help="attention heads H (2)")
    model.add_argument("--mlp-ratio", type=float, default=2.0, metavar="X",
                       help="feed-forward width of each expert block, in multiples of d (2, chosen by accuracy; the "
                            "paper does not say; 1, the authors' code's, trains ~15%% faster: benchmarks/README.md)")
    model.add_argument("--dropout", type=float, default=0.5, metavar="RATE", help="dropout (0.5)")
    ablation = parser.add_argument_group("ablations")
    ablation.add_argument("--no-stage1", action="store_true", dest="skip_stage1", help="skip unimodal expert training")
    ablation.add_argument("--no-mixing", action="store_true", help="each modality through its own expert only")
    ablation.add_argument("--no-router", action="store_true", help="equal expert weights instead of the Soft Router")
    ablation.add_argument("--experts", default="atv", metavar="MODS", help="which modality experts exist, e.g. at (default atv)")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int, metavar="N", help="epochs of both stages (sets --stage1-epochs and --stage2-epochs)")
    optimisation.add_argument("--stage1-epochs", type=int, default=100, metavar="N", help="unimodal expert training epochs (100)")
    optimisation.add_argument("--stage2-epochs", type=int, default=100, metavar="N", help="experts mixing epochs (100; the paper uses 50 for MOSEI)")
    optimisation.add_argument("--patience", type=int, default=20, metavar="N",
                              help="stop a stage after this many epochs without validation improvement, counted "
                                   "from the first epoch better than a constant predictor (20; 0 = never)")
    optimisation.add_argument("--batch-size", type=int, default=32, metavar="N", help="conversations per batch (32)")
    optimisation.add_argument("--bucket-by-length", action="store_true",
                              help="batch dialogues of similar length together: less padding, faster epochs")
    optimisation.add_argument("--weight-average", type=float, metavar="DECAY",
                              help="validate and keep a moving average of the weights, this decay per step "
                                   "(e.g. 0.99; off by default)")
    optimisation.add_argument("--lr", type=float, default=1e-4, dest="learning_rate", metavar="RATE", help="Adam learning rate (1e-4)")
    optimisation.add_argument("--weight-decay", type=float, default=1e-5, metavar="X", help="L2 weight decay (1e-5)")
    optimisation.add_argument("--select-on", dest="selection_metric", metavar="METRIC",
                              choices=("wa", "ua", "f1", "acc2_nonzero", "f1_nonzero", "mae", "corr", "acc7"),
                              help="validation metric that picks each stage's epoch: wa, ua, f1, acc2_nonzero, f1_nonzero, "
                                   "mae, corr or acc7 (default: wa, or mae for sentiment)")
    optimisation.add_argument("--class-weights", action="store_true", help="weight classes by inverse frequency")
    optimisation.add_argument("--valid-fraction", type=float, default=0.1, metavar="SHARE",
                              help="share of training dialogues held out for validation when the corpus has no valid split (0.1)")
    optimisation.add_argument("--seed", type=int, default=0, metavar="N", help="random seed: the same seed gives the same run (0)")
    optimisation.add_argument("--device", metavar="DEVICE", help="cuda, cuda:1 or cpu (default: CUDA when present, else CPU)")
    # training.precision.PRECISIONS, written out: that module imports torch, which --help must not wait for
    optimisation.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                              help="training's matmuls: auto (default) = bfloat16 mixed precision where the CPU (AVX512-BF16, "
                                   "AMX) or GPU (Ampere on) has it natively and --hidden-dim is 192 or more, else float32; "
                                   "evaluation is float32 either way")
    optimisation.add_argument("--quiet", action="store_true", help="no progress bars")


def _apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Load --config FILE (if given) as parser defaults, so command-line flags still win."""
    pre = OneLineErrorParser(prog=parser.prog, add_help=False)
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    if known.config is None:
        return
    path: Path = known.config
    if path.is_dir():
        parser.error(f"--config: {path} is a directory; give a JSON or TOML file")
    if not path.is_file():
        parser.error(f"config file {path} not found")
    try:
        if path.suffix.lower() == ".toml":
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        parser.error(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {error}")
    if not isinstance(values, dict):
        parser.error(f"config file {path} must hold a table/object of options")
    by_option = {}
    for action in parser._actions:  # option names -> destinations, e.g. "lr" -> learning_rate
        for option in action.option_strings:
            by_option[option.lstrip("-").replace("-", "_")] = action.dest
    actions = {action.dest: action for action in parser._actions}
    defaults = {}
    for key, value in values.items():
        dest = by_option.get(key.replace("-", "_"))
        if dest is None or dest in ("help", "config"):
            parser.error(f"config file {path}: unknown option {key!r}")
        problem = _config_value_problem(actions[dest], value)
        if problem:
            parser.error(f"config file {path}: option {key!r} {problem}")
        defaults[dest] = value
    parser.set_defaults(**defaults)


def _config_value_problem(action: argparse.Action, value: Any) -> str | None:
    """Why a value from --config FILE does not fit the option (argparse checks only the command line)."""
    if action.nargs == 0:  # a flag such as --quiet
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if action.nargs in ("+", "*"):
        if not isinstance(value, list) or not value:
            return f"must be a non-empty list, got {value!r}"
        values = value
    else:
        values = [value]
    for item in values:
        if action.type in (int, float):
            # Strict: 10.5 epochs or true are refused, not rounded or read as 1.
            if isinstance(item, bool) or not isinstance(item, (int, float, str)):
                return f"must be a number, got {item!r}"
            try:
                converted = action.type(str(item))
            except ValueError:
                return f"must be {'an integer' if action.type is int else 'a number'}, got {item!r}"
        else:
            converted = item
        if action.choices is not None and converted not in action.choices:
            return f"must be one of {', '.join(map(str, action.choices))}, got {item!r}"
    return None


def _settings_and_model(args: argparse.Namespace):
    from ..training.trainer import TrainingSettings, parse_condition

    stage1, stage2 = args.stage1_epochs, args.stage2_epochs
    if args.epochs is not None:
        stage1 = stage2 = args.epochs
    settings = TrainingSettings(
        protocol=args.protocol,
        condition=parse_condition(args.condition),
        utterance_drop_rate=args.utterance_drop_rate,
        stage1_epochs=stage1,
        stage2_epochs=stage2,
        skip_stage1=args.skip_stage1,
        batch_size=args.batch_size,
        bucket_by_length=args.bucket_by_length,
        weight_average=args.weight_average,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        class_weights=args.class_weights,
        selection_metric=args.selection_metric,
        patience=args.patience or None,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        progress=not args.quiet,
    )
    model = {
        "context_mode": args.context_mode,
        "hidden_dim": args.hidden_dim,
        "router_hidden_dim": args.hidden_dim,
        "num_blocks": args.num_blocks,
        "num_heads": args.num_heads,
        "mlp_ratio": args.mlp_ratio,
        "dropout": args.dropout,
        "experts": parse_condition(args.experts),
        "mixing": not args.no_mixing,
        "use_router": not args.no_router,
    }
    return settings, model


def _data_description(corpus_dir: Path, corpus) -> dict[str, Any]:
    meta = corpus.metadata
    return {
        "corpus": str(corpus_dir),
        "feature_profile": meta.feature_profile,
        "description": meta.description,
        "dialogues": len(corpus),
        "utterances": corpus.num_utterances,
        "splits": {s: len(corpus.split(s)) for s in ("train", "valid", "test")},
    }


# ------------------------------------------------------------------------------------------------
# Subcommands


def cmd_train(args: argparse.Namespace) -> int:
    # Paths are checked first: a mistake is found now, not after hours of training.
    check_folder("", args.corpus, CORPUS_FOLDER)
    check_output_folder("--out", args.out, args.overwrite)

    from ..checkpoint import save_checkpoint
    from ..training.data import load_corpus
    from ..training.evaluation import evaluate_model, nan_to_none
    from ..training.trainer import condition_name, model_config_for, split_for_training, train_momke

    corpus = load_corpus(args.corpus)
    settings, overrides = _settings_and_model(args)
    train, valid, test = split_for_training(corpus, settings.valid_fraction, settings.seed)
    if not test and not args.no_test:
        raise ValueError(f"{args.corpus} has no dialogues with split 'test' to score the model on; give some "
                         "dialogues split 'test', or pass --no-test to train without a test score")
    config = model_config_for(corpus.metadata, **overrides)
    print(f"training on {len(train)} dialogues, validating on {len(valid)} "
          f"({'the corpus valid split' if corpus.split('valid') else 'carved from train'}); "
          f"{len(test)} test dialogues are scored afterwards", file=sys.stderr)
    result = train_momke(train, valid, config, settings)
    metric = settings.metric_for(config.task)
    for stage, best in result.best.items():
        print(f"{stage}: kept epoch {best['epoch']} (validation {metric} {best['valid'][metric]:.4f}; "
              f"a constant predictor: {best['valid']['constant']:.4f})", file=sys.stderr)
    metadata: dict[str, Any] = {
        "protocol": settings.protocol if settings.protocol == "random" else f"fixed {condition_name(settings.condition)}",
        "training": {**settings.to_dict(), "trained_in": result.precision},
        "data": _data_description(args.corpus, corpus),
        "validation": result.best,
        "learnt": result.learnt,
    }
    if test:
        report = evaluate_model(result.model, test, protocol=settings.protocol, description="test split")
        metadata["test_metrics"] = report.runs[0]["metrics"]
        say(report.format_table())
    directory = save_checkpoint(result.model, args.out, metadata=nan_to_none(metadata))
    say(f"checkpoint written to {directory}")
    if not result.learnt:
        constant = "the majority class" if config.task == "classification" else "the mean score"
        print(f"momke train: the kept model is no better on validation than always predicting {constant} of "
              f"the training data ({metric}: {result.best['stage2']['valid'][metric]:.4f} vs "
              f"{result.best['stage2']['valid']['constant']:.4f}): it has not learnt. Try a higher --lr or more "
              "epochs, and check the labels."
              + (" Kept anyway (--allow-constant-model)." if args.allow_constant_model
                 else f" Exit {EXIT_NOT_LEARNT}; --allow-constant-model accepts such a model."), file=sys.stderr)
        if not args.allow_constant_model:
            return EXIT_NOT_LEARNT
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_folder("", args.corpus, CORPUS_FOLDER)
    if args.checkpoint is not None:
        check_folder("--checkpoint", args.checkpoint, "a checkpoint folder (holds config.json and model.safetensors)")
    if args.report is not None:
        check_output_file("--report", args.report, "results.json", overwrite=args.overwrite)

    from ..training.data import load_corpus
    from ..training.evaluation import evaluate_model, nan_to_none, run_evaluation
    from ..training.trainer import parse_condition, split_for_training

    corpus = load_corpus(args.corpus)
    if args.checkpoint is not None:
        from ..checkpoint import check_features, load_checkpoint

        model = load_checkpoint(args.checkpoint, device=args.device)
        check_features(model.config, corpus.metadata.feature_profile, corpus.metadata.feature_dims)
        _, _, test = split_for_training(corpus, 0.1, 0)
        if not test:
            raise ValueError(f"{args.corpus} has no 'test' dialogues to score the checkpoint on")
        report = evaluate_model(model, test, protocol=f"checkpoint {args.checkpoint}", description="test split")
    else:
        settings, overrides = _settings_and_model(args)
        conditions = [parse_condition(c) for c in args.conditions] if args.conditions else None
        seeds = args.seeds or [args.seed]
        report = run_evaluation(corpus, settings, overrides, scheme=args.scheme, seeds=seeds, conditions=conditions)
    # --json: one JSON document on stdout and nothing else there (NaN written as null).
    say(json.dumps(nan_to_none(report.to_dict())) if args.json else report.format_table())
    if args.report is not None:
        message = f"results written to {report.write_json(args.report)}"
        if args.json:
            print(message, file=sys.stderr)
        else:
            say(message)
    return 0


def cmd_extract(args: argparse.Namespace, rest: list[str]) -> int:
    from .extract_options import build_parser as extract_parser
    from .extract_options import check_paths

    # --help, usage errors and wrong paths now, before torch and the extractors load.
    check_paths(extract_parser().parse_args(rest))
    from .extract_corpus import main as extract  # loaded only for this command

    return int(extract(rest) or 0)


def cmd_make_toy_corpus(args: argparse.Namespace) -> int:
    check_output_folder("", args.directory, args.overwrite)

    from ..training.data import save_corpus
    from ..training.toy_corpus import make_toy_corpus

    corpus = make_toy_corpus(num_dialogues=args.dialogues, seed=args.seed)
    save_corpus(corpus, args.directory, overwrite=args.overwrite)
    say(f"wrote a SYNTHETIC toy corpus ({len(corpus)} dialogues, {corpus.num_utterances} utterances) to {args.directory}")
    return 0


def cmd_import_paper(args: argparse.Namespace) -> int:
    check_file("", args.labels, "the label pickle (.pkl)")
    for flag, folder in (("--audio", args.audio), ("--text", args.text), ("--visual", args.visual)):
        if folder is not None:
            check_folder(flag, folder, "a folder of .npy feature files")
    check_output_folder("--out", args.out, args.overwrite)

    from ..training.data import save_corpus
    from ..training.paper_layout import read_paper_layout

    corpus = read_paper_layout(
        args.labels, audio_dir=args.audio, text_dir=args.text, visual_dir=args.visual,
        task=args.task, label_names=args.label_names, feature_profile=args.profile,
    )
    save_corpus(corpus, args.out, overwrite=args.overwrite)
    say(f"wrote {len(corpus)} dialogues ({corpus.num_utterances} utterances) to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="momke",
        description="MoMKE research tools: turn recordings into features (extract), train the "
                    "two-stage model (train) and score it under every missing-modality condition (evaluate).",
        epilog="Start with: momke make-toy-corpus toy && momke train toy --out runs/toy --epochs 20 --hidden-dim 32",
    )
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train MoMKE (stage 1 + stage 2) and save a checkpoint",
                                description="Train MoMKE on a feature corpus and save a checkpoint.",
                                epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("corpus", type=Path, help="feature corpus folder (holds corpus.json)")
    train.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="checkpoint folder to write (new or empty, unless --overwrite)")
    train.add_argument("--overwrite", action="store_true", help="replace the checkpoint already in --out")
    train.add_argument("--allow-constant-model", action="store_true",
                       help=f"exit 0 even when the kept model is no better on validation than a constant "
                            f"predictor (otherwise: exit {EXIT_NOT_LEARNT}; the checkpoint is written either way)")
    train.add_argument("--no-test", action="store_true",
                       help="train on a corpus without 'test' dialogues (otherwise an error)")
    _add_training_options(train)

    evaluate = commands.add_parser("evaluate", help="score under every modality condition (the paper's Table 2)",
                                   description="Score MoMKE under every modality condition.",
                                   epilog=EPILOG_EVALUATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("corpus", type=Path, help="feature corpus folder (holds corpus.json)")
    evaluate.add_argument("--checkpoint", type=Path, metavar="DIR",
                          help="score this checkpoint on the test split instead of training")
    evaluate.add_argument("--scheme", choices=("split", "sessions"), default="split",
                          help="split: the corpus's train/test split; sessions: leave-one-session-out folds")
    evaluate.add_argument("--seeds", type=int, nargs="+", metavar="N", help="seeds to average over (default: just --seed)")
    evaluate.add_argument("--conditions", nargs="+", metavar="MODS",
                          help="only these conditions, e.g. t at atv (default: every condition the data has)")
    evaluate.add_argument("--json", action="store_true",
                          help="the results as one JSON document on stdout instead of the table (nothing else on stdout)")
    evaluate.add_argument("--report", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --report file")
    _add_training_options(evaluate)

    commands.add_parser("extract", help="extract utterance features from recordings into a corpus "
                                        "(options: momke extract --help)", add_help=False)

    toy = commands.add_parser("make-toy-corpus", help="write a tiny SYNTHETIC corpus to try the commands on",
                              description="Write a tiny SYNTHETIC feature corpus (not real data): four classes, "
                                          "audio and text each carry half of the label, video a weak copy of it.")
    toy.add_argument("directory", type=Path, metavar="DIR", help="corpus folder to write (new or empty)")
    toy.add_argument("--dialogues", type=int, default=48, metavar="N", help="number of dialogues (48)")
    toy.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (0)")
    toy.add_argument("--overwrite", action="store_true", help="replace what DIR holds")

    paper = commands.add_parser(
        "import-paper", help="convert the MoMKE/GCNet authors' feature layout into a corpus",
        description="Read a label pickle [ids, labels, speakers, sentences, train_ids, (valid_ids,) test_ids] "
                    "and <dir>/<utterance_id>.npy feature files per modality (the layout of the MoMKE and GCNet "
                    "repositories) into a feature corpus. The pickle is read with a restricted unpickler.",
    )
    paper.add_argument("labels", type=Path, metavar="LABELS.pkl",
                       help="the label pickle, e.g. IEMOCAP_features_raw_4way.pkl")
    paper.add_argument("--audio", type=Path, metavar="DIR", help="folder of audio .npy features")
    paper.add_argument("--text", type=Path, metavar="DIR", help="folder of text .npy features")
    paper.add_argument("--visual", type=Path, metavar="DIR",
                       help="folder of visual .npy features (or per-utterance face folders)")
    paper.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="corpus folder to write (new or empty, unless --overwrite)")
    paper.add_argument("--task", choices=("classification", "regression"),
                       help="default: regression when labels are fractional, else classification")
    paper.add_argument("--label-names", nargs="+", metavar="NAME", help="class names in index order (default for "
                                                                        "4 classes: happy sad neutral angry)")
    paper.add_argument("--profile", default="paper", metavar="NAME",
                       help="feature profile name to record (default: paper)")
    paper.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    parser.commands = {"train": train, "evaluate": evaluate, "make-toy-corpus": toy, "import-paper": paper}
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input (one line on stderr), 3 `train` learnt nothing, 130 Ctrl-C.
    A reader that closes the pipe (`momke evaluate ... | head -1`) ends nothing early: 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = f"momke {argv[0]}" if argv and not argv[0].startswith("-") else "momke"
    try:
        code = _run(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
        return code
    except BrokenPipeError:
        discard_stdout()
        return 0
    except (ValueError, OSError) as error:  # UsageProblem is a ValueError
        # Bad input (a corpus, checkpoint, pickle or folder): one line, exit 2, no traceback.
        print(f"{command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        resume = "; run the same command again to resume" if command == "momke extract" else ""
        print(f"{command}: stopped (Ctrl-C){resume}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(argv: list[str]) -> int:
    parser = build_parser()
    if argv and argv[0] == "extract":
        return cmd_extract(argparse.Namespace(), argv[1:])
    if argv and argv[0] in ("train", "evaluate"):
        _apply_config_file(parser.commands[argv[0]], argv[1:])
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, whose --help lists its options
        parser.commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "make-toy-corpus": cmd_make_toy_corpus,
        "import-paper": cmd_import_paper,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
