"""Training throughput of our Transformer against keras-hub's layers, run by hand.

    .venv/bin/pip install -e ".[bench]"   # keras-hub, for this script only
    .venv/bin/python benchmarks/transformer_throughput.py [--repeats 5] [--steps 8]

Both models have the same configuration: d_model 256, 3 encoder + 3 decoder layers, 4 heads,
feed-forward 1024 (ReLU), dropout 0.1 (embeddings, attention weights, sublayer outputs),
post-norm with epsilon 1e-5, vocabularies 8,000 (source and target, untied), sinusoidal
positions added to embeddings scaled by sqrt(D), a Dense output layer with float32 logits.

- **ours**: `keras_s2s.models.Transformer`.
- **keras-hub**: a functional model of `keras.layers.Embedding` (x sqrt(D)) +
  `keras_hub.layers.SinePositionEncoding` + `Dropout`, 3 `keras_hub.layers.TransformerEncoder`,
  3 `keras_hub.layers.TransformerDecoder` (causal, with cross-attention) and a `Dense(8000)`.

The same training set-up for both: batches of 64 random sentence pairs padded to 24 tokens
(source and target lengths drawn uniformly from 6..24 per row, then right-padded with 0, so
about 38% of the positions are padding, and the masks matter), the same 4 batches in turn;
`keras_s2s.training.make_optimizer` with the Transformer recipe (Adam(0.9, 0.98, 1e-9),
inverse-square-root warm-up, global-norm clipping 5.0) and
`MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)`; `model.train_on_batch`. Each mode
(`jit_compile` False, then True; `model.jit_compile` is asserted) compiles both models, warms
them up (tracing/XLA compilation), then times `--steps` training steps of each model,
`--repeats` times, interleaved (the order alternates between repeats), with a float32 matmul
peak measurement (a chain of 2048 x 2048 x 2048 `tf.matmul`s in a `tf.function`) in every
repeat. Reported: target tokens/s (real, non-padding label tokens; padded positions/s too),
the median of the per-repeat ours/keras-hub ratios, and each model's training FLOP/s as a
share of the matmul peak measured in the same repeat.

FLOPs per training step (counted on all padded positions, since both models compute them): a
weight matrix of P entries applied to N positions costs 2NP multiply-adds forward and 4NP
backward (gradients of its input and of the weight): 6NP. Encoder matmul weights (per layer
4D^2 attention + 2DF feed-forward) see N = B*S positions; decoder weights (8D^2 + 2DF per
layer) and the output layer (DV) see N = B*T. Attention itself (QK^T and weights x V, each
2*B*T_q*T_k*D forward) costs 12*B*T_q*T_k*D per attention for training; there are 3 encoder
self-attentions (S x S), 3 decoder self-attentions (T x T) and 3 cross-attentions (T x S).
Biases, layer norms, softmax, dropout, the embedding gathers and the optimizer are not counted
(elementwise, O(params) or O(positions x D)). The count is checked against the kernels of both
built models (the two must hold the same matmul weights).

Prints one line per repeat and one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_s2s.models import Transformer
from keras_s2s.training import MaskedSparseCategoricalCrossentropy, make_optimizer

V, D, F, H, LAYERS, B, LENGTH, DROPOUT = 8000, 256, 1024, 4, 3, 64, 24, 0.1
MIN_LENGTH = 6
RECIPE = {
    "learning_rate_schedule": "inverse_sqrt",
    "learning_rate": 1.0,
    "schedule_dim": D,
    "warmup_steps": 4000,
    "adam_beta_1": 0.9,
    "adam_beta_2": 0.98,
    "adam_epsilon": 1e-9,
    "global_clipnorm": 5.0,
}
PEAK_N, PEAK_CHAIN = 2048, 8


def make_batches(count=4, seed=0):
    """`count` batches `({"encoder_token_ids", "decoder_token_ids"}, labels)`, int32 [B, 24]."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):

        def padded(lengths, extra=0):
            ids = rng.integers(4, V, size=(B, LENGTH + extra)).astype("int32")
            ids[np.arange(LENGTH + extra)[None, :] >= lengths[:, None]] = 0
            return ids

        source = padded(rng.integers(MIN_LENGTH, LENGTH + 1, size=B))
        # Target with bos in front: decoder input target[:, :-1], labels target[:, 1:].
        target = padded(rng.integers(MIN_LENGTH, LENGTH + 1, size=B) + 1, extra=1)
        target[:, 0] = 2
        inputs = {
            "encoder_token_ids": tf.constant(source),
            "decoder_token_ids": tf.constant(target[:, :-1]),
        }
        batches.append((inputs, tf.constant(target[:, 1:])))
    return batches


