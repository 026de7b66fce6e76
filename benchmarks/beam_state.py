"""Beam search before vs after the constant decoding state stopped being gathered, run by hand.

    python benchmarks/beam_state.py [--before a29041d] [--repeats 5] [--calls 3]
        [--out benchmarks/beam_state.md]

"Before" is `keras_s2s/decoding/beam.py` at `--before` (the commit preceding the named loop
state and `constant_state_keys`), loaded from git into a temporary module; "after" is the
working tree's. Both decode the same states in one process, timed interleaved (the order
alternates between repeats), `--repeats` times; each timing is the mean of `--calls` calls.
Beam 4, batch 32, 30 decode steps at most:

- `fake`: a Luong-style step function over a state with a constant `memory` and attention `keys`
  `[B*K, S=30, 256]` float32 and an RNN state `[B*K, 256]` (vocabulary 1000), in a
  `tf.function` and with `jit_compile=True`; and, as a control, "after" with no constant keys
  (the named loop state alone, everything gathered as before);
- `seq2seq_luong`: an untrained `keras_s2s.models.Seq2Seq(decoder="luong")` (embedding and
  hidden 256, vocabularies 1000), encoding included, in a `tf.function` as `Translator` builds
  it, with the model's `constant_state_keys`.

Checks that both give the same token ids, then writes the whole Markdown file through
benchmarks/_results.py (per-call milliseconds, medians, and the median after/before ratio)
and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from _results import Results

from keras_s2s.decoding import beam_search

ROOT = Path(__file__).resolve().parent.parent
B, K, S, D, V, MAX_LENGTH = 32, 4, 30, 256, 1000, 30


def load_before(commit: str):
    """`beam_search` of `keras_s2s/decoding/beam.py` at `commit`, as a temporary module."""
    source = subprocess.run(
        ["git", "show", f"{commit}:keras_s2s/decoding/beam.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "beam_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("beam_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.beam_search


def fake_case():
    """A Luong-style step over `{"h" [B, D], "memory", "keys" [B, S, D]}`."""
    rng = np.random.default_rng(0)

    def weight(*shape):
        return tf.constant(rng.normal(size=shape) / np.sqrt(shape[0]), tf.float32)

    embedding, recurrent, output = weight(V, D), weight(D, D), weight(2 * D, V)

    def step_fn(token_ids, state, step):
        h = tf.tanh(tf.gather(embedding, token_ids) + state["h"] @ recurrent)
        weights = tf.nn.softmax(tf.einsum("bsd,bd->bs", state["keys"], h))
        context = tf.einsum("bs,bsd->bd", weights, state["memory"])
        return tf.concat([h, context], axis=-1) @ output, {**state, "h": h}

    state = {
        "h": tf.constant(rng.normal(size=(B, D)), tf.float32),
        "memory": tf.constant(rng.normal(size=(B, S, D)), tf.float32),
        "keys": tf.constant(rng.normal(size=(B, S, D)), tf.float32),
    }
    return step_fn, state, ("memory", "keys")


def fake_functions(before, jit_compile, constant=True):
    step_fn, state, keys = fake_case()
    keys = keys if constant else ()
    options = dict(batch_size=B, max_length=MAX_LENGTH, beam_size=K)

    def run_before():
        return before(step_fn, state, **options)[0]

    def run_after():
        return beam_search(step_fn, state, constant_state_keys=keys, **options)[0]

    return (
        tf.function(run_before, jit_compile=jit_compile),
        tf.function(run_after, jit_compile=jit_compile),
        keys,
    )


def seq2seq_functions(before):
    from keras_s2s.models import Seq2Seq

    tf.random.set_seed(0)
    model = Seq2Seq(V, V, embedding_dim=D, hidden_dim=D, decoder="luong")
    # The model family's contract names its constant state; a Seq2Seq from before that
    # contract keeps its memory and attention keys under these keys.
    keys = tuple(getattr(model, "constant_state_keys", None) or ())
    if not keys:
        keys = ("memory", "memory_keys", "memory_mask")
    source = tf.constant(np.random.default_rng(1).integers(4, V, size=(B, S)), tf.int32)

    def decode(search, **extra):
        def run(source_ids):
            state = model.encode(source_ids)
            batch = tf.shape(source_ids)[0]
            return search(model.decode_step, state, batch, MAX_LENGTH, beam_size=K, **extra)[0]

        # As `Translator._function` builds it (jit_compile defaults to False there).
        function = tf.function(run, reduce_retracing=True)
        return lambda: function(source)

    return decode(before), decode(beam_search, constant_state_keys=keys), keys


def time_pair(run_before, run_after, repeats, calls):
    ids_before, ids_after = run_before().numpy(), run_after().numpy()  # traces, and warms up
    same = bool(np.array_equal(ids_before, ids_after))
    times = {"before": [], "after": []}
    runs = {"before": run_before, "after": run_after}
    for repeat in range(repeats):
        order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
        for name in order:
            start = time.perf_counter()
            for _ in range(calls):
                runs[name]().numpy()
            times[name].append((time.perf_counter() - start) / calls * 1000)
    ratios = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
    return {
        "same_token_ids": same,
        "before_ms": round(statistics.median(times["before"]), 2),
        "after_ms": round(statistics.median(times["after"]), 2),
        "median_ratio_after_over_before": round(statistics.median(ratios), 3),
        "before_ms_all": [round(t, 2) for t in times["before"]],
        "after_ms_all": [round(t, 2) for t in times["after"]],
    }


CASE_NAMES = {
    "fake_tf_function": "fake, `tf.function`",
    "fake_xla": "fake, `jit_compile=True`",
    "fake_tf_function_no_constant_keys": "control (no constant keys), `tf.function`",
    "seq2seq_luong_tf_function": "seq2seq luong, `tf.function`",
}


def markdown(summary: dict) -> list[str]:
    lines = [
        "# Beam search: constant decoding state tiled once instead of gathered every step",
        "",
        f"`beam_search` before (`keras_s2s/decoding/beam.py` at `{summary['before_commit']}`, "
        "loaded from git into a temporary module: every state entry gathered by parent beam at "
        "every step) against the working tree's (`constant_state_keys` entries tiled to "
        "`[B*K, ...]` once and never gathered). Both in one process, interleaved (the order "
        f"alternates between repeats), {summary['repeats']} repeats of "
        f"{summary['calls_per_timing']} calls each; medians of the per-call times and of the "
        f"per-repeat after/before ratios. Beam {summary['beam']}, batch {summary['batch']}, at "
        f"most {summary['max_length']} steps, vocabulary {summary['vocabulary']}, width "
        f"{summary['width']}, TensorFlow {summary['tensorflow']}, CPU.",
        "",
        "- **fake**: a Luong-style step function over a constant `memory` and attention `keys` "
        f"`[B*K, {summary['source_length']}, {summary['width']}]` float32 and an RNN state `h`.",
        "- **control**: the same, the working tree's search with no constant keys (everything "
        "gathered as before): the cost of the named loop state alone.",
        '- **seq2seq luong**: an untrained `Seq2Seq(decoder="luong")` on random sources, '
        "encoding included, in a `tf.function` as `Translator` builds it; the constant keys are "
        "those the model reports.",
        "",
        "| case | constant keys | same token ids | before ms/call | after ms/call "
        "| after / before (median) | per-repeat before ms | per-repeat after ms |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for name, r in summary["cases"].items():
        lines.append(
            f"| {CASE_NAMES.get(name, name)} | {', '.join(r['constant_state_keys']) or '-'} "
            f"| {r['same_token_ids']} | {r['before_ms']} | {r['after_ms']} "
            f"| {r['median_ratio_after_over_before']:.2f} "
            f"| {' '.join(map(str, r['before_ms_all']))} "
            f"| {' '.join(map(str, r['after_ms_all']))} |"
        )
    lines += [
        "",
        "Absolute milliseconds follow the machine's load (the header's load average); the "
        "ratios within one run are the figures that mean something.",
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a29041d25f5a08559e0e05cc6d0b210f5dba45da")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/beam_state.md")
    args = parser.parse_args(argv)
    header = Results(None if argv is None else [__file__, *argv])
    before = load_before(args.before)
    cases = {
        "fake_tf_function": lambda: fake_functions(before, jit_compile=False),
        "fake_xla": lambda: fake_functions(before, jit_compile=True),
        # Control: the named loop state alone, everything gathered as before.
        "fake_tf_function_no_constant_keys": lambda: fake_functions(
            before, jit_compile=False, constant=False
        ),
        "seq2seq_luong_tf_function": lambda: seq2seq_functions(before),
    }
    results = {}
    for name, make in cases.items():
        run_before, run_after, keys = make()
        results[name] = {"constant_state_keys": list(keys)}
        results[name].update(time_pair(run_before, run_after, args.repeats, args.calls))
        r = results[name]
        print(
            f"{name}: before {r['before_ms']} ms, after {r['after_ms']} ms per call, "
            f"after/before {r['median_ratio_after_over_before']} "
            f"(same ids: {r['same_token_ids']})",
            flush=True,
        )
    summary = {
        "before_commit": args.before,
        "batch": B,
        "beam": K,
        "source_length": S,
        "width": D,
        "vocabulary": V,
        "max_length": MAX_LENGTH,
        "repeats": args.repeats,
        "calls_per_timing": args.calls,
        "tensorflow": tf.__version__,
        "cases": results,
    }
    print(header.write(args.out, markdown(summary)))
    print(json.dumps(summary))
    return 0 if all(r["same_token_ids"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
