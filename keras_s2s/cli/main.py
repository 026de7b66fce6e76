"""The `keras-s2s` command line: data, train, evaluate, translate, run.

Every subcommand prints human-readable output and, as its last stdout line, one JSON object
with its figures. Bad input exits with status 2 and one `keras-s2s: error: ...` line.

Each command imports what it needs inside its function (lazy imports, for start-up time):
`keras-s2s --help` loads no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from keras_s2s.config import STRATEGIES
from keras_s2s.registry import EXPORTERS, TUNERS

DEFAULT_PIPELINE = "date_attention"


def _config_from_args(args):
    """The merged config of the command line, checked whole (model section included) before
    any data is read or anything is written."""
    from keras_s2s.checks import check_config
    from keras_s2s.config import apply_overrides, load_pipeline, parse_override

    config = load_pipeline(args.pipeline)
    overrides = dict(parse_override(a) for a in args.set)
    for flag, key in (
        ("epochs", "training.epochs"),
        ("seed", "training.seed"),
        ("batch_tokens", "training.batch_tokens"),
        ("strategy", "training.strategy"),
        ("trial_epochs", "search.epochs"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    config = apply_overrides(config, overrides) if overrides else config
    check_config(config)
    return config


def _output_dir(args, config) -> Path:
    """The run directory: `--output-dir`, by default `runs/<pipeline>`. `train` checks what it
    holds (refusing anything but a run) and moves a finished run aside only once the data is
    known good; only the chief of a multi-worker run touches it."""
    from keras_s2s.errors import ConfigError

    path = Path(args.output_dir or Path("runs") / config["name"])
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output-dir {path} is a file, not a directory")
    return path


def cmd_data(args):
    from keras_s2s.data.describe import describe_data

    figures = describe_data(_config_from_args(args))
    print(
        f"pipeline {figures['pipeline']}: tokenizer {figures['tokenizer']}, vocabulary "
        f"{figures['source_vocabulary_size']} source / {figures['target_vocabulary_size']} target"
    )
    for split in figures["examples"]:
        s = figures[split]
        print(
            f"  {split:<10} {s['examples']:>7} examples; source tokens {s['source_tokens']}; "
            f"target tokens {s['target_tokens']}; too long (dropped in training): {s['too_long']}"
            f"; empty source or target (skipped): {s.get('skipped_empty', 0)}"
        )
    return figures


def cmd_train(args):
    from keras_s2s.training import make_strategy, train

    config = _config_from_args(args)
    # Before any TensorFlow op (collective ops are configured at program start); only the
    # chief touches the run directory.
    strategy = make_strategy(config["training"]["strategy"])
    summary = train(
        config, _output_dir(args, config), strategy=strategy, finished_run="move",
        init_from=args.init_from,
    )  # fmt: skip
    _print_training(summary)
    return summary


def cmd_tune(args):
    from keras_s2s.tuning import tune

    config = _config_from_args(args)
    result = tune(
        config,
        directory=args.directory,
        tuner=args.tuner,
        max_trials=args.max_trials,
        verbose=1,  # keras-tuner's trial display and each trial's Keras progress bar
    )
    if result.get("role") == "worker":  # A keras-tuner worker: the chief reports.
        worker = os.environ.get("KERASTUNER_TUNER_ID", "worker")
        print(f"Worker {worker} ran {result['trials_run']} trials; the chief reports the search")
        return {"tuner_id": worker, **result}
    print(f"{'trial':<6} {'status':<10} {result['objective']:>24}  hyperparameters")
    for row in result["trials"]:
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        values = ", ".join(f"{k}={v}" for k, v in row["hyperparameters"].items())
        print(f"{row['trial']:<6} {row['status']:<10} {score:>24}  {values}")
    print(
        f"Best trial {result['best_trial']}: {result['objective']} {result['best_score']:.4f}"
        f"; its pipeline file: {result['best_config']} (keras-s2s train / export take it)"
    )
    return {k: v for k, v in result.items() if k != "trials"} | {"trials": len(result["trials"])}


def _print_training(summary):
    kept = "last" if summary.get("checkpoint") == "last" else "best"
    print(
        f"Trained {summary['epochs']} epochs in {summary['train_seconds']} s; "
        f"kept the {kept} epoch ({summary['best_epoch']}); run directory {summary['run_dir']}"
    )
    if "averaged_epochs" in summary:
        epochs = summary["averaged_epochs"]
        value = next(
            v for k, v in summary.items() if k.startswith("averaged_") and k != "averaged_epochs"
        )
        print(
            f"Average of epochs {epochs[0]}-{epochs[-1]}: {value:.4f} on validation; the run "
            f"keeps the {'average' if summary['kept'] == 'average' else 'best epoch'}"
        )
    skipped = {split: n for split, n in summary.get("skipped_empty", {}).items() if n}
    print(
        f"Training examples: {summary['train_examples']} used, "
        f"{summary['train_dropped_too_long']} dropped as too long (data.max_source_length / "
        "data.max_target_length)"
        + "".join(f"; {n} empty pairs skipped in {split}" for split, n in skipped.items())
    )


def _print_scores(figures):
    decoding = "greedy"
    if figures.get("beam_size", 1) > 1:
        decoding = f"beam {figures['beam_size']}, length penalty {figures['length_penalty']}"
    print(
        f"{figures['split']} ({decoding}): BLEU {figures['bleu']:.2f}; chrF "
        f"{figures['chrf']:.2f}; exact match {figures['exact_match']:.4f}; CER "
        f"{figures['cer']:.4f}; {figures['examples']} examples"
    )


def cmd_evaluate(args):
    from keras_s2s import Translator
    from keras_s2s.evaluation import evaluate_run
    from keras_s2s.run_directory import RunDirectory

    evaluation = RunDirectory(args.run_dir).config()["evaluation"]
    beam = evaluation["beam_size"] if args.beam is None else args.beam
    alpha = evaluation["length_penalty"] if args.length_penalty is None else args.length_penalty
    translator = Translator.from_run_directory(args.run_dir, allow_unfinished=args.allow_unfinished)
    common = dict(
        split=args.split,
        limit=args.limit,
        translator=translator,
        source=args.source,
        reference=args.reference,
        progress=_show_progress(),
    )
    figures = evaluate_run(args.run_dir, **common)
    _print_scores(figures)
    if beam > 1:
        beam_figures = evaluate_run(args.run_dir, beam_size=beam, length_penalty=alpha, **common)
        _print_scores(beam_figures)
        figures["beam"] = beam_figures
    print(f"sacreBLEU signatures: {figures['bleu_signature']}; {figures['chrf_signature']}")
    return {"run_dir": args.run_dir, **figures}


def _check_translate_options(args):
    """`translate`'s settings, checked before any run is loaded: `(controls, sampling
    options)`."""
    from keras_s2s import DecodingControls
    from keras_s2s.errors import ConfigError

    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    given = [f"--{k.replace('_', '-')}" for k, v in sampling.items() if v is not None]
    given += ["--num-samples"] * (args.num_samples != 1) + ["--seed"] * (args.seed is not None)
    if given and not args.sample:
        raise ConfigError(f"{', '.join(given)}: only with --sample")
    if args.sample and args.constraints_file:
        raise ConfigError("--constraints-file needs beam search: leave out --sample")
    if args.sample and (args.beam != 1 or args.nbest != 1 or args.length_penalty):
        raise ConfigError(
            "--sample draws samples: leave out --beam, --nbest and --length-penalty "
            "(--num-samples sets the outputs per input)"
        )
    if args.beam < 1 or not 1 <= args.nbest <= args.beam:
        raise ConfigError(
            f"--nbest must be between 1 and --beam; got --beam {args.beam} --nbest {args.nbest}"
        )
    if args.length_penalty < 0:
        raise ConfigError(f"--length-penalty must be >= 0; got {args.length_penalty}")
    options = {k: v for k, v in sampling.items() if v is not None}
    try:
        controls = DecodingControls(
            args.min_length_ratio, args.max_length_ratio, args.no_repeat_ngram, args.ban
        )
        if args.sample:
            from keras_s2s.decoding import Sampling

            Sampling(num_samples=args.num_samples, **options)
    except ValueError as e:
        raise ConfigError(_as_options(e)) from None
    return controls, options


def _lines_per_input(path, count: int, meaning: str) -> list[str] | None:
    """The lines of `path` (None without one), one per input, else a `ConfigError` saying
    what line i is (`meaning`)."""
    from keras_s2s.data.readers import read_lines
    from keras_s2s.errors import ConfigError

    if not path:
        return None
    lines = read_lines(path)
    if len(lines) != count:
        raise ConfigError(f"{path} has {len(lines)} lines for {count} inputs: line i {meaning}")
    return lines


def cmd_translate(args):
    from keras_s2s import Translator
    from keras_s2s.errors import ConfigError
    from keras_s2s.evaluation import plot_attention

    controls, options = _check_translate_options(args)
    texts, invalid = _input_texts(args.text)
    for index in invalid:
        print(f"keras-s2s: input {index}: invalid UTF-8 replaced by U+FFFD", file=sys.stderr)
    prefixes = _lines_per_input(
        args.prefix_file, len(texts), "is the prefix of input i (an empty line: none)"
    )
    constraints = _lines_per_input(
        args.constraints_file, len(texts),
        "holds the phrases output i must contain, tab-separated (an empty line: none)",
    )  # fmt: skip
    if constraints is not None:
        constraints = [[p.strip() for p in line.split("\t") if p.strip()] for line in constraints]
    if args.ensemble:
        try:
            translator = Translator.ensemble(
                [args.run_dir, *args.ensemble], allow_unfinished=args.allow_unfinished
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None
    else:
        translator = Translator.from_run_directory(
            args.run_dir, allow_unfinished=args.allow_unfinished
        )
    wanted = {
        "--alignments": args.alignments,
        "--replace-unknown": args.replace_unknown,
        "--plot-attention": bool(args.plot_attention),
    }
    wanted = [flag for flag, on in wanted.items() if on]
    if wanted and not translator.has_attention:
        raise ConfigError(f"{' and '.join(wanted)}: only for a model that reports attention")
    start = time.perf_counter()
    if args.sample:
        results = translator.sample(
            texts, args.num_samples, seed=args.seed or 0, controls=controls, prefixes=prefixes,
            **options,
        )  # fmt: skip
    else:
        results = translator.translate_nbest(
            texts, args.beam, args.nbest, args.length_penalty, controls=controls,
            prefixes=prefixes, constraints=constraints,
        )  # fmt: skip
    _print_hypotheses(translator, texts, results, args)
    figures = {
        "run_dir": args.run_dir,
        "count": len(results),
        "beam": args.beam,
        "nbest": args.nbest,
        **({"num_samples": args.num_samples, "seed": args.seed or 0} if args.sample else {}),
        "seconds": round(time.perf_counter() - start, 3),
        "invalid_utf8": invalid,
    }
    if constraints is not None:
        best = [hypotheses[0][0] for hypotheses in results]
        asked = [(p, out) for phrases, out in zip(constraints, best, strict=True) for p in phrases]
        figures["constraints"] = len(asked)
        figures["constraints_met"] = sum(phrase in out for phrase, out in asked)
    if args.plot_attention:
        if not texts:
            raise ConfigError("--plot-attention needs at least one input text")
        source, target, weights = translator.attention(texts[0])
        figures["attention_plot"] = plot_attention(
            source, target, weights, args.plot_attention, title=texts[0]
        )
        print(f"Attention of the first input written to {args.plot_attention}", file=sys.stderr)
    return figures


def _print_hypotheses(translator, texts, results, args):
    """Prints the outputs: one line per input, or `i ||| text ||| score` per hypothesis; with
    `--replace-unknown` unk placeholders replaced, with `--alignments` ` ||| i-j ...`
    appended (Pharaoh pairs: source token i, target token j)."""
    index = [i for i, hypotheses in enumerate(results) for _ in hypotheses]
    outputs = [text for hypotheses in results for text, _ in hypotheses]
    scores = [score for hypotheses in results for _, score in hypotheses]
    sources = [texts[i] for i in index]
    if args.replace_unknown:
        outputs = translator.replace_unknown(sources, outputs)
    alignments = translator.align(sources, outputs) if args.alignments else None
    single = len(outputs) == len(results)
    for k, text in enumerate(outputs):
        line = text if single else f"{index[k]} ||| {text} ||| {scores[k]:.4f}"
        if alignments is not None:
            line += f" ||| {alignments[k].pharaoh()}"
        print(line)


def cmd_score(args):
    from keras_s2s import Translator
    from keras_s2s.evaluation.evaluate import read_test_set

    sources, targets = read_test_set(args.source, args.target)
    translator = Translator.from_run_directory(args.run_dir, allow_unfinished=args.allow_unfinished)
    start = time.perf_counter()
    scores = translator.score(sources, targets)
    values = [s.normalized() if args.normalize else s.log_prob for s in scores]
    for score, value in zip(scores, values, strict=True):
        line = f"{value:.4f}"
        if args.tokens:
            pairs = zip(score.tokens, score.token_log_probs, strict=True)
            line += " ||| " + " ".join(f"{token}:{lp:.4f}" for token, lp in pairs)
        print(line)
    return {
        "run_dir": args.run_dir,
        "count": len(scores),
        "normalized": args.normalize,
        "mean": round(sum(values) / len(values), 4) if values else None,
        "truncated": sum(s.truncated for s in scores),
        "seconds": round(time.perf_counter() - start, 3),
    }


_OPTIONS = {
    "num_samples": "--num-samples",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "min_ratio": "--min-length-ratio",
    "max_ratio": "--max-length-ratio",
    "no_repeat_ngram_size": "--no-repeat-ngram",
}


def _as_options(error: ValueError) -> str:
    """A decoding setting's `ValueError`, its arguments named as the options that set them."""
    message = str(error).replace("`", "")
    for name, flag in _OPTIONS.items():
        message = message.replace(name, flag)
    return message


