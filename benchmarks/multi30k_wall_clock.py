"""Multi30k on the wall clock: a recipe's `keras-s2s train` timed from the command's start to
the finished run, then scored as benchmarks/multi30k_results.py scores runs. Run by hand.

    python benchmarks/multi30k_wall_clock.py LABEL PIPELINE --run-dir DIR
        [--set SECTION.KEY=VALUE ...] [--beam 4] [--alphas 0,0.6,1.0]
        [--out benchmarks/multi30k_wall_clock.md] [--plot benchmarks/multi30k_wall_curve.png]
        [--json benchmarks/multi30k_wall_clock.json]

Runs `keras-s2s train PIPELINE --output-dir DIR --set ...` in a process of its own (the
command a user types: data preparation, training, every epoch's validation decoding, the
checkpoint choice) and times it on the wall clock. The run's `run.json` is read every second
while it trains, so each epoch's end (its checkpoint written) gets its wall-clock minute: the
curve is validation BLEU (greedy, as the run logged it) against wall-clock minutes. Then, after
the clock stopped, the finished run is scored: decoding chosen on validation (greedy, and beam
`--beam` with each alpha of `--alphas`), the test split scored once with the chosen settings.

Each recipe's row is kept in `--json` under its LABEL (a label already there is refused: the
test split of a run is scored once); the Markdown table and the plot are rewritten from all
rows. The timing is kept in `<run_dir>.wall.json` as soon as the command ends, so a rerun
after a failure in the scoring scores the finished run without training it again. Nothing else
should run on the machine meanwhile: the header's load average says whether something did.
Relative paths of the options are relative to the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from _results import REPO, Results
from multi30k_results import _row, plot_curves


def _watch(run_json: Path, start: float, marks: list, done: threading.Event) -> None:
    """Appends (wall minutes, epochs ended) whenever `run_json`'s history grows."""
    seen = 0
    while not done.wait(1.0):
        try:
            history = json.loads(run_json.read_text())["history"]
        except (OSError, ValueError, KeyError):
            continue
        ended = len(history.get("loss", []))
        if ended > seen:
            marks.append((round((time.perf_counter() - start) / 60, 2), ended))
            seen = ended


def train(pipeline: str, run_dir: Path, overrides: list[str]) -> dict:
    """Runs the training command (its output into `<run_dir>.log`); its wall-clock seconds
    and the minute each epoch ended."""
    command = ["keras-s2s", "train", pipeline, "--output-dir", str(run_dir)]
    command += [a for o in overrides for a in ("--set", o)]
    # The command a user types, by the venv's entry point beside this interpreter.
    command[0] = str(Path(sys.executable).with_name("keras-s2s"))
    marks: list = []
    done = threading.Event()
    start = time.perf_counter()
    watcher = threading.Thread(target=_watch, args=(run_dir / "run.json", start, marks, done))
    watcher.start()
    try:
        with open(f"{run_dir}.log", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    finally:
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
    return {"command": " ".join(command[1:]), "wall_seconds": round(seconds, 1), "marks": marks}


def _plot(rows, path):
    curves = [
        (r["label"], r["wall_curve"]["wall_minutes"], r["wall_curve"]["val_bleu"]) for r in rows
    ]
    xlabel = "wall-clock minutes from the command's start (2 CPU cores)"
    plot_curves(curves, xlabel, "Multi30k: validation BLEU against the wall clock", path, 30)


def _markdown(rows, beam):
    lines = [
        "# Multi30k on the wall clock",
        "",
        "Each row: one `keras-s2s train` command timed from its start to the finished run (data "
        "preparation, training, every scored epoch's validation decoding, the checkpoint "
        "choice), then scored once as in `benchmarks/multi30k_results.md`: decoding chosen on "
        f"validation (greedy, or beam {beam} with the alpha of the best validation BLEU), the "
        "test split scored once. Training minutes: the sum of the epochs' training seconds.",
        "",
        "| recipe | command | wall minutes | training minutes | epochs | kept | val BLEU greedy "
        f"| val BLEU beam {beam} (alpha) | test BLEU greedy | test BLEU beam |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        chosen = r["val_bleu_beam"][f"beam{beam}_alpha{r['chosen_alpha']}"]
        lines.append(
            f"| {r['label']} | `{r['command']}` | {r['wall_minutes']} | {r['train_minutes']} "
            f"| {r['epochs']} | {r['kept']} | {r['val_bleu_greedy']} | {chosen} "
            f"({r['chosen_alpha']}) | {r['test_bleu_greedy']} | {r['test_bleu_beam']} |"
        )
    lines += ["", "Validation BLEU (greedy) at each epoch's end, against the wall clock:", ""]
    for r in rows:
        curve = r["wall_curve"]
        points = ", ".join(
            f"{m} min: {'-' if b is None else b}"
            for m, b in zip(curve["wall_minutes"], curve["val_bleu"], strict=True)
        )
        lines.append(f"- {r['label']}: {points}")
    lines += ["", "Scored at: " + "; ".join(f"{r['label']} {r['scored_at']}" for r in rows) + "."]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label")
    parser.add_argument("pipeline")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--alphas", default="0,0.6,1.0")
    parser.add_argument("--out", default="benchmarks/multi30k_wall_clock.md")
    parser.add_argument("--plot", default="benchmarks/multi30k_wall_curve.png")
    parser.add_argument("--json", default="benchmarks/multi30k_wall_clock.json")
    args = parser.parse_args()
    header = Results()
    path, out, plot = (REPO / p for p in (args.json, args.out, args.plot))
    rows = {r["label"]: r for r in json.loads(path.read_text())} if path.is_file() else {}
    if args.label in rows:
        parser.error(f"recipe {args.label!r} is already in {path}: its test split was scored")
    record = Path(f"{args.run_dir}.wall.json")
    if record.is_file():  # Trained and timed before; the scoring failed.
        timed = json.loads(record.read_text())
    else:
        timed = train(args.pipeline, args.run_dir, args.overrides)
        record.write_text(json.dumps(timed))
    row = _row(args.run_dir, args.beam, [float(a) for a in args.alphas.split(",")])
    ends = dict((epochs, minute) for minute, epochs in timed["marks"])
    row.update(
        label=args.label,
        command=timed["command"],
        wall_minutes=round(timed["wall_seconds"] / 60, 1),
        wall_curve={
            "wall_minutes": [ends.get(e + 1) for e in range(row["epochs"])],
            "val_bleu": row["curve"]["val_bleu"] or [None] * row["epochs"],
        },
        scored_at=header.commit + (" (with uncommitted changes)" if header.dirty else ""),
    )
    rows[args.label] = row
    path.write_text(json.dumps(list(rows.values()), indent=1) + "\n", encoding="utf-8")
    header.write(out, _markdown(list(rows.values()), args.beam))
    _plot(list(rows.values()), plot)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