def build_ours():
    return Transformer(
        V, V, hidden_dim=D, intermediate_dim=F, num_heads=H, num_encoder_layers=LAYERS,
        num_decoder_layers=LAYERS, dropout=DROPOUT, normalize_first=False,
    )  # fmt: skip


def build_hub():
    import keras_hub

    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids")
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")

    def embed(ids, name):
        x = keras.layers.Embedding(V, D, name=f"{name}_embedding")(ids)
        x = keras.layers.Rescaling(math.sqrt(D), name=f"{name}_scale")(x)
        x = x + keras_hub.layers.SinePositionEncoding(name=f"{name}_position")(x)
        return keras.layers.Dropout(DROPOUT, name=f"{name}_dropout")(x)

    encoder_mask = keras.ops.not_equal(encoder_ids, 0)
    decoder_mask = keras.ops.not_equal(decoder_ids, 0)
    x = embed(encoder_ids, "source")
    for i in range(LAYERS):
        x = keras_hub.layers.TransformerEncoder(
            F, H, dropout=DROPOUT, layer_norm_epsilon=1e-5, name=f"encoder_layer_{i}"
        )(x, padding_mask=encoder_mask)
    memory = x
    y = embed(decoder_ids, "target")
    for i in range(LAYERS):
        y = keras_hub.layers.TransformerDecoder(
            F, H, dropout=DROPOUT, layer_norm_epsilon=1e-5, name=f"decoder_layer_{i}"
        )(y, memory, decoder_padding_mask=decoder_mask, encoder_padding_mask=encoder_mask)
    logits = keras.layers.Dense(V, name="output_projection")(y)
    return keras.Model(
        {"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids}, logits, name="hub"
    )


def compile_model(model, jit_compile):
    model.compile(
        optimizer=make_optimizer(RECIPE),
        loss=MaskedSparseCategoricalCrossentropy(label_smoothing=0.1),
        jit_compile=jit_compile,
    )
    assert model.jit_compile is jit_compile, (model.name, model.jit_compile)
    return model


def matmul_params(model):
    """Entries of the matrices that multiply activations (Dense/EinsumDense kernels; not
    embeddings, biases or norms), split into encoder, decoder and output."""
    counts = {"encoder": 0, "decoder": 0, "output": 0}
    for weight in model.trainable_weights:
        path = weight.path
        if "kernel" not in path.split("/")[-1]:
            continue
        size = int(np.prod(weight.shape))
        if path.startswith("encoder_layer"):
            counts["encoder"] += size
        elif path.startswith("decoder_layer"):
            counts["decoder"] += size
        elif path.startswith("output_projection"):
            counts["output"] += size
        else:
            raise ValueError(f"unexpected kernel {path}")
    return counts


def training_flops(s=LENGTH, t=LENGTH):
    """Training FLOPs of one step on [B, S] sources and [B, T] targets (see the docstring)."""
    encoder = LAYERS * (4 * D * D + 2 * D * F)
    decoder = LAYERS * (8 * D * D + 2 * D * F)
    weights = 6 * (B * s * encoder + B * t * (decoder + D * V))
    attention = 12 * B * D * LAYERS * (s * s + t * t + t * s)
    return {
        "matmul_params": {"encoder": encoder, "decoder": decoder, "output": D * V},
        "weights": weights,
        "attention": attention,
        "total": weights + attention,
    }


def make_peak():
    rng = np.random.default_rng(1)
    a = tf.constant(rng.normal(size=(PEAK_N, PEAK_N)), tf.float32)
    w = tf.constant(rng.normal(size=(PEAK_N, PEAK_N)) / math.sqrt(PEAK_N), tf.float32)

    @tf.function
    def chain(x):
        for _ in range(PEAK_CHAIN):  # Each product depends on the last: nothing is skipped.
            x = tf.matmul(x, w)
        return tf.reduce_sum(x)

    chain(a).numpy()

    def measure():
        start = time.perf_counter()
        chain(a).numpy()
        return 2 * PEAK_N**3 * PEAK_CHAIN / (time.perf_counter() - start)

    return measure


def time_steps(model, batches, steps):
    """(wall seconds, process CPU seconds) of `steps` training steps."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        inputs, labels = batches[i % len(batches)]
        loss = model.train_on_batch(inputs, labels)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    if not np.isfinite(loss):
        raise RuntimeError(f"{model.name}: loss {loss}")
    return elapsed, cpu


def run_mode(jit_compile, batches, repeats, steps, warmup, peak, flops):
    keras.utils.set_random_seed(0)
    models = {
        "ours": compile_model(build_ours(), jit_compile),
        "keras_hub": compile_model(build_hub(), jit_compile),
    }
    params = {name: matmul_params(model) for name, model in models.items()}
    expected = {k: v for k, v in flops["matmul_params"].items()}
    for name, counted in params.items():
        if counted != expected:
            raise RuntimeError(f"{name}: matmul params {counted}, expected {expected}")
    for model in models.values():
        time_steps(model, batches, warmup)  # traces (and XLA-compiles)
    real_tokens = sum(int(np.count_nonzero(labels.numpy())) for _, labels in batches)
    tokens_per_step = real_tokens / len(batches)
    results = {name: {"tokens_per_s": [], "flops_share": []} for name in models}
    peaks, ratios, cpu_ratios = [], [], []
    for repeat in range(repeats):
        order = ("ours", "keras_hub") if repeat % 2 == 0 else ("keras_hub", "ours")
        peak_flops = peak()
        peaks.append(peak_flops)
        seconds, cpu_seconds = {}, {}
        for name in order:
            seconds[name], cpu_seconds[name] = time_steps(models[name], batches, steps)
            step_seconds = seconds[name] / steps
            results[name]["tokens_per_s"].append(tokens_per_step / step_seconds)
            results[name]["flops_share"].append(flops["total"] / step_seconds / peak_flops)
        ratios.append(seconds["keras_hub"] / seconds["ours"])
        cpu_ratios.append(cpu_seconds["keras_hub"] / cpu_seconds["ours"])
        print(
            f"jit_compile={jit_compile} repeat {repeat}: "
            + ", ".join(
                f"{name} {results[name]['tokens_per_s'][-1]:,.0f} tok/s "
                f"({100 * results[name]['flops_share'][-1]:.0f}% of peak)"
                for name in models
            )
            + f", peak {peak_flops / 1e9:.0f} GFLOP/s, ours/keras-hub {ratios[-1]:.3f} "
            f"(CPU time {cpu_ratios[-1]:.3f})",
            flush=True,
        )
    summary = {
        "jit_compile": jit_compile,
        "median_ratio_ours_over_keras_hub": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "median_cpu_time_ratio_ours_over_keras_hub": round(statistics.median(cpu_ratios), 3),
        "cpu_time_ratios": [round(r, 3) for r in cpu_ratios],
        "peak_gflops_median": round(statistics.median(peaks) / 1e9, 1),
        "peak_gflops_all": [round(p / 1e9, 1) for p in peaks],
        "real_target_tokens_per_step": tokens_per_step,
        "positions_per_step": B * LENGTH,
    }
    for name, r in results.items():
        summary[name] = {
            "target_tokens_per_s_median": round(statistics.median(r["tokens_per_s"])),
            "target_tokens_per_s_all": [round(x) for x in r["tokens_per_s"]],
            "padded_positions_per_s_median": round(
                statistics.median(r["tokens_per_s"]) * B * LENGTH / tokens_per_step
            ),
            "share_of_matmul_peak_median": round(statistics.median(r["flops_share"]), 3),
            "trainable_weights": len(models[name].trainable_weights),
            "parameters": models[name].count_params(),
        }
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--modes", default="nojit,jit")
    args = parser.parse_args(argv)
    import keras_hub

    batches = make_batches()
    flops = training_flops()
    peak = make_peak()
    summary = {
        "batch": B,
        "length": LENGTH,
        "training_gflop_per_step": round(flops["total"] / 1e9, 2),
        "attention_gflop_per_step": round(flops["attention"] / 1e9, 2),
        "repeats": args.repeats,
        "steps_per_timing": args.steps,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "modes": [],
    }
    for mode in args.modes.split(","):
        jit = {"nojit": False, "jit": True}[mode]
        summary["modes"].append(
            run_mode(jit, batches, args.repeats, args.steps, args.warmup, peak, flops)
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
