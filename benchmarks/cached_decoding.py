"""Cached vs recomputing greedy decoding of our Transformer, run by hand.

    .venv/bin/python benchmarks/cached_decoding.py [--repeats 3] [--jit]

The model is an untrained `keras_s2s.models.Transformer` with the training benchmark's
configuration (d_model 256, 3+3 layers, 4 heads, feed-forward 1024, vocabularies 8,000);
sources are random ids `[B, 24]` with lengths drawn from 6..24 (right-padded). Eos is banned
(its logit set to -1e9 at every step, in both variants) so that every decode runs the full N
steps; pad and bos are banned as `greedy_search` always does.

- **cached**: `greedy_search(model.decode_step, model.encode(src, max_length=N), ...)` with the
  model's `constant_state_keys`, all in one `tf.function`: the source is encoded once, each
  step runs the decoder on one position against fixed-size self-attention caches and the
  precomputed cross-attention keys/values.
- **recompute**: one `tf.function` holding a `tf.while_loop` of N steps; each step runs the
  model's full training-graph call (`model(inputs, training=False)`, encoder included) on the
  source and a fixed-size `[B, N]` decoder input (bos, the tokens generated so far, then pad),
  reads the logits at the current column and writes the argmax into the next one. The fixed
  width keeps one graph for the whole loop, as keras-hub's no-cache generation does; the causal
  mask makes the later (padding) columns irrelevant to the current one.

Both variants must produce the same token ids (the script checks and reports it). Each
(N, B) case is timed `--repeats` times, interleaved (the order alternates between repeats);
reported: median milliseconds per call (one call decodes one batch of B sentences) and the
median of the per-repeat recompute/cached ratios. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_s2s.decoding import greedy_search
from keras_s2s.decoding.greedy import never_pad_or_bos
from keras_s2s.models import Transformer
from keras_s2s.tokenizers import BOS_ID, EOS_ID, PAD_ID

V, D, F, H, LAYERS, SOURCE_LENGTH = 8000, 256, 1024, 4, 3, 24


def ban_eos(logits):
    banned = tf.range(tf.shape(logits)[-1]) == EOS_ID
    return tf.where(banned[None, :], tf.constant(-1e9, logits.dtype), logits)


def make_functions(model, max_length, jit_compile):
    def step_fn(token_ids, state, step):
        logits, state = model.decode_step(token_ids, state, step)
        return ban_eos(logits), state

    def cached(source):
        state = model.encode(source, max_length=max_length)
        tokens, _ = greedy_search(
            step_fn, state, tf.shape(source)[0], max_length,
            constant_state_keys=model.constant_state_keys,
        )  # fmt: skip
        return tokens

    def recompute(source):
        batch = tf.shape(source)[0]
        columns = tf.range(max_length)[None, :]
        prefix = tf.where(columns == 0, BOS_ID, tf.fill([batch, max_length], PAD_ID))
        output = tf.fill([batch, max_length], PAD_ID)

        def body(step, prefix, output):
            logits = model(
                {"encoder_token_ids": source, "decoder_token_ids": prefix}, training=False
            )  # [B, N, V]
            logits = ban_eos(never_pad_or_bos(tf.gather(logits, step, axis=1)))
            next_tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)[:, None]
            output = tf.where(columns == step, next_tokens, output)
            prefix = tf.where(columns == step + 1, next_tokens, prefix)
            return step + 1, prefix, output

        _, _, output = tf.while_loop(
            lambda step, *_: step < max_length,
            body,
            (tf.constant(0), prefix, output),
            maximum_iterations=max_length,
        )
        return output

    return (
        tf.function(cached, jit_compile=jit_compile),
        tf.function(recompute, jit_compile=jit_compile),
    )


def make_source(batch, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, V, size=(batch, SOURCE_LENGTH)).astype("int32")
    lengths = rng.integers(6, SOURCE_LENGTH + 1, size=batch)
    ids[np.arange(SOURCE_LENGTH)[None, :] >= lengths[:, None]] = PAD_ID
    return tf.constant(ids)


def time_case(model, max_length, batch, repeats, jit_compile):
    source = make_source(batch)
    cached, recompute = make_functions(model, max_length, jit_compile)
    functions = {"cached": cached, "recompute": recompute}
    tokens = {name: function(source).numpy() for name, function in functions.items()}  # traces
    same = float(np.mean(tokens["cached"] == tokens["recompute"]))
    full_length = bool(np.all(tokens["cached"] != PAD_ID))
    times = {name: [] for name in functions}
    for repeat in range(repeats):
        order = ("cached", "recompute") if repeat % 2 == 0 else ("recompute", "cached")
        for name in order:
            start = time.perf_counter()
            functions[name](source).numpy()
            times[name].append((time.perf_counter() - start) * 1000)
    ratios = [r / c for r, c in zip(times["recompute"], times["cached"], strict=True)]
    return {
        "new_tokens": max_length,
        "batch": batch,
        "cached_ms": round(statistics.median(times["cached"]), 1),
        "recompute_ms": round(statistics.median(times["recompute"]), 1),
        "median_speedup": round(statistics.median(ratios), 2),
        "speedups": [round(r, 2) for r in ratios],
        "cached_ms_all": [round(t, 1) for t in times["cached"]],
        "recompute_ms_all": [round(t, 1) for t in times["recompute"]],
        "same_token_fraction": same,
        "every_row_full_length": full_length,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", default="16,32,64")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True for both")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    model = Transformer(
        V, V, hidden_dim=D, intermediate_dim=F, num_heads=H, num_encoder_layers=LAYERS,
        num_decoder_layers=LAYERS, dropout=0.1,
    )  # fmt: skip
    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        for length in (int(n) for n in args.lengths.split(",")):
            r = time_case(model, length, batch, args.repeats, args.jit)
            results.append(r)
            print(
                f"N={length} B={batch}: cached {r['cached_ms']} ms, recompute "
                f"{r['recompute_ms']} ms, speedup {r['median_speedup']}x "
                f"(same tokens {r['same_token_fraction']:.3f}, full length "
                f"{r['every_row_full_length']})",
                flush=True,
            )
    print(
        json.dumps(
            {
                "jit_compile": args.jit,
                "repeats": args.repeats,
                "source_length": SOURCE_LENGTH,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "cases": results,
            }
        )
    )
    return 0 if all(r["same_token_fraction"] == 1.0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
