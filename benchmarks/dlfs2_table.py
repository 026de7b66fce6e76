"""The DLFS2 table: our pipelines and the book's numpy code, side by side, run by hand.

    OMP_NUM_THREADS=2 TF_NUM_INTEROP_THREADS=2 python benchmarks/dlfs2_table.py
        [--rows addition_reverse_peeky,date_attention] [--seeds 3]
        [--book-seeds 1,date_attention=3] [--epochs date=3] [--skip-book]
        [--out benchmarks/dlfs2_results.md]

Each row trains one `pipelines/dlfs2_*` pipeline (exact match on the 5,000 test examples after
every epoch, training seconds per epoch without evaluation) and runs the book's own code
(`../shared/reference/dlfs2-book/run.py`, one JSON line per epoch, also scored on all 5,000
test examples) with the same epochs, one after the other, on a machine with nothing else
running. `--epochs` and `--book-seeds` take a number for every row, or `ROW=N` / `TASK=N`
entries after an optional default (`1,date_attention=3`). Writes the whole Markdown file (one
table per task) through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _results import Results

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BOOK_SEEDED = HERE / "book_seeded.py"

ROWS = {
    # row: (pipeline, overrides, book task, book variant)
    "addition_baseline": ("dlfs2_addition_baseline", {}, "addition", "baseline"),
    "addition_reverse": ("dlfs2_addition_reverse", {}, "addition", "reverse"),
    "addition_peeky": ("dlfs2_addition_peeky", {}, "addition", "peeky"),
    "addition_reverse_peeky": ("dlfs2_addition_reverse_peeky", {}, "addition", "reverse_peeky"),
    "date_baseline": ("dlfs2_date_baseline", {}, "date", "baseline"),
    "date_peeky": ("dlfs2_date_peeky", {}, "date", "peeky"),
    "date_attention": ("dlfs2_date_attention", {}, "date", "attention"),
    "date_attention_general": (
        "dlfs2_date_attention", {"model.attention_score": "general"}, "date", None),
    "date_attention_scaled": (
        "dlfs2_date_attention", {"model.attention_score": "scaled"}, "date", None),
    "date_attention_concat": (
        "dlfs2_date_attention", {"model.attention_score": "concat"}, "date", None),
    "date_bahdanau": ("dlfs2_date_attention", {"model.decoder": "bahdanau"}, "date", None),
}  # fmt: skip


def run_ours(pipeline: str, overrides: dict, seed: int, epochs: int | None, out: Path) -> dict:
    from keras_s2s.config import apply_overrides, load_pipeline
    from keras_s2s.run_directory import RunDirectory
    from keras_s2s.training import train

    config = load_pipeline(pipeline)
    overrides = {**overrides, "training.seed": seed}
    if epochs:
        overrides["training.epochs"] = epochs
    config = apply_overrides(config, overrides)
    summary = train(config, out, verbose=0)
    history = RunDirectory(out).metadata()["history"]
    return {
        "exact_match": history["test_exact_match"],
        "train_s": history["epoch_train_seconds"],
        "total_train_s": summary["train_seconds"],
    }


def run_book(task: str, variant: str, epochs: int | None, eval_limit: int, seed: int) -> dict:
    """The book's run.py; seed 0 is its own deterministic run."""
    command = [sys.executable, str(BOOK_SEEDED), "--seed", str(seed)]
    command += ["--task", task, "--variant", variant]
    if epochs:
        command += ["--epochs", str(epochs)]
    if eval_limit:
        command += ["--eval-limit", str(eval_limit)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {
        "exact_match": [line["exact_match"] for line in lines],
        "train_s": [line["train_s"] for line in lines],
        "eval_n": [line["eval_n"] for line in lines],
    }


def median_epoch_seconds(values: list[float]) -> float:
    # The first epoch includes tracing; the median of the rest is the steady state.
    return statistics.median(values[1:] or values)


def _summary(runs: list[dict]) -> tuple[list[str], float]:
    """Cells (median curve over seeds, each seed's final value, s/epoch) and the s/epoch: the
    median over seeds of each run's steady-state seconds per epoch."""
    curves = [run["exact_match"] for run in runs]
    median_curve = [statistics.median(v) for v in zip(*curves, strict=True)]
    seconds = statistics.median(median_epoch_seconds(run["train_s"]) for run in runs)
    cells = [
        " ".join(f"{v:.3f}" for v in median_curve),
        ", ".join(f"{curve[-1]:.3f}" for curve in curves),
        f"{seconds:.1f}",
    ]
    return cells, seconds


def per_row(text: str, row: str) -> int:
    """The number `text` gives `row`: `N`, or `[N,]KEY=N,...` with KEY a row or its task."""
    default, named = 0, {}
    for part in filter(None, text.split(",")):
        key, sep, number = part.partition("=")
        if sep:
            named[key] = int(number)
        else:
            default = int(key)
    return named.get(row, named.get(ROWS[row][2], default))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seeds", type=int, default=3, help="runs of ours per row (seeds 1..N)")
    parser.add_argument(
        "--book-seeds", default="1", help="runs of the book per row (its own, then 1..N-1)"
    )
    parser.add_argument("--epochs", default="", help="epochs per row (default: the pipeline's)")
    parser.add_argument("--skip-book", action="store_true")
    parser.add_argument("--out", default=str(HERE / "dlfs2_results.md"))
    parser.add_argument("--workdir", default="/tmp/keras_s2s_dlfs2")
    args = parser.parse_args()
    header = Results()
    os.chdir(REPO)

    results = {}
    for row in args.rows.split(","):
        pipeline, overrides, task, variant = ROWS[row]
        epochs = per_row(args.epochs, row)
        ours = [
            run_ours(pipeline, overrides, seed, epochs, Path(args.workdir) / f"{row}-{seed}")
            for seed in range(1, args.seeds + 1)
        ]
        book = []
        if variant and not args.skip_book:
            book = [
                run_book(task, variant, epochs, 0, seed)
                for seed in range(per_row(args.book_seeds, row))
            ]
        results[row] = {"task": task, "ours": ours, "book": book}
        print(json.dumps({row: results[row]}), flush=True)
    print(header.write(args.out, markdown(results, args)))
    print(json.dumps(results))


def markdown(results: dict, args) -> list[str]:
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "TF_NUM_INTEROP_THREADS")}
    lines = [
        "# The DLFS2 table: our pipelines and the book's numpy code",
        "",
        "Ours: the `pipelines/dlfs2_*` pipelines (the book's protocol: 45,000 train / 5,000 "
        "test, fixed-width sources), seeds 1.." + str(args.seeds) + ", exact match of greedy "
        "decoding on all 5,000 test examples after every epoch (a log; the last epoch's model "
        "is kept). Book: `../shared/reference/dlfs2-book/run.py`, its own deterministic run "
        "first, then re-seeded by `benchmarks/book_seeded.py`, also scored on all 5,000 test "
        "examples. Seconds are training seconds per epoch (median after the first epoch, which "
        "includes tracing), evaluation excluded. Thread settings: "
        + ", ".join(f"{k}={v}" for k, v in threads.items())
        + ".",
    ]
    for task in dict.fromkeys(r["task"] for r in results.values()):
        rows = {name: r for name, r in results.items() if r["task"] == task}
        epochs = sorted({len(r["ours"][0]["exact_match"]) for r in rows.values()})
        lines += [
            "",
            f"## {task}, {', '.join(map(str, epochs))} epochs",
            "",
            "| row | ours: exact match by epoch (median of seeds) | final per seed | s/epoch "
            "| book: exact match by epoch (median of its runs) | final per run | s/epoch "
            "| book test examples | speed ratio ours/book |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row, r in rows.items():
            ours_cells, ours_s = _summary(r["ours"])
            cells = [row, *ours_cells]
            if r["book"]:
                book_cells, book_s = _summary(r["book"])
                examples = sorted({n for run in r["book"] for n in run["eval_n"]})
                examples = "/".join(f"{n:,}" for n in examples)
                cells += [*book_cells, examples, f"{ours_s / book_s:.2f}"]
            else:
                cells += ["", "", "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
