"""`model.fit` under TF's default strategy against `OneDeviceStrategy` on the same device.

    python benchmarks/strategy_speed.py [--pipeline dlfs2_date_attention] [--steps 128]
        [--repeats 5] [--out benchmarks/strategy_speed.md]

The pipeline's model (built and compiled by `keras_s2s.training` as `keras-s2s train` does,
with the pipeline's `[training]` settings: batch size, `steps_per_execution`, optimizer, loss)
is created once under each strategy (`keras_s2s.training.make_strategy("default")` and
`make_strategy("one_device")`) and trained with `model.fit` on the same random batches shaped
like the pipeline's data (its max lengths, a 64-id source and a 16-id target vocabulary).
After one warm-up epoch each (tracing), `--repeats` epochs of `--steps` steps per strategy are
timed, interleaved (the order alternates). Reported: median seconds per epoch and the median
of the per-repeat one_device/default ratios. Writes the whole Markdown file through
benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf
from _results import Results

from keras_s2s.config import load_pipeline
from keras_s2s.training import compile_model, make_strategy
from keras_s2s.training.building import build_model

SOURCE_VOCABULARY, TARGET_VOCABULARY = 64, 16


def batches(data: dict, batch_size: int, count: int = 16, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    rows = batch_size * count
    source = rng.integers(1, SOURCE_VOCABULARY, (rows, data["max_source_length"]))
    # bos + target + eos: decoder inputs and labels of max_target_length + 1, as the data has.
    target = rng.integers(3, TARGET_VOCABULARY, (rows, data["max_target_length"] + 2))
    features = {
        "encoder_token_ids": source.astype("int32"),
        "decoder_token_ids": target[:, :-1].astype("int32"),
    }
    dataset = tf.data.Dataset.from_tensor_slices((features, target[:, 1:].astype("int32")))
    return dataset.batch(batch_size, drop_remainder=True).cache().repeat()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="dlfs2_date_attention")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/strategy_speed.md")
    args = parser.parse_args()
    header = Results()
    config = load_pipeline(args.pipeline)
    data, training = config["data"], config["training"]
    dataset = batches(data, training["batch_size"] or 64)
    models = {}
    for name in ("default", "one_device"):
        strategy = make_strategy(name)
        with strategy.scope():
            model = build_model(
                config["model"], SOURCE_VOCABULARY, TARGET_VOCABULARY,
                data["max_source_length"], data["max_target_length"],
            )  # fmt: skip
            compile_model(model, training)
        model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)  # warm-up
        models[name] = model
    times = {name: [] for name in models}
    for repeat in range(args.repeats):
        order = list(models) if repeat % 2 == 0 else list(models)[::-1]
        for name in order:
            start = time.perf_counter()
            models[name].fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
            times[name].append(time.perf_counter() - start)
    ratios = [o / d for o, d in zip(times["one_device"], times["default"], strict=True)]
    summary = {
        "pipeline": args.pipeline,
        "steps": args.steps,
        "batch_size": training["batch_size"],
        "steps_per_execution": training["steps_per_execution"],
        "seconds": {name: [round(t, 2) for t in ts] for name, ts in times.items()},
        "one_device_over_default": round(statistics.median(ratios), 2),
        "ratios": [round(r, 2) for r in ratios],
    }
    lines = [
        "# `model.fit` under the default strategy and under OneDeviceStrategy",
        "",
        f"The `{args.pipeline}` pipeline's model and training settings (batch size "
        f"{training['batch_size']}, `steps_per_execution` {training['steps_per_execution']}), "
        f"random batches of its data's max lengths; {args.steps} steps an epoch, "
        f"{args.repeats} epochs per strategy after a warm-up epoch, interleaved. CPU, "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op "
        "threads.",
        "",
        "| strategy | s/epoch (median) | per-repeat s |",
        "|---|---:|---|",
    ]
    for name, ts in times.items():
        lines.append(
            f"| {name} | {statistics.median(ts):.2f} | {' '.join(f'{t:.2f}' for t in ts)} |"
        )
    lines += [
        "",
        f"one_device / default: **{summary['one_device_over_default']:.2f}x** (median of the "
        f"per-repeat ratios {', '.join(f'{r:.2f}' for r in ratios)}).",
    ]
    print(header.write(args.out, lines))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