def _input_texts(arguments: list[str]) -> tuple[list[str], list[int]]:
    """The texts to translate (the arguments, else stdin's lines) and the 0-based indices of
    those whose bytes were not valid UTF-8 (replaced by U+FFFD, as the SavedModel does)."""
    if arguments:  # Python keeps undecodable argument bytes as surrogates.
        raw = [os.fsencode(argument) for argument in arguments]
    else:
        raw = [line.rstrip(b"\n").removesuffix(b"\r") for line in sys.stdin.buffer]
    texts, invalid = [], []
    for index, data in enumerate(raw):
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(data.decode("utf-8", errors="replace"))
            invalid.append(index)
    return texts, invalid


def _show_progress() -> bool:
    """Whether progress bars (evaluation, export) are drawn: when stderr is a terminal."""
    return sys.stderr.isatty()


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def cmd_export(args):
    from keras_s2s.export import FORMATS, export

    formats = FORMATS if args.format == "all" else (args.format,)
    paths = export(
        args.run_dir,
        formats=formats,
        output_root=args.output_root,
        name=args.name,
        beam_size=args.beam_size,
        quantizations=_split_list(args.quantization),
        allow_unfinished=args.allow_unfinished,
        progress=_show_progress(),
        ensemble=args.ensemble,
        signatures=_split_list(args.signatures) if args.signatures else None,
    )
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return {"run_dir": args.run_dir, **{k: str(v) for k, v in paths.items()}}


