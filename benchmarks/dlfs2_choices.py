"""The DLFS2 pipelines' design choices, compared on a validation split. Run by hand.

    python benchmarks/dlfs2_choices.py [--rows date_dot,date_dot_masked,...] [--seeds 3]
        [--epochs date=3] [--validation-size 5000] [--out benchmarks/dlfs2_choices.md]

The book's protocol has no validation split: its 50,000 lines are 45,000 train and 5,000 test.
The choices of the `pipelines/dlfs2_*` files (reading the source at its fixed width,
`mask_source_padding = false`; Luong `dot` attention; Keras's default initialization) are made
here without the test split: the script holds out the same 5,000 test lines the pipelines do
(`data.test_size`, `data.holdout_seed`) and neither trains on nor scores them; from the 45,000
training lines it holds out `--validation-size` more as a validation split (shuffled with
seed 2, the rest trains), writes both to a temporary folder in the DLFS2 format and trains
each candidate on them, logging the exact match of greedy decoding on the validation split
after every epoch (the last epoch's model is kept, as in the pipelines). Each row is one
candidate, seeds 1..`--seeds`; `--epochs` takes a number for every row or `TASK=N` / `ROW=N`
entries (the pipeline's own epochs otherwise).

`book_init` rows re-initialize the built model as the book's code does (embeddings N(0, 0.01^2);
every other kernel N(0, 1/fan_in) with fan_in its first dimension; biases zero) before
training. Writes the whole Markdown file through benchmarks/_results.py and prints one JSON
object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _results import Results

from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.data.readers import holdout
from keras_s2s.data.sources import read_pairs
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import building, train

VALIDATION_SEED = 2
ROWS = {
    # row: (pipeline, overrides, book initialization)
    "date_dot": ("dlfs2_date_attention", {}, False),
    "date_dot_masked": ("dlfs2_date_attention", {"model.mask_source_padding": True}, False),
    "date_general": ("dlfs2_date_attention", {"model.attention_score": "general"}, False),
    "date_scaled": ("dlfs2_date_attention", {"model.attention_score": "scaled"}, False),
    "date_concat": ("dlfs2_date_attention", {"model.attention_score": "concat"}, False),
    "date_bahdanau": ("dlfs2_date_attention", {"model.decoder": "bahdanau"}, False),
    "date_dot_book_init": ("dlfs2_date_attention", {}, True),
    "addition_reverse_peeky": ("dlfs2_addition_reverse_peeky", {}, False),
    "addition_reverse_peeky_masked": (
        "dlfs2_addition_reverse_peeky", {"model.mask_source_padding": True}, False),
}  # fmt: skip
DEFAULT_ROWS = [row for row in ROWS if row.startswith("date_")]


def per_row(text: str, row: str) -> int:
    """The number `text` gives `row`: `N`, or `[N,]KEY=N,...` with KEY a row or its task."""
    default, named = 0, {}
    for part in filter(None, text.split(",")):
        key, sep, number = part.partition("=")
        if sep:
            named[key] = int(number)
        else:
            default = int(key)
    return named.get(row, named.get(row.split("_")[0], default))


def validation_files(data: dict, size: int, folder: Path) -> tuple[Path, Path, int]:
    """Writes the training lines minus the test split, cut into train and validation files."""
    sources, targets, _ = read_pairs("dlfs2", data["train"])
    kept = holdout(sources, targets, {"test": data["test_size"]}, seed=data["holdout_seed"])
    split = holdout(*kept["train"], {"validation": size}, seed=VALIDATION_SEED)
    paths = []
    for name in ("train", "validation"):
        path = folder / f"{name}.txt"
        path.write_text("".join(f"{s}_{t}\n" for s, t in zip(*split[name], strict=True)))
        paths.append(path)
    return paths[0], paths[1], len(kept["train"][0])


def book_initialization(model) -> None:
    """The book's initial weights (see the module docstring), drawn from numpy's global state."""
    for weight in model.weights:
        name = weight.path.split("/")[-1]
        shape = tuple(weight.shape)
        if "bias" in name or len(shape) < 2:
            value = np.zeros(shape)
        elif "embedding" in weight.path:
            value = np.random.randn(*shape) * 0.01
        else:
            value = np.random.randn(*shape) / np.sqrt(shape[0])
        weight.assign(value.astype(weight.dtype))


def run(row: str, seed: int, epochs: int, files: tuple[Path, Path], folder: Path) -> dict:
    pipeline, overrides, book_init = ROWS[row]
    config = load_pipeline(pipeline)
    overrides = {
        **overrides,
        "data.train": [str(files[0])],
        "data.validation": [str(files[1])],
        "data.test_size": 0,
        "training.score_split": "validation",
        "training.checkpoint": "last",
        "training.seed": seed,
    }
    if epochs:
        overrides["training.epochs"] = epochs
    config = apply_overrides(config, overrides)
    build_model = building.build_model
    if book_init:

        def build_with_book_initialization(*args, **kwargs):
            model = build_model(*args, **kwargs)
            np.random.seed(seed)
            book_initialization(model)
            return model

        building.build_model = build_with_book_initialization
    try:
        out = folder / f"{row}-{seed}"
        summary = train(config, out, verbose=2)
    finally:
        building.build_model = build_model
    history = RunDirectory(out).metadata()["history"]
    return {
        "exact_match": [round(v, 4) for v in history["validation_exact_match"]],
        "train_seconds": summary["train_seconds"],
    }


def markdown(results: dict, args, train_lines: int) -> list[str]:
    lines = [
        "# DLFS2 design choices on a validation split",
        "",
        "The 5,000 test lines the `dlfs2_*` pipelines hold out are set aside (neither trained "
        f"on nor scored). From the other {train_lines:,} lines, {args.validation_size:,} are "
        "held out as a validation split "
        f"(seed {VALIDATION_SEED}); each candidate trains on the remaining "
        f"{train_lines - args.validation_size:,} with the pipeline's settings and its overrides, "
        f"seeds 1..{args.seeds}. Exact match of greedy decoding on the validation split after "
        "every epoch; the row with the highest median final value is the choice the validation "
        "split supports.",
        "",
        "| row | pipeline | changes | validation exact match by epoch (median of seeds) "
        "| final per seed | final, median |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row, runs in results.items():
        pipeline, overrides, book_init = ROWS[row]
        changes = [f"{k}={v}" for k, v in overrides.items()]
        changes += ["book initialization"] if book_init else []
        curves = [r["exact_match"] for r in runs]
        median_curve = [statistics.median(v) for v in zip(*curves, strict=True)]
        finals = [c[-1] for c in curves]
        lines.append(
            f"| {row} | {pipeline} | {', '.join(changes) or '(the pipeline as committed)'} "
            f"| {' '.join(f'{v:.3f}' for v in median_curve)} "
            f"| {', '.join(f'{v:.3f}' for v in finals)} | {statistics.median(finals):.3f} |"
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", default="date=3", help="epochs per row or task")
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--out", default="benchmarks/dlfs2_choices.md")
    args = parser.parse_args()
    header = Results()
    rows = args.rows.split(",")
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    results, files, train_lines = {}, {}, 0
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for row in rows:
            pipeline = ROWS[row][0]
            if pipeline not in files:
                data = load_pipeline(pipeline)["data"]
                data_folder = folder / pipeline
                data_folder.mkdir()
                *paths, train_lines = validation_files(data, args.validation_size, data_folder)
                files[pipeline] = tuple(paths)
            epochs = per_row(args.epochs, row)
            results[row] = []
            for seed in range(1, args.seeds + 1):
                results[row].append(run(row, seed, epochs, files[pipeline], folder / "runs"))
                print(json.dumps({row: results[row][-1], "seed": seed}), flush=True)
    print(header.write(args.out, markdown(results, args, train_lines)))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
