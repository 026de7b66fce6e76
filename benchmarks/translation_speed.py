"""Translation speed: keras-s2s's `Translator` against CTranslate2 on the same weights.

    python benchmarks/translation_speed.py RUN [--split test] [--limit 1000] [--repeats 2]
        [--latency 50] [--threads 2] [--beam 4] [--out benchmarks/translation_speed.md]

RUN is a Transformer run (e.g. `keras-s2s train multi30k_transformer_de_en`). It is exported into a
temporary folder as a SavedModel and a TFLite file, and with `keras-s2s export --format ctranslate2`
twice (float32 and int8 weights), and the first `--limit` sources of the split (test_2016_flickr by
default: the data the Multi30k table translates) are translated by each system: keras-s2s's Python
API (`Translator.translate_nbest`, its length-sorted batches of `DECODING_BATCH_SIZE`; also with
`jit_compile=True`, XLA, which compiles once per batch shape: its warm-up is one pass over the
whole split), the SavedModel (`serving_default`, `beam_search`; the same length-sorted batches),
the TFLite file through the shipped wrapper (`TFLiteTranslator`, `--threads` threads, greedy only:
the artifact decodes greedily in the graph; length-sorted batches of 64), the command line
(`keras-s2s translate RUN`
reading the sources from stdin: a new process each time, start-up and tracing included) and
CTranslate2 through the shipped wrapper (`CTranslate2Translator`, `--threads` intra-op threads;
TensorFlow uses every core), greedy and beam `--beam` without a length penalty (both rank hypotheses
by their log-probability then, so both give the same outputs). Each system and decoding is warmed up
first (a small batch), then the whole split is translated `--repeats` times, systems interleaved,
and the median time is kept. Batch-1 latency: the first `--latency` sources one at a time, greedy,
median milliseconds (not for the command line, nor XLA). BLEU: sacreBLEU of each system's outputs;
"same as keras-s2s": how many outputs equal keras-s2s's. Nothing is chosen here: the model and its
settings were chosen on validation by its pipeline.

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import tensorflow as tf
from _results import Results
from multi30k_constraints import split_texts, timed

from keras_s2s.evaluation.scores import score_translations
from keras_s2s.export import export
from keras_s2s.export.ctranslate2_runtime import CTranslate2Translator
from keras_s2s.export.tflite_runtime import TFLiteTranslator
from keras_s2s.translator import DECODING_BATCH_SIZE, Translator

ROOT = Path(__file__).resolve().parent.parent


def keras_system(translator):
    def translate(texts, beam):
        return [h[0][0] for h in translator.translate_nbest(texts, beam, 1, 0.0)]

    return translate


def in_sorted_chunks(texts, size, run):
    """`run(chunk) -> outputs` over length-sorted chunks of `size` texts (as `Translator`
    batches), the outputs in the order of `texts`."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs = [None] * len(texts)
    for start in range(0, len(texts), size):
        indices = order[start : start + size]
        for index, output in zip(indices, run([texts[i] for i in indices]), strict=True):
            outputs[index] = output
    return outputs


def savedmodel_system(path):
    served = tf.saved_model.load(str(path))
    greedy, beam_search = served.signatures["serving_default"], served.signatures["beam_search"]

    def run(chunk, beam):
        text = tf.constant(chunk)
        if beam == 1:
            out = greedy(text=text)["translations"].numpy()
        else:
            out = beam_search(
                text=text, length_penalty=tf.constant(0.0), num_results=tf.constant(1)
            )["translations"].numpy()[:, 0]
        return [t.decode("utf-8") for t in out]

    def translate(texts, beam):
        return in_sorted_chunks(texts, DECODING_BATCH_SIZE, lambda chunk: run(chunk, beam))

    return translate


def tflite_system(path, threads):
    engine = TFLiteTranslator(path, num_threads=threads)

    def translate(texts, beam):
        if beam != 1:
            return None  # The TFLite artifact decodes greedily in the graph.
        # Chunks of 64: its outputs include every step's logits ([B, T, V] floats).
        return in_sorted_chunks(texts, 64, engine.translate)

    return translate


def command_line_system(run):
    """`keras-s2s translate RUN` on stdin's lines: a whole process each time (start-up,
    loading and tracing included)."""

    def translate(texts, beam):
        command = [sys.executable, "-m", "keras_s2s.cli.main", "translate", str(run)]
        command += ["--beam", str(beam), "--length-penalty", "0"]
        done = subprocess.run(
            command, input="\n".join(texts) + "\n", capture_output=True, text=True, check=True
        )
        return done.stdout.splitlines()[: len(texts)]

    return translate


