"""Forward + backward time of the masked, label-smoothed loss against the plain formulation.

    python benchmarks/loss_speed.py [--repeats 7] [--calls 5] [--out benchmarks/loss_speed.md]

`ours` is `keras_s2s.training.MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)`;
`reference` is the same loss written with TensorFlow's sparse kernel plus a second logsumexp
for the smoothing term, `(1 - eps) * sparse_softmax_cross_entropy(labels, logits) + eps *
(logsumexp(logits) - mean(logits))`, masked and averaged over real tokens the same way. Both
compute the loss and its gradient with respect to the logits `[64, 24, 8000]` (float32,
random; labels of lengths 6..24 per row, right-padded, as in
`benchmarks/transformer_throughput.py`) in a `tf.function`, without and with `jit_compile`.
The script checks that the two give the same loss and gradient (to 1e-5). Each timing is the
mean of `--calls` calls; `--repeats` timings per variant, interleaved (the order alternates);
medians reported. Writes the whole Markdown file through benchmarks/_results.py and prints
one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf
from _results import Results

from keras_s2s.training import MaskedSparseCategoricalCrossentropy

B, T, V, EPS = 64, 24, 8000, 0.1


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    logits = tf.constant(rng.normal(size=(B, T, V)) * 3, tf.float32)
    labels = rng.integers(4, V, size=(B, T)).astype("int32")
    labels[np.arange(T)[None, :] >= rng.integers(6, T + 1, size=B)[:, None]] = 0
    return tf.constant(labels), logits


def reference_loss(labels, logits):
    mask = tf.cast(tf.not_equal(labels, 0), tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    smooth = tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_mean(logits, axis=-1)
    per_token = (1 - EPS) * ce + EPS * smooth
    return tf.reduce_sum(per_token * mask) / tf.reduce_sum(mask)


def forward_backward(loss_fn, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def run(labels, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = loss_fn(labels, logits)
        return loss, tape.gradient(loss, logits)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/loss_speed.md")
    args = parser.parse_args()
    header = Results()
    labels, logits = inputs()
    ours = MaskedSparseCategoricalCrossentropy(label_smoothing=EPS)
    losses = {"ours": lambda y, p: ours(y, p), "reference": reference_loss}
    summary = {"shape": [B, T, V], "label_smoothing": EPS, "modes": {}}
    for jit in (False, True):
        functions = {name: forward_backward(fn, jit) for name, fn in losses.items()}
        values = {name: [t.numpy() for t in f(labels, logits)] for name, f in functions.items()}
        np.testing.assert_allclose(values["ours"][0], values["reference"][0], rtol=1e-5)
        np.testing.assert_allclose(values["ours"][1], values["reference"][1], atol=1e-5)
        times = {name: [] for name in functions}
        for repeat in range(args.repeats):
            order = list(functions) if repeat % 2 == 0 else list(functions)[::-1]
            for name in order:
                start = time.perf_counter()
                for _ in range(args.calls):
                    loss, gradient = functions[name](labels, logits)
                    gradient.numpy()
                times[name].append((time.perf_counter() - start) / args.calls * 1000)
        ratios = [r / o for r, o in zip(times["reference"], times["ours"], strict=True)]
        summary["modes"]["jit" if jit else "nojit"] = {
            "ours_ms": round(statistics.median(times["ours"]), 1),
            "reference_ms": round(statistics.median(times["reference"]), 1),
            "reference_over_ours": round(statistics.median(ratios), 2),
            "ours_ms_all": [round(t, 1) for t in times["ours"]],
            "reference_ms_all": [round(t, 1) for t in times["reference"]],
        }
        print(json.dumps(summary["modes"]), flush=True)
    lines = [
        "# The masked, label-smoothed loss: forward + backward",
        "",
        f"Logits `[{B}, {T}, {V}]` float32, labels with per-row lengths 6..{T} (the rest "
        f"padding), label smoothing {EPS}; loss and gradient with respect to the logits in a "
        "`tf.function`. **ours**: `MaskedSparseCategoricalCrossentropy` (its gradient `softmax - "
        "smoothed target` written once); **reference**: TensorFlow's sparse cross-entropy kernel "
        "plus a second logsumexp for the smoothing term. Same loss and gradient (checked to "
        f"1e-5). ms per call: medians of {args.repeats} interleaved timings of {args.calls} "
        "calls each.",
        "",
        "| mode | ours ms | reference ms | reference / ours (median) |",
        "|---|---:|---:|---:|",
    ]
    for mode, r in summary["modes"].items():
        lines.append(
            f"| {'`jit_compile=True`' if mode == 'jit' else 'no jit'} | {r['ours_ms']} "
            f"| {r['reference_ms']} | {r['reference_over_ours']:.2f} |"
        )
    lines += ["", "```json", json.dumps(summary), "```"]
    print(header.write(args.out, lines))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
