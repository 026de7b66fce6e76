"""A beam step's top k over K x V candidates: `tf.math.top_k` against `top_k_wide`.

    python benchmarks/beam_top_k.py [--vocabulary 8000] [--beam 4] [--repeats 7] [--calls 20]
        [--out benchmarks/beam_top_k.md]

`BeamSearch.step` picks the 2K best of the K x V candidates of each example (`[B, K*V]`);
`keras_s2s.decoding.strategies.top_k_wide` does it in two passes (block maxima, then the top
2K of the 2K best blocks). Both run in a `tf.function` on the same log-probabilities (a
log-softmax of normal logits scaled by 3, about as peaked as a trained model's) for batch
sizes a beam step sees: 1 (interactive), 64, and 512 (a `Translator` batch), timed
interleaved (the order alternates between repeats), `--repeats` times, each the mean of
`--calls` calls (`beam_state.time_pair`); the median per-call milliseconds and the median
ratio are kept. Checks that both give the same indices, hence values (no ties in normal
logits).

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import tensorflow as tf
from _results import Results
from beam_state import time_pair

from keras_s2s.decoding.strategies import top_k_wide


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
    top_k = tf.function(lambda v: tf.math.top_k(v, k).indices)
    wide = tf.function(lambda v: top_k_wide(v, k)[1])
    rng = np.random.default_rng(0)
    rows = {}
    for batch in (1, 64, 512):
        logits = rng.normal(scale=3.0, size=(batch * args.beam, args.vocabulary))
        log_probs = tf.reshape(tf.nn.log_softmax(tf.constant(logits, tf.float32)), [batch, width])
        # "before": tf.math.top_k, "after": top_k_wide; equal indices mean equal values.
        rows[batch] = time_pair(
            lambda v=log_probs: top_k(v), lambda v=log_probs: wide(v), args.repeats, args.calls
        )
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
            f"| {batch} | {row['before_ms']} | {row['after_ms']} "
            f"| {row['median_ratio_after_over_before']}x "
            f"| {'yes' if row['same_token_ids'] else 'NO'} |"
        )
    results.write(args.out, lines)
    print(json.dumps({str(b): r for b, r in rows.items()}))


if __name__ == "__main__":
    main()
