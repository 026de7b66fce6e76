"""A beam step's top k over K x V candidates: `tf.math.top_k` against `top_k_wide`.

    python benchmarks/beam_top_k.py [--vocabulary 8000] [--beam 4] [--repeats 7] [--calls 20]
        [--out benchmarks/beam_top_k.md]

`BeamSearch.step` picks the 2K best of the K x V candidates of each example (`[B, K*V]`);
`keras_s2s.decoding.strategies.top_k_wide` does it in two passes (block maxima, then the top
2K of the 2K best blocks). Both run in a `tf.function` on the same log-probabilities (a
log-softmax of normal logits scaled by 3, about as peaked as a trained model's) for batch
sizes a beam step sees: 1 (interactive), 64, and 512 (a `Translator` batch), timed
interleaved (the order alternates between repeats), `--repeats` times, each the mean of
`--calls` calls; the median per-call milliseconds and the median ratio are kept. Checks that
both give the same values and indices (no ties in normal logits).

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf
from _results import Results

from keras_s2s.decoding.strategies import top_k_wide


def time_pair(functions, values, repeats, calls):
    results = {name: f(values) for name, f in functions.items()}  # traces, and warms up
    same = all(
        np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(results["top_k"], results["top_k_wide"], strict=True)
    )
    times = {name: [] for name in functions}
    for repeat in range(repeats):
        order = list(functions) if repeat % 2 == 0 else list(functions)[::-1]
        for name in order:
            start = time.perf_counter()
            for _ in range(calls):
                functions[name](values)[0].numpy()
            times[name].append((time.perf_counter() - start) / calls * 1000)
    ratios = [a / b for a, b in zip(times["top_k_wide"], times["top_k"], strict=True)]
    return {
        "same": same,
        **{f"{name}_ms": round(statistics.median(t), 3) for name, t in times.items()},
        "ratio": round(statistics.median(ratios), 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/beam_top_k.md")
    args = parser.parse_args(argv)
    results = Results()
    k, width = 2 * args.beam, args.beam * args.vocabulary
    functions = {
        "top_k": tf.function(lambda v: tf.math.top_k(v, k)),
        "top_k_wide": tf.function(lambda v: top_k_wide(v, k)),
    }
    rng = np.random.default_rng(0)
    rows = {}
    for batch in (1, 64, 512):
        logits = rng.normal(scale=3.0, size=(batch * args.beam, args.vocabulary))
        log_probs = tf.reshape(tf.nn.log_softmax(tf.constant(logits, tf.float32)), [batch, width])
        rows[batch] = time_pair(functions, log_probs, args.repeats, args.calls)
    lines = [
        "# A beam step's top k: `tf.math.top_k` against `top_k_wide`",
        "",
        f"The {k} best of `[B, {args.beam} x {args.vocabulary}]` log-probabilities, in a "
        f"`tf.function`; median of {args.repeats} interleaved repeats of {args.calls} calls.",
        "",
        "| batch B | tf.math.top_k ms | top_k_wide ms | top_k_wide / top_k | same results |",
        "|---:|---:|---:|---:|---|",
    ]
    for batch, row in rows.items():
        lines.append(
            f"| {batch} | {row['top_k_ms']} | {row['top_k_wide_ms']} | {row['ratio']}x "
            f"| {'yes' if row['same'] else 'NO'} |"
        )
    results.write(args.out, lines)
    print(json.dumps({str(b): r for b, r in rows.items()}))


if __name__ == "__main__":
    main()
