"""The `keras-s2s` command line: data, train, evaluate, translate, run.

Every subcommand prints human-readable output and, as its last stdout line, one JSON object
with its figures. Bad input exits with status 2 and one `keras-s2s: error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_PIPELINE = "date_attention"


def _config_from_args(args):
    from keras_s2s.config import apply_overrides, load_pipeline, parse_override

    config = load_pipeline(args.pipeline)
    overrides = dict(parse_override(a) for a in args.set)
    for flag, key in (
        ("epochs", "training.epochs"),
        ("seed", "training.seed"),
        ("batch_tokens", "training.batch_tokens"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    return apply_overrides(config, overrides) if overrides else config


def _output_dir(args, config) -> Path:
    path = Path(args.output_dir or Path("runs") / config["name"])
    if path.exists() and any(path.iterdir()):
        # Never lose work: an earlier run is moved aside, not overwritten.
        backup = path.with_name(f"{path.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        path.rename(backup)
        print(f"Moved the earlier run in {path} to {backup}", file=sys.stderr)
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
        )
    return figures


def cmd_train(args):
    from keras_s2s.training import train

    config = _config_from_args(args)
    summary = train(config, _output_dir(args, config))
    print(
        f"Trained {summary['epochs']} epochs in {summary['train_seconds']} s; "
        f"best epoch {summary['best_epoch']}; run directory {summary['run_dir']}"
    )
    return summary


def _print_scores(figures):
    print(
        f"{figures['split']}: exact match {figures['exact_match']:.4f} on {figures['examples']} "
        f"examples; BLEU {figures['bleu']:.2f}; chrF {figures['chrf']:.2f}; "
        f"CER {figures['cer']:.4f}"
    )


def cmd_evaluate(args):
    from keras_s2s.evaluation import evaluate_run

    figures = evaluate_run(args.run_dir, split=args.split, limit=args.limit)
    _print_scores(figures)
    return {"run_dir": args.run_dir, **figures}


def cmd_translate(args):
    from keras_s2s import Translator
    from keras_s2s.errors import ConfigError
    from keras_s2s.evaluation import plot_attention

    if args.beam < 1 or not 1 <= args.nbest <= args.beam:
        raise ConfigError(
            f"--nbest must be between 1 and --beam; got --beam {args.beam} --nbest {args.nbest}"
        )
    if args.length_penalty < 0:
        raise ConfigError(f"--length-penalty must be >= 0; got {args.length_penalty}")
    texts = args.text or [line.rstrip("\n") for line in sys.stdin]
    translator = Translator.from_run_directory(args.run_dir)
    start = time.perf_counter()
    results = translator.translate_nbest(texts, args.beam, args.nbest, args.length_penalty)
    for index, hypotheses in enumerate(results):
        if args.nbest == 1:
            print(hypotheses[0][0])
        else:
            for text, score in hypotheses:
                print(f"{index} ||| {text} ||| {score:.4f}")
    figures = {
        "run_dir": args.run_dir,
        "count": len(results),
        "beam": args.beam,
        "nbest": args.nbest,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if args.plot_attention:
        if not translator.has_attention:
            raise ConfigError("--plot-attention needs an attention model (decoder bahdanau/luong)")
        if not texts:
            raise ConfigError("--plot-attention needs at least one input text")
        source, target, weights = translator.attention(texts[0])
        figures["attention_plot"] = plot_attention(
            source, target, weights, args.plot_attention, title=texts[0]
        )
        print(f"Attention of the first input written to {args.plot_attention}", file=sys.stderr)
    return figures


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
    summary = train(config, run_dir)
    translator = Translator.from_run_directory(run_dir)
    figures = evaluate_run(run_dir, split="test", translator=translator)
    _print_scores(figures)
    examples = config["evaluation"]["examples"]
    beam = config["evaluation"]["examples_beam_size"]
    nbest = translator.translate_nbest(examples, beam_size=beam) if examples else []
    translations = [hypotheses[0][0] for hypotheses in nbest]
    print(f"Examples (beam search, beam size {beam}):")
    for source, hypotheses in zip(examples, nbest, strict=True):
        print(f"  {source!r} -> {hypotheses[0][0]!r} (log-probability {hypotheses[0][1]:.4f})")
    from keras_s2s.export import export

    paths = export(run_dir, output_root=args.export_root, beam_size=beam)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-s2s", description="Sequence-to-sequence models for Keras 3 on TensorFlow."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser("data", help="describe a pipeline's data")
    pipeline_args(p, training_flags=False)
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("train", help="train a pipeline into a run directory")
    pipeline_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="score a run directory on its test split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--limit", type=int, default=0, help="only the first N examples")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("translate", help="translate arguments (or stdin lines)")
    p.add_argument("run_dir")
    p.add_argument("text", nargs="*", help="texts to translate (default: read stdin)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per input (<= --beam)")
    p.add_argument("--length-penalty", type=float, default=0.0, help="GNMT alpha (>= 0)")
    p.add_argument("--plot-attention", metavar="PNG", help="heatmap of the first input's attention")
    p.set_defaults(func=cmd_translate)
    p = sub.add_parser("export", help="export a run directory (SavedModel and/or TFLite)")
    p.add_argument("run_dir")
    p.add_argument("--format", default="savedmodel", choices=["savedmodel", "tflite", "all"])
    p.add_argument("--output-root", default="saved_models", help="default saved_models")
    p.add_argument("--name", help="model name (default: the run's pipeline)")
    p.add_argument("--beam-size", type=int, default=4, help="beam of the beam_search signature")
    p.add_argument(
        "--quantization",
        default="float32",
        help="TFLite variants, comma-separated: float32,float16,int8",
    )
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("run", help="train, evaluate, translate examples and export (the main job)")
    pipeline_args(p)
    p.add_argument("--export-root", default="saved_models", help="where exports go")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from keras_s2s.errors import KerasS2SError

    try:
        import tensorflow_datasets as tfds

        tfds.display_progress_bar(False)
        figures = args.func(args)
    except KerasS2SError as e:
        print(f"keras-s2s: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-s2s: interrupted", file=sys.stderr)
        return 130
    sys.stdout.flush()
    print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