def _side_by_side(translator, paths, examples):
    """Translates `examples` with the Keras model and each exported artifact, loaded fresh."""
    import tensorflow as tf

    from keras_s2s.export.tflite_runtime import TFLiteTranslator

    keras_out = translator.translate(examples)
    served = tf.saved_model.load(str(paths["savedmodel"])).signatures["serving_default"]
    saved_out = [
        t.decode("utf-8") for t in served(text=tf.constant(examples))["translations"].numpy()
    ]
    tflite_out = TFLiteTranslator(paths["tflite"]).translate(examples)
    print("Greedy translations: Keras | SavedModel | TFLite")
    for row in zip(examples, keras_out, saved_out, tflite_out, strict=True):
        print("  {!r} -> {!r} | {!r} | {!r}".format(*row))
    return {
        source: {"keras": k, "savedmodel": s, "tflite": t}
        for source, k, s, t in zip(examples, keras_out, saved_out, tflite_out, strict=True)
    }


def cmd_run(args):
    from keras_s2s import Translator
    from keras_s2s.evaluation import evaluate_run
    from keras_s2s.training import train

    config = _config_from_args(args)
    run_dir = _output_dir(args, config)
    summary = train(config, run_dir, finished_run="move")
    _print_training(summary)
    translator = Translator.from_run_directory(run_dir)
    figures = evaluate_run(run_dir, split="test", translator=translator, progress=_show_progress())
    _print_scores(figures)
    examples = config["evaluation"]["examples"]
    beam = config["evaluation"]["examples_beam_size"]
    nbest = translator.translate_nbest(examples, beam_size=beam) if examples else []
    translations = [hypotheses[0][0] for hypotheses in nbest]
    print(f"Examples (beam search, beam size {beam}):")
    for source, hypotheses in zip(examples, nbest, strict=True):
        print(f"  {source!r} -> {hypotheses[0][0]!r} (log-probability {hypotheses[0][1]:.4f})")
    from keras_s2s.export import export

    paths = export(run_dir, output_root=args.export_root, beam_size=beam, progress=_show_progress())
    for kind, path in paths.items():
        print(f"Exported {kind}: {path}")
    artifacts = _side_by_side(translator, paths, examples) if examples else {}
    return {
        "pipeline": config["name"],
        "run_dir": str(run_dir),
        "exact_match": figures["exact_match"],
        "bleu": figures["bleu"],
        "chrf": figures["chrf"],
        "cer": figures["cer"],
        "token_accuracy": summary.get("val_token_accuracy"),
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "examples": dict(zip(examples, translations, strict=True)),
        "exports": {k: str(v) for k, v in paths.items()},
        "artifacts": artifacts,
    }


