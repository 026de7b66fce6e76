"""Cached vs recomputing greedy decoding of our Transformer, run by hand.

    python benchmarks/cached_decoding.py [--repeats 5] [--lengths 16,32,64] [--batches 1,32]
        [--jit] [--out benchmarks/cached_decoding.md]

The model is an untrained `keras_s2s.models.Transformer` with the training benchmark's
configuration (d_model 256, 3+3 layers, 4 heads, feed-forward 1024, vocabularies 8,000);
sources are random ids `[B, 24]` with lengths drawn from 6..24 (right-padded). Eos is banned
(its logit set to -1e9 at every step, in both variants) so that every decode runs the full N
steps; pad and bos are banned as `greedy_search` always does.

- **cached**: `greedy_search(model.decode_step, model.encode(src, max_length=N), ...)` with the
  model's `constant_state_keys`, all in one `tf.function`: the source is encoded once, each
  step runs the decoder on one position against fixed-size self-attention caches and the
  precomputed cross-attention keys/values.
- **decoder recompute** (what an uncached decoder does): the source is encoded once (the
  training call's encoder path, `model._encode`); then a `tf.while_loop` of N steps, each
  running the training call's decoder path (`model._decode` with the encoder outputs: the
  cross-attention keys/values are projected again at every step, as a decoder without a cache
  does) on a fixed-size `[B, N]` decoder input (bos, the tokens generated so far, then pad),
  reading the logits at the current column and writing the argmax into the next one. The
  fixed width keeps one graph for the whole loop, as keras-hub's no-cache generation does; the
  causal mask makes the later (padding) columns irrelevant to the current one.
- **full recompute**: the same loop, but each step runs the model's whole training-graph call
  (`model(inputs, training=False)`), so the encoder runs again at every step too.

cached vs decoder recompute is the saving of the cache; decoder vs full recompute is the
saving of encoding once, which any decoder gets without a cache.

All three must produce the same token ids (the script checks and reports it). Each (N, B)
case is timed `--repeats` times, interleaved (the order of the three rotates between
repeats); reported: median milliseconds per call (one call decodes one batch of B sentences)
and the medians of the per-repeat ratios. Writes the whole Markdown file through
benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from _results import Results

from keras_s2s.decoding import greedy_search
from keras_s2s.decoding.processors import BanTokens
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

    never_pad_or_bos = BanTokens((PAD_ID, BOS_ID))

    def recompute_loop(source, logits_fn):
        batch = tf.shape(source)[0]
        columns = tf.range(max_length)[None, :]
        prefix = tf.where(columns == 0, BOS_ID, tf.fill([batch, max_length], PAD_ID))
        output = tf.fill([batch, max_length], PAD_ID)

        def body(step, prefix, output):
            logits = logits_fn(prefix)  # [B, N, V]
            logits = ban_eos(never_pad_or_bos(tf.gather(logits, step, axis=1), None))
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

    def full_recompute(source):
        def logits_fn(prefix):
            inputs = {"encoder_token_ids": source, "decoder_token_ids": prefix}
            return model(inputs, training=False)

        return recompute_loop(source, logits_fn)

    def decoder_recompute(source):
        memory, memory_mask = model._encode(source, training=False)  # once

        def logits_fn(prefix):
            logits, _, _ = model._decode(
                prefix,
                memory_mask,
                memory=memory,
                decoder_padding_mask=tf.not_equal(prefix, PAD_ID),
                training=False,
            )
            return logits

        return recompute_loop(source, logits_fn)

    return {
        name: tf.function(function, jit_compile=jit_compile)
        for name, function in (
            ("cached", cached),
            ("decoder_recompute", decoder_recompute),
            ("full_recompute", full_recompute),
        )
    }


def make_source(batch, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, V, size=(batch, SOURCE_LENGTH)).astype("int32")
    lengths = rng.integers(6, SOURCE_LENGTH + 1, size=batch)
    ids[np.arange(SOURCE_LENGTH)[None, :] >= lengths[:, None]] = PAD_ID
    return tf.constant(ids)


def time_case(model, max_length, batch, repeats, jit_compile):
    source = make_source(batch)
    functions = make_functions(model, max_length, jit_compile)
    tokens = {name: function(source).numpy() for name, function in functions.items()}  # traces
    same = min(float(np.mean(tokens["cached"] == ids)) for ids in tokens.values())
    full_length = bool(np.all(tokens["cached"] != PAD_ID))
    times = {name: [] for name in functions}
    orders = list(itertools.permutations(functions))
    for repeat in range(repeats):
        for name in orders[repeat % len(orders)]:
            start = time.perf_counter()
            functions[name](source).numpy()
            times[name].append((time.perf_counter() - start) * 1000)

    def ratios(slow, fast):
        return [s / f for s, f in zip(times[slow], times[fast], strict=True)]

    ratio_pairs = {
        "decoder_recompute_over_cached": ("decoder_recompute", "cached"),
        "full_recompute_over_cached": ("full_recompute", "cached"),
        "full_over_decoder_recompute": ("full_recompute", "decoder_recompute"),
    }
    result = {"new_tokens": max_length, "batch": batch}
    for name in functions:
        result[f"{name}_ms"] = round(statistics.median(times[name]), 1)
        result[f"{name}_ms_all"] = [round(t, 1) for t in times[name]]
    for key, (slow, fast) in ratio_pairs.items():
        values = ratios(slow, fast)
        result[key] = round(statistics.median(values), 2)
        result[f"{key}_all"] = [round(r, 2) for r in values]
    result["same_token_fraction"] = same
    result["every_row_full_length"] = full_length
    return result


def markdown(summary: dict) -> list[str]:
    lines = [
        "# Cached vs recomputing greedy decoding (our Transformer)",
        "",
        f"An untrained `Transformer` (d_model {D}, {LAYERS}+{LAYERS} layers, {H} heads, ff {F}, "
        f"vocabularies {V:,}), random sources `[B, {SOURCE_LENGTH}]` with lengths "
        f"6..{SOURCE_LENGTH} (right-padded); eos banned in all three so that every row decodes "
        "the full N tokens. `jit_compile` "
        f"{summary['jit_compile']}. Times are ms per call (one call decodes a batch of B "
        f"sentences), medians of {summary['repeats']} repeats with the order of the three "
        "rotating; ratios are medians of the per-repeat ratios.",
        "",
        "- **cached**: `greedy_search` over `model.decode_step` from `model.encode`: encoder "
        "once, one position per step against fixed-size self-attention caches and "
        "cross-attention keys/values projected once.",
        "- **decoder recompute** (the fair baseline: an uncached decoder): encoder once, then "
        "at every step the decoder over the whole fixed-width `[B, N]` prefix (cross-attention "
        "keys/values projected again each step).",
        "- **full recompute**: at every step the whole model call, encoder included.",
        "",
        "| new tokens N | batch | cached ms | decoder recompute ms | full recompute ms "
        "| decoder recompute / cached | full recompute / cached | full / decoder recompute "
        "| same tokens | per-repeat decoder recompute / cached |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary["cases"]:
        lines.append(
            f"| {r['new_tokens']} | {r['batch']} | {r['cached_ms']:,} "
            f"| {r['decoder_recompute_ms']:,} | {r['full_recompute_ms']:,} "
            f"| **{r['decoder_recompute_over_cached']}x** | {r['full_recompute_over_cached']}x "
            f"| {r['full_over_decoder_recompute']}x | {r['same_token_fraction']:.3f} "
            f"| {' '.join(map(str, r['decoder_recompute_over_cached_all']))} |"
        )
    lines += [
        "",
        "At batch 1 the work per step is small and the ratios are mostly per-step overhead; "
        "absolute milliseconds follow the machine's load (the header's load average).",
        "",
        "```json",
        json.dumps(summary),
        "```",
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", default="16,32,64")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True for all three")
    parser.add_argument("--out", default="benchmarks/cached_decoding.md")
    args = parser.parse_args(argv)
    header = Results(None if argv is None else [__file__, *argv])
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
                f"N={length} B={batch}: cached {r['cached_ms']} ms, decoder recompute "
                f"{r['decoder_recompute_ms']} ms, full recompute {r['full_recompute_ms']} ms, "
                f"decoder recompute / cached {r['decoder_recompute_over_cached']}x "
                f"(same tokens {r['same_token_fraction']:.3f}, full length "
                f"{r['every_row_full_length']})",
                flush=True,
            )
    summary = {
        "jit_compile": args.jit,
        "repeats": args.repeats,
        "source_length": SOURCE_LENGTH,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cases": results,
    }
    print(header.write(args.out, markdown(summary)))
    print(json.dumps(summary))
    return 0 if all(r["same_token_fraction"] == 1.0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
