"""Training throughput of our Transformer against keras-hub's layers, run by hand.

    pip install -e ".[bench]"   # keras-hub 0.32.0, for this script only
    python benchmarks/transformer_throughput.py [--data synthetic,multi30k] [--modes nojit,jit]
        [--repeats 5] [--steps 8] [--warmup 3] [--multi30k-batches 8]
        [--out benchmarks/transformer_throughput.md]

Both models have the same configuration: d_model 256, 3 encoder + 3 decoder layers, 4 heads,
feed-forward 1024 (ReLU), dropout 0.1 (embeddings, attention weights, sublayer outputs),
post-norm with epsilon 1e-5, vocabularies 8,000 (source and target, untied), sinusoidal
positions added to embeddings scaled by sqrt(D), a Dense output layer with float32 logits.

- **ours**: `keras_s2s.models.Transformer`.
- **keras-hub**: a functional model of `keras.layers.Embedding` (x sqrt(D)) +
  `keras_hub.layers.SinePositionEncoding` + `Dropout`, 3 `keras_hub.layers.TransformerEncoder`,
  3 `keras_hub.layers.TransformerDecoder` (causal, with cross-attention) and a `Dense(8000)`.

Two kinds of batches (`--data`), the same for both models:
- **synthetic**: 64 random sentence pairs padded to 24 tokens (source and target lengths
  uniform in 6..24 per row, right-padded with 0: about 38% padding), the same 4 batches in turn;
- **multi30k**: the first `--multi30k-batches` training batches that `keras-s2s train
  multi30k_transformer_de_en` builds (`PreparedData` of that pipeline's data and training
  settings: its SentencePiece vocabulary of 8,000 trained on the training split, length
  buckets of 4, 2,048-token batches, its shuffling seed), in turn. Their padding share and the
  whole epoch's are reported.

The same training set-up for both: `keras_s2s.training.make_optimizer` with the Transformer
recipe (Adam(0.9, 0.98, 1e-9), inverse-square-root warm-up, global-norm clipping 5.0) and
`MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)`; `model.train_on_batch`. Each mode
(`jit_compile` False, then True; `model.jit_compile` is asserted) compiles both models, warms
them up (`--warmup` passes over the batches: tracing, and XLA compilation for every batch
shape), then times `--steps` training steps of each model, `--repeats` times, interleaved
(the order alternates between repeats), with a float32 matmul peak measurement (a chain of
2048 x 2048 x 2048 `tf.matmul`s in a `tf.function`) in every repeat. Reported: real target
tokens/s (non-padding label tokens), the median of the per-repeat ours/keras-hub ratios, and
each model's training FLOP/s as a share of the matmul peak measured in the same repeat, both
on the FLOPs of the padded batches (what keras-hub computes) and on the real-token FLOPs.

FLOPs per training step: a weight matrix of P entries applied to N positions costs 2NP
multiply-adds forward and 4NP backward (gradients of its input and of the weight): 6NP.
Encoder matmul weights (per layer 4D^2 attention + 2DF feed-forward) see the source positions;
decoder weights (8D^2 + 2DF per layer) and the output layer (DV) see the target positions.
Attention itself (QK^T and weights x V, each 2*T_q*T_k*D forward per row) costs
12*T_q*T_k*D per attention per row for training; there are 3 encoder self-attentions (S x S),
3 decoder self-attentions (T x T) and 3 cross-attentions (T x S). Padded FLOPs count every
position of the padded batch; real-token FLOPs count each row's real lengths only. Biases,
layer norms, softmax, dropout, the embedding gathers and the optimizer are not counted. The
count is checked against the kernels of both built models (the two must hold the same matmul
weights).

Writes the whole Markdown file through benchmarks/_results.py; prints one line per repeat and
one JSON object last.
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
from _results import Results

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


def synthetic_batches(count=4, seed=0):
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


def multi30k_batches(count, pipeline="multi30k_transformer_de_en"):
    """The first `count` training batches `keras-s2s train <pipeline>` builds, and the padding
    share of the whole training epoch."""
    from keras_s2s.config import load_pipeline
    from keras_s2s.training.prepared import PreparedData

    config = load_pipeline(pipeline)
    data = PreparedData.load(config)
    vocabulary = max(data.source_tokenizer.vocabulary_size, data.target_tokenizer.vocabulary_size)
    if vocabulary > V:
        raise RuntimeError(f"{pipeline}: vocabulary {vocabulary} > the models' {V}")
    epoch = data.dataset("train", config["training"], shuffle=True)
    batches, real, positions = [], 0, 0
    for inputs, labels in epoch:
        if len(batches) < count:
            batches.append(({k: tf.identity(v) for k, v in inputs.items()}, tf.identity(labels)))
        real += int(tf.math.count_nonzero(inputs["encoder_token_ids"]))
        real += int(tf.math.count_nonzero(labels))
        positions += int(tf.size(inputs["encoder_token_ids"])) + int(tf.size(labels))
    return batches, {"pipeline": pipeline, "epoch_padding_share": 1 - real / positions}


def batch_figures(inputs, labels) -> dict:
    """Real tokens, padding share and training FLOPs (padded and real-token) of one batch."""
    source = inputs["encoder_token_ids"].numpy()
    target = labels.numpy()
    s_real = np.count_nonzero(source, axis=1).astype("int64")
    t_real = np.count_nonzero(target, axis=1).astype("int64")
    rows, s_pad = source.shape
    t_pad = target.shape[1]
    return {
        "rows": rows,
        "source_width": s_pad,
        "target_width": t_pad,
        "real_target_tokens": int(t_real.sum()),
        "padding_share": 1 - (s_real.sum() + t_real.sum()) / (source.size + target.size),
        "flops_padded": training_flops(np.full(rows, s_pad), np.full(rows, t_pad))["total"],
        "flops_real": training_flops(s_real, t_real)["total"],
    }


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


def matmul_weights() -> dict:
    """Matmul weight entries per source or target position (see the docstring)."""
    return {
        "encoder": LAYERS * (4 * D * D + 2 * D * F),
        "decoder": LAYERS * (8 * D * D + 2 * D * F),
        "output": D * V,
    }


def training_flops(source_lengths, target_lengths) -> dict:
    """Training FLOPs of one step over rows of these source and target lengths."""
    s = np.asarray(source_lengths, dtype="float64")
    t = np.asarray(target_lengths, dtype="float64")
    weights = matmul_weights()
    weight_flops = 6 * (
        s.sum() * weights["encoder"] + t.sum() * (weights["decoder"] + weights["output"])
    )
    attention = 12 * D * LAYERS * float((s * s + t * t + t * s).sum())
    return {"weights": weight_flops, "attention": attention, "total": weight_flops + attention}


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


def run_mode(jit_compile, batches, repeats, steps, warmup, peak):
    keras.utils.set_random_seed(0)
    models = {
        "ours": compile_model(build_ours(), jit_compile),
        "keras_hub": compile_model(build_hub(), jit_compile),
    }
    expected = matmul_weights()
    for name, model in models.items():
        counted = matmul_params(model)
        if counted != expected:
            raise RuntimeError(f"{name}: matmul params {counted}, expected {expected}")
    for model in models.values():
        time_steps(model, batches, warmup * len(batches))  # traces (and XLA-compiles each shape)
    figures = [batch_figures(*batch) for batch in batches]
    timed = [figures[i % len(figures)] for i in range(steps)]
    tokens = sum(f["real_target_tokens"] for f in timed)
    flops = {kind: sum(f[f"flops_{kind}"] for f in timed) for kind in ("padded", "real")}
    results = {name: {"tokens_per_s": [], "padded": [], "real": []} for name in models}
    peaks, ratios, cpu_ratios = [], [], []
    for repeat in range(repeats):
        order = ("ours", "keras_hub") if repeat % 2 == 0 else ("keras_hub", "ours")
        peak_flops = peak()
        peaks.append(peak_flops)
        seconds, cpu_seconds = {}, {}
        for name in order:
            seconds[name], cpu_seconds[name] = time_steps(models[name], batches, steps)
            results[name]["tokens_per_s"].append(tokens / seconds[name])
            for kind in ("padded", "real"):
                results[name][kind].append(flops[kind] / seconds[name] / peak_flops)
        ratios.append(seconds["keras_hub"] / seconds["ours"])
        cpu_ratios.append(cpu_seconds["keras_hub"] / cpu_seconds["ours"])
        print(
            f"jit_compile={jit_compile} repeat {repeat}: "
            + ", ".join(
                f"{name} {results[name]['tokens_per_s'][-1]:,.0f} tok/s "
                f"({100 * results[name]['real'][-1]:.0f}% of peak on real tokens)"
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
        "steps_per_timing": steps,
        "real_target_tokens_per_step": round(tokens / steps, 1),
        "padded_gflop_per_step": round(flops["padded"] / steps / 1e9, 2),
        "real_gflop_per_step": round(flops["real"] / steps / 1e9, 2),
    }
    for name, r in results.items():
        summary[name] = {
            "target_tokens_per_s_median": round(statistics.median(r["tokens_per_s"])),
            "target_tokens_per_s_all": [round(x) for x in r["tokens_per_s"]],
            "share_of_matmul_peak_padded_median": round(statistics.median(r["padded"]), 3),
            "share_of_matmul_peak_real_median": round(statistics.median(r["real"]), 3),
            "trainable_weights": len(models[name].trainable_weights),
            "parameters": models[name].count_params(),
        }
    return summary


def describe_batches(batches) -> dict:
    figures = [batch_figures(*batch) for batch in batches]
    rows = sum(f["rows"] for f in figures)
    return {
        "batches": len(figures),
        "shapes": sorted({(f["rows"], f["source_width"], f["target_width"]) for f in figures}),
        "mean_rows": round(rows / len(figures), 1),
        "padding_share": round(
            sum(
                f["padding_share"] * f["rows"] * (f["source_width"] + f["target_width"])
                for f in figures
            )
            / sum(f["rows"] * (f["source_width"] + f["target_width"]) for f in figures),
            4,
        ),  # fmt: skip
    }


def markdown(summary: dict) -> list[str]:
    lines = [
        "# Transformer training throughput: ours vs keras-hub's layers",
        "",
        f"keras-hub {summary['keras_hub']}, keras {summary['keras']}, tensorflow "
        f"{summary['tensorflow']}. Both models: d_model {D}, {LAYERS}+{LAYERS} layers, {H} "
        f"heads, ff {F} (ReLU), dropout {DROPOUT}, post-norm, vocabularies {V:,} (untied), "
        "the same optimizer (Adam(0.9, 0.98, 1e-9), inverse-sqrt warm-up, global clipnorm 5) "
        "and loss (label smoothing 0.1), `train_on_batch`, the same batches. "
        f"{summary['repeats']} interleaved repeats per mode; a float32 matmul peak (a chain of "
        "2048^3 `tf.matmul`s) measured in every repeat. Tokens/s: real (non-padding) target "
        "tokens per second. Share of peak: training FLOP/s over the peak of the same repeat, "
        "counting every position of the padded batches (the work keras-hub does) or only each "
        "row's real tokens (the work the translation needs); the FLOP count is in the script's "
        "docstring.",
    ]
    for data in summary["data"]:
        b = data["batches"]
        lines += [
            "",
            f"## {data['name']} batches",
            "",
            data["description"],
            f"Timed batches: {b['batches']} (rows x source x target widths: "
            + ", ".join("x".join(map(str, shape)) for shape in b["shapes"])
            + f"), padding {100 * b['padding_share']:.1f}% of the source and label positions"
            + (
                f"; the whole training epoch: {100 * data['epoch_padding_share']:.1f}%."
                if "epoch_padding_share" in data
                else "."
            ),
            "",
            "| mode | steps timed | real target tokens / step | GFLOP / step, padded (real) "
            "| ours tok/s | keras-hub tok/s | ours / keras-hub (median) | per-repeat ratios "
            "| CPU-time ratio | share of peak, padded FLOPs: ours / hub "
            "| share of peak, real-token FLOPs: ours / hub | peak GFLOP/s (median) |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---:|",
        ]
        for m in data["modes"]:
            ours, hub = m["ours"], m["keras_hub"]
            lines.append(
                f"| {'`jit_compile=True`' if m['jit_compile'] else 'no jit'} "
                f"| {m['steps_per_timing']} | {m['real_target_tokens_per_step']:,} "
                f"| {m['padded_gflop_per_step']} ({m['real_gflop_per_step']}) "
                f"| {ours['target_tokens_per_s_median']:,} "
                f"| {hub['target_tokens_per_s_median']:,} "
                f"| **{m['median_ratio_ours_over_keras_hub']:.3f}** "
                f"| {' '.join(f'{r:.3f}' for r in m['ratios'])} "
                f"| {m['median_cpu_time_ratio_ours_over_keras_hub']:.3f} "
                f"| {100 * ours['share_of_matmul_peak_padded_median']:.0f}% / "
                f"{100 * hub['share_of_matmul_peak_padded_median']:.0f}% "
                f"| {100 * ours['share_of_matmul_peak_real_median']:.0f}% / "
                f"{100 * hub['share_of_matmul_peak_real_median']:.0f}% "
                f"| {m['peak_gflops_median']:.0f} |"
            )
    lines += ["", "```json", json.dumps(summary), "```"]
    return lines


DESCRIPTIONS = {
    "synthetic": f"{B} random sentence pairs padded to {LENGTH} tokens, lengths uniform in "
    f"{MIN_LENGTH}..{LENGTH} per row, the same 4 batches in turn.",
    "multi30k": "The first training batches `keras-s2s train multi30k_transformer_de_en` "
    "builds (its data settings: SentencePiece 8,000 shared, length buckets of 4, 2,048-token "
    "batches, its seed), in turn.",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic,multi30k")
    parser.add_argument("--modes", default="nojit,jit")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1, help="passes over the batches")
    parser.add_argument("--multi30k-batches", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/transformer_throughput.md")
    args = parser.parse_args(argv)
    header = Results(None if argv is None else [__file__, *argv])
    import keras_hub

    peak = make_peak()
    summary = {
        "repeats": args.repeats,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "data": [],
    }
    for name in args.data.split(","):
        extra = {}
        if name == "synthetic":
            batches = synthetic_batches()
        elif name == "multi30k":
            batches, extra = multi30k_batches(args.multi30k_batches)
            extra["epoch_padding_share"] = round(extra["epoch_padding_share"], 4)
        else:
            raise SystemExit(f"--data: unknown '{name}' (synthetic, multi30k)")
        data = {"name": name, "description": DESCRIPTIONS[name], **extra}
        data["batches"] = describe_batches(batches)
        data["modes"] = []
        for mode in args.modes.split(","):
            jit = {"nojit": False, "jit": True}[mode]
            data["modes"].append(
                run_mode(jit, batches, args.repeats, args.steps, args.warmup, peak)
            )
        summary["data"].append(data)
    print(header.write(args.out, markdown(summary)))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