class _Parser(argparse.ArgumentParser):
    """Usage errors print this (sub)command's usage, then one `keras-s2s: error: ...` line."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"keras-s2s: error: {message}\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each subcommand's own parser (options and positional
    arguments may come in any order: `main` parses a subcommand's arguments intermixed)."""
    parser = _Parser(
        prog="keras-s2s", description="Sequence-to-sequence models for Keras 3 on TensorFlow."
    )
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
        p.set_defaults(func=func)
        commands[name] = p
        return p

    def pipeline_args(p, training_flags=True):
        p.add_argument(
            "pipeline",
            nargs="?" if p.prog.endswith("run") else None,
            default=DEFAULT_PIPELINE,
            help="pipeline name or path to a .toml file",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one config value (TOML syntax), repeatable",
        )
        if training_flags:
            p.add_argument("--output-dir", help="run directory (default runs/<pipeline>)")
            p.add_argument("--epochs", type=int)
            p.add_argument("--seed", type=int)
            p.add_argument("--batch-tokens", type=int, help="token budget per batch")
            p.add_argument(
                "--strategy",
                choices=STRATEGIES,
                help="tf.distribute strategy (training.strategy; multi_worker reads TF_CONFIG)",
            )

    def run_dir_args(p):
        p.add_argument("run_dir")
        p.add_argument(
            "--allow-unfinished",
            action="store_true",
            help="use the last checkpoint of a run that failed or was interrupted",
        )

    p = command("data", cmd_data, "describe a pipeline's data")
    pipeline_args(p, training_flags=False)
    p = command("train", cmd_train, "train a pipeline into a run directory")
    pipeline_args(p)
    p.add_argument(
        "--init-from", metavar="RUN_DIR", help="start from this run's weights and tokenizers"
    )
    p = command(
        "evaluate",
        cmd_evaluate,
        "score a run directory (sacreBLEU, chrF, exact match; greedy and beam search) on its "
        "test split or on your own files",
    )
    run_dir_args(p)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--limit", type=int, default=0, help="only the first N examples")
    p.add_argument("--source", metavar="FILE", help="your own test sources (plain or .gz)")
    p.add_argument("--reference", metavar="FILE", help="their references, one a line")
    p.add_argument(
        "--beam", type=int, help="beam size of the second decoding (default evaluation.beam_size)"
    )
    p.add_argument(
        "--length-penalty", type=float, help="GNMT alpha (default evaluation.length_penalty)"
    )
    p = command("score", cmd_score, "score given translations: log-probability of each pair")
    run_dir_args(p)
    p.add_argument("--source", metavar="FILE", required=True, help="sources (plain or .gz)")
    p.add_argument("--target", metavar="FILE", required=True, help="translations, one a line")
    p.add_argument("--normalize", action="store_true", help="per token (eos counted)")
    p.add_argument("--tokens", action="store_true", help="each token's log-probability too")
    p = command("tune", cmd_tune, "search hyperparameters with keras-tuner (resumable)")
    pipeline_args(p, training_flags=False)
    p.add_argument("--tuner", choices=list(TUNERS), help="search.tuner")
    p.add_argument("--max-trials", type=int, help="search.max_trials")
    p.add_argument(
        "--epochs", dest="trial_epochs", type=int, help="epochs a trial trains (search.epochs)"
    )
    p.add_argument("--directory", default="tuning", help="search state; rerun with it to resume")
    p = command("translate", cmd_translate, "translate arguments (or stdin lines)")
    run_dir_args(p)
    p.add_argument("text", nargs="*", help="texts to translate (default: read stdin)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per input (<= --beam)")
    p.add_argument("--length-penalty", type=float, default=0.0, help="GNMT alpha (>= 0)")
    p.add_argument("--plot-attention", metavar="PNG", help="heatmap of the first input's attention")
    p.add_argument("--sample", action="store_true", help="random sampling instead of search")
    p.add_argument("--num-samples", type=int, default=1, help="samples per input (--sample)")
    p.add_argument("--temperature", type=float, help="> 0; default 1 (--sample)")
    p.add_argument("--top-k", type=int, help="keep the K most likely tokens; 0: all (--sample)")
    p.add_argument("--top-p", type=float, help="nucleus: in (0, 1]; 1: all (--sample)")
    p.add_argument("--seed", type=int, help="samples' seed, default 0 (--sample)")
    p.add_argument("--min-length-ratio", type=float, default=0.0, help="x source tokens")
    p.add_argument("--max-length-ratio", type=float, default=0.0, help="x source tokens")
    p.add_argument("--no-repeat-ngram", type=int, default=0, help="no N-gram twice")
    p.add_argument("--ban", action="append", default=[], metavar="WORD", help="never output")
    p.add_argument("--prefix-file", metavar="FILE", help="line i: the start of output i")
    p.add_argument(
        "--constraints-file", metavar="FILE", help="line i: phrases output i must contain (tabs)"
    )
    p.add_argument("--alignments", action="store_true", help="append Pharaoh i-j pairs")
    p.add_argument("--replace-unknown", action="store_true", help="unk <- attended source token")
    p.add_argument(
        "--ensemble", action="append", default=[], metavar="RUN_DIR", help="average with it"
    )
    p = command("export", cmd_export, "export a run directory (SavedModel, TFLite, CTranslate2)")
    run_dir_args(p)
    p.add_argument(
        "--format",
        default="savedmodel",
        choices=[*EXPORTERS, "all"],
        help="all: savedmodel and tflite",
    )
    p.add_argument("--output-root", default="saved_models", help="default saved_models")
    p.add_argument("--name", help="model name (default: the run's pipeline)")
    p.add_argument("--beam-size", type=int, default=4, help="beam of the beam_search signature")
    p.add_argument(
        "--ensemble", action="append", default=[], metavar="RUN_DIR", help="one model with it"
    )
    p.add_argument("--signatures", metavar="LIST", help="SavedModel signatures (default: all)")
    p.add_argument(
        "--quantization",
        default="float32",
        help="TFLite variants, comma-separated: float32,float16,int8 (CTranslate2: one)",
    )
    p = command("run", cmd_run, "train, evaluate, translate examples and export (the main job)")
    pipeline_args(p)
    p.add_argument("--export-root", default="saved_models", help="where exports go")
    return parser, commands


