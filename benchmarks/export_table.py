"""Export table: size, latency and agreement with Keras of each exported artifact, run by hand.

    python benchmarks/export_table.py PIPELINE[+section.key=value...] [...] [--epochs N]
        [--seed 1] [--set section.key=value ...] [--limit N] [--latency-examples 200]
        [--out benchmarks/export_table.md]

Trains each pipeline (with `--epochs` and `--set` over its own settings, then the row's own
`+section.key=value` changes, e.g. `dlfs2_date_attention+model.decoder=bahdanau`; seed
`--seed`) into a temporary run directory, exports a SavedModel and float32 / float16 / int8
TFLite files, then on the run's test split (all of it unless --limit):
- agreement: the share of sentences whose greedy output equals the Keras model's exactly;
- latency: median milliseconds per sentence at batch size 1 (first --latency-examples);
- size: the SavedModel folder / the `.tflite` file, in KiB.
Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from _results import Results

from keras_s2s.config import apply_overrides, load_pipeline, parse_override
from keras_s2s.data import as_strings, load_splits
from keras_s2s.export import export
from keras_s2s.export.tflite_runtime import TFLiteTranslator
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import train
from keras_s2s.translator import Translator

QUANTIZATIONS = ("float32", "float16", "int8")


def folder_kib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024


def median_ms(translate, texts) -> float:
    translate(texts[:1])  # warm-up (tracing)
    times = []
    for text in texts:
        start = time.perf_counter()
        translate([text])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(run_dir: Path, root: Path, limit: int, latency_examples: int) -> dict:
    run = RunDirectory(run_dir)
    config = run.config()
    sources, _ = as_strings(load_splits(config["data"], splits=("test",))["test"])
    sources = sources[:limit] if limit else sources
    paths = export(run_dir, output_root=root, name=run.path.name, quantizations=QUANTIZATIONS)

    keras_translator = Translator.from_run_directory(run_dir)
    served = tf.saved_model.load(str(paths["savedmodel"])).signatures["serving_default"]

    def savedmodel(texts):
        out = served(text=tf.constant(texts))["translations"].numpy()
        return [t.decode("utf-8") for t in out]

    translators = {"keras": keras_translator.translate, "savedmodel": savedmodel}
    for q in QUANTIZATIONS:
        translators[f"tflite-{q}"] = TFLiteTranslator(paths["tflite"], q).translate
    latency_texts = sources[:latency_examples]
    rows = {}
    reference = None
    for kind, translate in translators.items():
        outputs = []
        for start in range(0, len(sources), 500):
            outputs += translate(sources[start : start + 500])
        if reference is None:
            reference = outputs
        if kind == "keras":
            size = run.model_path.stat().st_size / 1024
        elif kind == "savedmodel":
            size = folder_kib(paths["savedmodel"])
        else:
            file = paths["tflite"] / f"model.{kind.removeprefix('tflite-')}.tflite"
            size = file.stat().st_size / 1024
        agree = sum(o == r for o, r in zip(outputs, reference, strict=True))
        rows[kind] = {
            "agreement": agree / len(sources),
            "latency_ms": median_ms(translate, latency_texts),
            "size_kib": size,
        }
    return {"examples": len(sources), "artifacts": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipelines", nargs="+")
    parser.add_argument("--epochs", type=int, default=0, help="0: the pipeline's own")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--latency-examples", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/export_table.md")
    args = parser.parse_args()
    header = Results()
    overrides = dict(parse_override(a) for a in args.set)
    overrides["training.seed"] = args.seed
    if args.epochs:
        overrides["training.epochs"] = args.epochs

    results, trained = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for index, name in enumerate(args.pipelines):
            pipeline, *changes = name.split("+")
            row = {**overrides, **dict(parse_override(c) for c in changes)}
            run_dir = Path(root) / "runs" / f"{index}-{pipeline}"
            summary = train(apply_overrides(load_pipeline(pipeline), row), run_dir, verbose=2)
            trained[name] = f"{summary['epochs']} epochs, epoch {summary['best_epoch']} kept"
            results[name] = measure(run_dir, Path(root), args.limit, args.latency_examples)
            print(json.dumps({name: results[name]}), flush=True)

    settings = ", ".join(f"{k}={v}" for k, v in overrides.items())
    lines = [
        "# Exported artifacts: size, latency and agreement with the Keras model",
        "",
        f"Each pipeline trained by this script ({settings}; "
        + "; ".join(f"{n}: {t}" for n, t in trained.items())
        + "), then exported (SavedModel; TFLite float32, float16 and dynamic-range int8). "
        "Agreement: the share of test sentences whose greedy output equals the Keras model's "
        "exactly. Latency: median ms per sentence at batch size 1 over the first "
        f"{args.latency_examples} test sentences. Size: the SavedModel folder or the `.tflite` "
        "file.",
        "",
        "| run | artifact | size KiB | ms/sentence (batch 1) | agreement with Keras greedy |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        for kind, row in result["artifacts"].items():
            lines.append(
                f"| {name} | {kind} | {row['size_kib']:.0f} | {row['latency_ms']:.2f} "
                f"| {100 * row['agreement']:.2f}% of {result['examples']} |"
            )
    print(header.write(args.out, lines))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