def ctranslate2_system(engine):
    def translate(texts, beam):
        return engine.translate(texts, beam_size=beam, length_penalty=0.0)

    return translate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "translation_speed.md"))
    args = parser.parse_args()
    results = Results()
    sources, references = split_texts(args.run, args.split)
    sources, references = sources[: args.limit], references[: args.limit]
    folder = Path(tempfile.mkdtemp(prefix="translation_speed_"))
    systems = {"keras-s2s Translator": keras_system(Translator.from_run_directory(args.run))}
    xla = Translator.from_run_directory(args.run, jit_compile=True)
    systems["keras-s2s Translator XLA"] = keras_system(xla)
    paths = export(args.run, output_root=folder / "keras")
    systems["keras-s2s SavedModel"] = savedmodel_system(paths["savedmodel"])
    systems["keras-s2s TFLite"] = tflite_system(paths["tflite"], args.threads)
    systems["keras-s2s translate (command)"] = command_line_system(args.run)
    for quantization in ("float32", "int8"):
        path = export(args.run, formats=("ctranslate2",), output_root=folder / quantization,
                      quantizations=(quantization,))["ctranslate2"]  # fmt: skip
        engine = CTranslate2Translator(path, intra_threads=args.threads)
        systems[f"CTranslate2 {quantization}"] = ctranslate2_system(engine)
    decodings = {"greedy": 1, f"beam {args.beam}": args.beam}

    seconds = {(s, d): [] for s in systems for d in decodings}
    outputs = {}
    for name, translate in systems.items():  # warm-up: traces and first allocations
        for beam in decodings.values():
            if name == "keras-s2s Translator XLA":  # XLA compiles once per batch shape
                translate(sources, beam)
            elif name != "keras-s2s translate (command)":  # (a new process each time)
                translate(sources[:7], beam)
                translate(sources[-8:], beam)
    for _ in range(args.repeats):
        for name, translate in systems.items():
            for decoding, beam in decodings.items():
                out, took = timed(lambda t=translate, b=beam: t(sources, b))
                if out is None:  # not available in this system
                    seconds.pop((name, decoding), None)
                    continue
                outputs[(name, decoding)] = out
                seconds[(name, decoding)].append(took)
                print(name, decoding, f"{took:.1f} s", flush=True)
    latency = {}
    for name, translate in systems.items():
        if name in ("keras-s2s translate (command)", "keras-s2s Translator XLA"):
            continue  # (a process per call; a compile per source width)
        times = [timed(lambda t=translate, s=s: t([s], 1))[1] for s in sources[: args.latency]]
        latency[name] = 1000 * statistics.median(times)
        print(name, f"batch 1: {latency[name]:.1f} ms", flush=True)

    rows, reference_name = {}, "CTranslate2 float32"
    for (name, decoding), times in seconds.items():
        best = outputs[(name, decoding)]
        ours = outputs[("keras-s2s Translator", decoding)]
        rows[f"{name} / {decoding}"] = {
            "seconds": statistics.median(times),
            "sentences_per_second": len(sources) / statistics.median(times),
            "bleu": score_translations(best, references)["bleu"],
            "same_as_keras_s2s": sum(a == b for a, b in zip(best, ours, strict=True)),
        }
    for key, row in rows.items():
        decoding = key.split(" / ")[1]
        row["ratio_to_ctranslate2_float32"] = (
            row["seconds"] / rows[f"{reference_name} / {decoding}"]["seconds"]
        )

    lines = [
        "# Translation speed: keras-s2s and CTranslate2 on the same weights",
        "",
        f"Run: `{args.run}`; the first {len(sources)} sources of its {args.split} split; "
        f"CTranslate2 {args.threads} intra-op thread(s); TensorFlow all cores; median of "
        f"{args.repeats} interleaved repeats after a warm-up. Beam {args.beam} without a length "
        "penalty on both sides (equal rankings). sacreBLEU of each system's outputs; "
        '"same": outputs equal to keras-s2s\'s.',
        "",
        "| system | decoding | sentences/s | time / CTranslate2 float32 | BLEU | same |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, row in rows.items():
        name, decoding = key.split(" / ")
        lines.append(
            f"| {name} | {decoding} | {row['sentences_per_second']:.1f} | "
            f"{row['ratio_to_ctranslate2_float32']:.2f}x | {row['bleu']:.2f} | "
            f"{row['same_as_keras_s2s']} of {len(sources)} |"
        )
    lines += [
        "",
        f"Batch-1 latency (greedy, median of the first {args.latency} sources, one at a time):",
        "",
        "| system | ms per sentence |",
        "|---|---:|",
        *(f"| {name} | {ms:.1f} |" for name, ms in latency.items()),
    ]
    results.write(args.out, lines)
    print(json.dumps({"rows": rows, "latency_ms": latency}))


if __name__ == "__main__":
    main()
