"""Greedy and beam search before vs after the one decoding loop, on trained runs, run by hand.

    python benchmarks/decoding_engine.py RUN_DIR [RUN_DIR ...] [--before 410d286]
        [--split test] [--limit 1000] [--batch-size 64] [--beam 4] [--repeats 5]
        [--out benchmarks/decoding_engine.md]

"Before" is `greedy_search` and `beam_search` of `keras_s2s/decoding/greedy.py` and `beam.py`
at `--before` (the commit before `keras_s2s.decoding.decode`), loaded from git into temporary
modules; "after" is the working tree's. Each run's model decodes the first `--limit` sources
of its pipeline's `--split` (the data its users feed: real sentences at their real lengths),
sorted by length and cut into batches of `--batch-size` as `Translator.translate_nbest` cuts
them, encoding included, in a `tf.function` traced once per function, as `Translator` builds
them. Greedy, then beam `--beam`, before and after, timed interleaved (the order alternates
between repeats), `--repeats` times; each timing decodes every batch once.

Checks that before and after give the same token ids and scores, then writes the whole
Markdown file through benchmarks/_results.py (seconds per pass, medians, and the median of the
per-repeat after/before ratios) and prints one JSON object last.
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

from keras_s2s.data.splits import as_strings, load_splits
from keras_s2s.decoding import beam_search, greedy_search
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator

ROOT = Path(__file__).resolve().parent.parent


def load_before(commit: str):
    """`(greedy_search, beam_search)` at `commit`, as temporary modules."""
    folder = Path(tempfile.mkdtemp())
    sys.path.insert(0, str(folder))
    modules = {}
    for name in ("greedy", "beam"):
        source = subprocess.run(
            ["git", "show", f"{commit}:keras_s2s/decoding/{name}.py"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        source = source.replace(
            "from keras_s2s.decoding.greedy import", "from greedy_before import"
        )
        path = folder / f"{name}_before.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"{name}_before", path)
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[f"{name}_before"] = modules[name]
        spec.loader.exec_module(modules[name])
    return modules["greedy"].greedy_search, modules["beam"].beam_search


def functions(translator: Translator, greedy, beam, beam_size: int):
    """`{"greedy": fn, "beam": fn}`: source ids -> (ids, scores), as `Translator` builds them."""
    model, options = translator.model, translator._decoding_options()
    max_length = translator.max_target_length + 1

    def run_greedy(source_ids):
        state = model.encode(source_ids, max_length=max_length)
        return greedy(model.decode_step, state, tf.shape(source_ids)[0], max_length, **options)

    def run_beam(source_ids):
        state = model.encode(source_ids, max_length=max_length)
        ids, scores, _ = beam(
            model.decode_step, state, tf.shape(source_ids)[0], max_length, beam_size=beam_size,
            **options,
        )  # fmt: skip
        return ids, scores

    wrap = lambda fn: tf.function(fn, reduce_retracing=True)  # noqa: E731
    return {"greedy": wrap(run_greedy), "beam": wrap(run_beam)}


def source_batches(translator: Translator, run: RunDirectory, split, limit, batch_size):
    config = run.config()
    sources, _ = as_strings(load_splits(config["data"], splits=(split,))[split])
    sources = sorted(sources[:limit], key=len)
    return [
        translator.encode_sources(tf.constant(sources[i : i + batch_size]))
        for i in range(0, len(sources), batch_size)
    ], len(sources)


def timed(fn, batches):
    start = time.perf_counter()
    outputs = [fn(batch) for batch in batches]
    seconds = time.perf_counter() - start
    return seconds, [(ids.numpy(), scores.numpy()) for ids, scores in outputs]


def measure(run_dir, args, before):
    run = RunDirectory(run_dir)
    translator = Translator.from_run_directory(run_dir)
    batches, count = source_batches(translator, run, args.split, args.limit, args.batch_size)
    sides = {
        "before": functions(translator, *before, args.beam),
        "after": functions(translator, greedy_search, beam_search, args.beam),
    }
    rows = {}
    for kind in ("greedy", "beam"):
        outputs = {side: timed(fns[kind], batches)[1] for side, fns in sides.items()}  # warm-up
        for (ids_b, scores_b), (ids_a, scores_a) in zip(*outputs.values(), strict=True):
            np.testing.assert_array_equal(ids_a, ids_b)
            np.testing.assert_allclose(scores_a, scores_b, rtol=1e-6, atol=1e-6)
        seconds = {"before": [], "after": []}
        for repeat in range(args.repeats):
            order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
            for side in order:
                seconds[side].append(timed(sides[side][kind], batches)[0])
        ratios = [a / b for a, b in zip(seconds["after"], seconds["before"], strict=True)]
        rows[kind] = {
            "before": seconds["before"],
            "after": seconds["after"],
            "ratio": statistics.median(ratios),
        }
    name = f"{run.config()['name']} ({type(translator.model).__name__})"
    return name, count, len(batches), rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--before", default="410d286")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "decoding_engine.md"))
    args = parser.parse_args()
    results = Results()
    before = load_before(args.before)
    lines = [
        "# Greedy and beam search: before and after the one decoding loop",
        "",
        f"Before: `keras_s2s/decoding` at {args.before}; after: `keras_s2s.decoding.decode` "
        f"with `GreedySearch` / `BeamSearch({args.beam})`. Same token ids and scores on every "
        f"batch (checked). Seconds to decode all batches once (batches of {args.batch_size} "
        f"sources sorted by length, encoding included), {args.repeats} interleaved repeats.",
        "",
        "| run | sources (batches) | search | before, s (median) | after, s (median) "
        "| after / before (median of repeats) |",
        "|---|---|---|---:|---:|---:|",
    ]
    summary, details = {}, ["", "Per repeat, seconds (before / after):", ""]
    for run_dir in args.runs:
        name, count, num_batches, rows = measure(run_dir, args, before)
        for kind, row in rows.items():
            lines.append(
                f"| {name} | {count} ({num_batches}) | {kind} | "
                f"{statistics.median(row['before']):.2f} | {statistics.median(row['after']):.2f}"
                f" | **{row['ratio']:.3f}** |"
            )
            summary[f"{name} {kind}"] = round(row["ratio"], 3)
            pairs = zip(row["before"], row["after"], strict=True)
            details.append(f"- {name} {kind}: " + ", ".join(f"{b:.2f} / {a:.2f}" for b, a in pairs))
    results.write(args.out, lines + details)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
