"""Training step time of each speed option, side by side in one run. Run by hand.

    python benchmarks/precision_speed.py [--steps 30]
        [--out benchmarks/precision_speed.md]

The models of the `date_attention` pipeline (Bahdanau LSTM, 256 wide) and of
`date_transformer` (2+2 layers, d_model 128), built from the pipelines' `[model]` sections,
train on one fixed batch shaped like the date task's (64 examples, sources of 32 characters,
targets of 11; 40-character vocabulary) under float32, float32 with XLA (`jit_compile`),
`mixed_float16`, `mixed_bfloat16` and `mixed_bfloat16` with XLA. Each option's step time is
the median of `--steps` `train_on_batch` calls after 3 warm-up calls (tracing, compiling);
the options of a model alternate round by round, so a machine's drift hits them alike. The
ratio is against float32 (below 1: faster). Writes the whole Markdown file through
benchmarks/_results.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from _results import Results

from keras_s2s.config import load_pipeline
from keras_s2s.training import compile_model
from keras_s2s.training.building import build_model

OPTIONS = {
    "float32": ("float32", False),
    "float32 + XLA": ("float32", True),
    "mixed_float16": ("mixed_float16", False),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "mixed_bfloat16 + XLA": ("mixed_bfloat16", True),
}


def batch(rows=64, source=32, target=11, vocabulary=40):
    rng = np.random.default_rng(0)
    labels = rng.integers(1, vocabulary, (rows, target)).astype("int32")
    features = {
        "encoder_token_ids": rng.integers(1, vocabulary, (rows, source)).astype("int32"),
        "decoder_token_ids": labels,
    }
    return features, labels


def measure(pipeline: str, steps: int) -> dict:
    model_config = load_pipeline(pipeline)["model"]
    features, labels = batch()
    models = {}
    for name, (precision, jit) in OPTIONS.items():
        model = build_model(model_config, 40, 40, precision=precision)
        compile_model(model, {"jit_compile": jit})
        for _ in range(3):
            model.train_on_batch(features, labels)
        models[name] = model
    times = {name: [] for name in OPTIONS}
    for _ in range(steps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(features, labels)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    return {
        name: {"ms_per_step": round(ms, 1), "ratio": round(ms / medians["float32"], 2)}
        for name, ms in medians.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="benchmarks/precision_speed.md")
    args = parser.parse_args()
    header = Results()
    results = {p: measure(p, args.steps) for p in ("date_attention", "date_transformer")}
    lines = [
        "# Training step time of each precision / XLA option",
        "",
        f"One fixed batch shaped like the date task's (64 examples, sources of 32 characters, "
        f"targets of 11), the models of the pipelines' `[model]` sections; median of "
        f"{args.steps} `train_on_batch` calls after 3 warm-up calls, the options alternating "
        "round by round. Ratio against float32 (below 1: faster).",
        "",
        "| option | " + " | ".join(f"{p} ms/step (ratio)" for p in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for name in OPTIONS:
        cells = [f"{r[name]['ms_per_step']} ({r[name]['ratio']})" for r in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print(header.write(args.out, lines))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