VERBOSE_HELP = "show TensorFlow's own start-up and runtime messages and warnings"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parses a command line; a subcommand's options and arguments may come in any order."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    position = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    head = argv[:position] if position is not None else argv
    if position is None or argv[position] not in commands or set(head) - {"--verbose"}:
        return parser.parse_args(argv)  # Help, or the usage error naming the problem.
    args = commands[argv[position]].parse_intermixed_args(argv[position + 1 :])
    args.command = argv[position]
    args.verbose = args.verbose or "--verbose" in head
    return args


class _QuietNativeStderr:
    """Sends what TensorFlow's C++ code writes to file descriptor 2 (start-up, loader and
    runtime logs) and Python warnings/TensorFlow logging to a temporary log file, while
    keras-s2s's own messages still reach the terminal through `sys.stderr`.

    Only applies when `sys.stderr` is the process's real descriptor 2 (not under a test's
    capture). `dump()` re-prints the log (on an unexpected failure); `close()` restores
    everything and deletes the log.
    """

    def __init__(self):
        self.active = False
        try:
            self.active = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):
            return
        if not self.active:
            return
        import logging
        import tempfile
        import warnings

        sys.stderr.flush()
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.saved_fd = os.dup(2)
        os.dup2(self.log.fileno(), 2)
        self.saved_stderr = sys.stderr
        sys.stderr = open(  # noqa: SIM115 (closed in close())
            self.saved_fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False
        )
        self.log_text = open(  # noqa: SIM115
            os.dup(2), "w", encoding="utf-8", errors="backslashreplace", buffering=1
        )
        self.saved_showwarning = warnings.showwarning
        warnings.showwarning = lambda *a, **k: self.log_text.write(warnings.formatwarning(*a[:5]))
        handler = logging.StreamHandler(self.log_text)
        for name in ("tensorflow", "absl", "h5py"):
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = [handler], False

    def dump(self, tail: int = 60):
        if not self.active:
            return
        self.log_text.flush()
        self.log.seek(0)
        lines = self.log.read().decode("utf-8", "backslashreplace").splitlines()
        if lines:
            print("TensorFlow's messages (last lines):", file=sys.stderr)
            print("\n".join(lines[-tail:]), file=sys.stderr)

    def close(self):
        if not self.active:
            return
        import warnings

        sys.stderr.flush()
        warnings.showwarning = self.saved_showwarning
        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        sys.stderr = self.saved_stderr
        self.log.close()
        self.active = False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet = None
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        quiet = _QuietNativeStderr()
    from keras_s2s.errors import KerasS2SError
    from keras_s2s.interrupts import Interrupted, ignore_signals, signals_raise

    try:
        with signals_raise():  # SIGTERM too ends in `finally` blocks and cleanups.
            import tensorflow_datasets as tfds

            tfds.display_progress_bar(False)
            figures = args.func(args)
    except KerasS2SError as e:
        _close(quiet)
        print(f"keras-s2s: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        ignore_signals()  # Stopping already: a later signal must not cut the exit short.
        _close(quiet)
        print(f"keras-s2s: {_interrupted_line(args, e, argv)}", file=sys.stderr)
        return e.exit_code if isinstance(e, Interrupted) else 130
    except Exception as e:
        if quiet is not None:
            quiet.dump()
        _close(quiet)
        import traceback

        traceback.print_exc()
        print(
            f"keras-s2s: error: unexpected {type(e).__name__} (a bug in keras-s2s or below it; "
            "the traceback is above, run with --verbose for all messages)",
            file=sys.stderr,
        )
        return 1
    _close(quiet)
    sys.stdout.flush()
    print(json.dumps(figures, default=str))
    return 0


def _interrupted_line(args, error: KeyboardInterrupt, argv) -> str:
    """The one line an interrupted command ends with: what stopped and how to go on."""
    import shlex

    what = str(error) or "interrupted"
    command = "keras-s2s " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.command in ("train", "run"):
        return f"{what}; resume with: {command}"
    if args.command == "tune":
        return f"{what}; the trial in progress runs again when you resume with: {command}"
    if args.command == "export":
        return f"{what}; no version was written"
    return what


def _close(quiet):
    if quiet is not None:
        quiet.close()


if __name__ == "__main__":
    sys.exit(main())
