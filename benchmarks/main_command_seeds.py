"""The main command's pipeline over several seeds: how robust is its result? Run by hand.

    python benchmarks/main_command_seeds.py [--pipeline date_attention]
        [--seeds 1,2,3] [--set section.key=value ...] [--out benchmarks/main_command_seeds.md]

Trains the pipeline once per seed (as `keras-s2s run` does, without the export), logs each
epoch's validation figures and training seconds, then scores the kept model once on the test
split. Writes the whole Markdown file (benchmarks/_results.py heads it with the command, the
commit and the machine's load) and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from _results import Results

from keras_s2s.config import apply_overrides, load_pipeline, parse_override
from keras_s2s.evaluation import evaluate_run
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="date_attention")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", default="benchmarks/main_command_seeds.md")
    args = parser.parse_args()
    results = Results()
    overrides = dict(parse_override(a) for a in args.set)
    rows = []
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        config = apply_overrides(load_pipeline(args.pipeline), {**overrides, "training.seed": seed})
        with tempfile.TemporaryDirectory() as folder:
            run_dir = Path(folder) / "run"
            summary = train(config, run_dir, verbose=2)
            history = RunDirectory(run_dir).metadata()["history"]
            test = evaluate_run(run_dir, split="test")
        row = {
            "seed": seed,
            "epochs": summary["epochs"],
            "kept_epoch": summary["best_epoch"],
            "train_seconds": summary["train_seconds"],
            "epoch_seconds": [round(s, 1) for s in history["epoch_train_seconds"]],
            "validation_exact_match": [
                round(v, 4) for v in history.get("validation_exact_match", [])
            ],
            "val_token_accuracy": [round(v, 4) for v in history["val_token_accuracy"]],
            "test_exact_match": test["exact_match"],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        # Written after every seed, so a run cut short leaves the seeds it finished.
        results.write(args.out, markdown(args, rows, len(seeds)))
    print(results.write(args.out, markdown(args, rows, len(seeds))))
    print(json.dumps({"pipeline": args.pipeline, "rows": rows}))


def markdown(args, rows: list[dict], seeds: int) -> list[str]:
    config = load_pipeline(args.pipeline)
    training = config["training"]
    settings = ", ".join(args.set) or (
        f"the pipeline's settings: up to {training['epochs']} epochs, early stopping on "
        f"{training.get('monitor')}, patience {training.get('early_stopping_patience')}"
    )
    lines = [
        f"# {args.pipeline} over seeds {args.seeds} ({settings})",
        "",
        "Each seed trains as `keras-s2s run` does (without the export), keeps the best epoch's "
        "model and scores it once on the test split. The training seconds depend on the "
        "machine's load (the header's load average).",
        "",
        "| seed | epochs (kept) | training s | validation exact match per epoch | test exact "
        "match |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        curve = " ".join(f"{v:.4f}" for v in r["validation_exact_match"]) or "-"
        lines.append(
            f"| {r['seed']} | {r['epochs']} ({r['kept_epoch']}) | {r['train_seconds']:.0f} | "
            f"{curve} | {r['test_exact_match']:.4f} |"
        )
    tests = [r["test_exact_match"] for r in rows]
    lines += [
        "",
        f"Test exact match: median {statistics.median(tests):.4f}, min {min(tests):.4f}, "
        f"max {max(tests):.4f}.",
    ]
    if len(rows) < seeds:
        lines += ["", f"Only {len(rows)} of the {seeds} seeds had finished when this was written."]
    return lines


if __name__ == "__main__":
    main()
