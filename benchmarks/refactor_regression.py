"""The Seq2Seq refactor's regression check: DLFS2 rows before vs after, interleaved. By hand.

    .venv/bin/python benchmarks/refactor_regression.py [--before 59560d3]
        [--before-tree /work/exp/before_tree] [--after HEAD] [--after-tree /work/exp/after_tree]
        [--seeds 1,2,3] [--epochs N] [--timeout S]
        [--rows date_attention,addition_reverse_peeky] [--out benchmarks/refactor_regression.md]
        [--report-only]

"Before" is a detached git worktree of the commit before the recurrent family moved behind
the model-family contract (created here with `git worktree add --detach` if missing, reused if
it is at that commit; no branch is made or moved). "After" is this checkout. Each run is its
own subprocess: `python -c <driver>` with the measured tree as working directory and first on
`PYTHONPATH` (the venv's editable install points at /work/main), which checks that
`keras_s2s.__file__` lies inside that tree and then calls the tree's own
`keras_s2s.cli.main.main(["train", <tree>/pipelines/<pipeline>.toml, ...])`. Both trees get the
same seed, epochs and an absolute `data.train` (a pipeline's relative `../../shared/...` does
not resolve from the worktree), and `OMP_NUM_THREADS=2 TF_NUM_INTEROP_THREADS=2`.

Order: for each seed, for each row, before then after, so that every before/after pair runs
back to back under the same machine load (the machine is shared; the per-pair ratio is the
figure that means something). Per run, from `run.json`: the test exact match after every epoch
and `epoch_train_seconds` (training steps only); s/epoch is their median after the first epoch
(tracing), as in `benchmarks/dlfs2_table.py`. Each run appends one JSON line to `--raw` as it
finishes; `--report-only` rebuilds the Markdown from that file, keeping what follows the
notes marker in `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data" / "dlfs2"

# row: (pipeline, epochs, data file, README figures: final exact match per seed 1-3, s/epoch)
ROWS = {
    "date_attention": ("dlfs2_date_attention", 3, "date.txt", (0.961, 0.989, 0.981), 17.3),
    "addition_reverse_peeky": (
        "dlfs2_addition_reverse_peeky", 25, "addition.txt", (0.974, 0.986, 0.980), 2.2),
}  # fmt: skip

NOTES = "<!-- notes: written by hand, kept when the tables are rewritten -->"

# Runs inside the subprocess: argv[1] is the tree, the rest is the CLI's argv.
DRIVER = """
import json, sys
from pathlib import Path
import keras_s2s
tree = Path(sys.argv[1]).resolve()
where = Path(keras_s2s.__file__).resolve()
if tree not in where.parents:
    sys.exit(f"keras_s2s imported from {where}, not from {tree}")
print(json.dumps({"keras_s2s_file": str(where), "version": keras_s2s.__version__}), flush=True)
from keras_s2s.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


# `--steps-ab`: a long-lived worker per tree; each "run" line on stdin trains one block of steps
# on fixed random batches (fixed shapes, as the unrolled pipelines get) and prints its seconds.
WORKER = """
import json, sys, time
from pathlib import Path
import keras_s2s
tree = Path(sys.argv[1]).resolve()
where = Path(keras_s2s.__file__).resolve()
if tree not in where.parents:
    sys.exit(f"keras_s2s imported from {where}, not from {tree}")
import numpy as np
import tensorflow as tf
from keras_s2s.config import load_pipeline
from keras_s2s.training.trainer import build_model, compile_model
pipeline, source, target, vocabulary, steps = sys.argv[2], *map(int, sys.argv[3:7])
config = load_pipeline(str(tree / "pipelines" / f"{pipeline}.toml"))
import keras
keras.utils.set_random_seed(1)
model = build_model(config["model"], vocabulary, vocabulary, source, target)
compile_model(model, config["training"])
rng = np.random.default_rng(0)
n = 128 * 32
x = {"encoder_token_ids": rng.integers(1, vocabulary, (n, source)).astype("int32"),
     "decoder_token_ids": rng.integers(1, vocabulary, (n, target + 1)).astype("int32")}
y = rng.integers(1, vocabulary, (n, target + 1)).astype("int32")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(128, drop_remainder=True).repeat()
model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)  # traces
print(json.dumps({"ready": str(where)}), flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
"""

# row: (source length, target length, vocabulary, steps per block) for --steps-ab
AB_SHAPES = {"date_attention": (29, 10, 62, 64), "addition_reverse_peeky": (7, 4, 15, 320)}


def steps_ab(trees: dict, row: str, rounds: int) -> dict:
    """Alternates blocks of training steps between one worker per tree, `rounds` times each
    (order swapped every round), and returns the seconds per block."""
    pipeline = ROWS[row][0]
    source, target, vocabulary, steps = AB_SHAPES[row]
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_S2S_PIPELINES",)}
    env.update(OMP_NUM_THREADS="2", TF_NUM_INTEROP_THREADS="2", TF_CPP_MIN_LOG_LEVEL="2")
    workers = {}
    for label, tree in trees.items():
        command = [sys.executable, "-c", WORKER, str(tree), pipeline]
        command += [str(v) for v in (source, target, vocabulary, steps)]
        workers[label] = subprocess.Popen(
            command,
            cwd=tree,
            env={**env, "PYTHONPATH": str(tree)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    try:
        for label, worker in workers.items():
            ready = json.loads(worker.stdout.readline())
            print(json.dumps({label: ready}), file=sys.stderr)
        seconds = {label: [] for label in workers}
        labels = list(workers)
        for i in range(rounds):
            for label in labels if i % 2 == 0 else labels[::-1]:
                workers[label].stdin.write("run\n")
                workers[label].stdin.flush()
                seconds[label].append(json.loads(workers[label].stdout.readline())["seconds"])
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait(timeout=60)
    return {"row": row, "steps_per_block": steps, "load": load_average(), **seconds}


def git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def ensure_tree(path: Path, commit: str) -> str:
    full = git(REPO, "rev-parse", f"{commit}^{{commit}}")
    if path.exists():
        head = git(path, "rev-parse", "HEAD")
        if head != full:
            sys.exit(f"{path} is at {head}, not {full}: remove it or pass another --before-tree")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        git(REPO, "worktree", "add", "--detach", str(path), full)
    return full


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def median_epoch_seconds(values: list[float]) -> float:
    # The first epoch includes tracing; the median of the rest is the steady state.
    return statistics.median(values[1:] or values)


def run_one(
    tree: Path, label: str, row: str, seed: int, workdir: Path, timeout: int, epochs: int = 0
) -> dict:
    pipeline, row_epochs, data_file, _, _ = ROWS[row]
    epochs = epochs or row_epochs
    out = workdir / f"{row}-{label}-{seed}"
    if out.exists():
        shutil.rmtree(out)
    argv = [
        "train",
        str(tree / "pipelines" / f"{pipeline}.toml"),
        "--output-dir", str(out),
        "--seed", str(seed),
        "--epochs", str(epochs),
        "--set", f"data.train={json.dumps([str(DATA / data_file)])}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_S2S_PIPELINES",)}
    env.update(PYTHONPATH=str(tree), OMP_NUM_THREADS="2", TF_NUM_INTEROP_THREADS="2")
    command = ["timeout", str(timeout), sys.executable, "-c", DRIVER, str(tree), *argv]
    load_before = load_average()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    record = {
        "row": row,
        "label": label,
        "seed": seed,
        "tree": str(tree),
        "commit": git(tree, "rev-parse", "HEAD"),
        "library_dirty": bool(git(tree, "status", "--porcelain", "--", "keras_s2s")),
        "returncode": result.returncode,
        "epochs": epochs,
        "wall_seconds": round(wall, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }
    first = result.stdout.splitlines()[0] if result.stdout else ""
    if first.startswith("{"):
        record.update(json.loads(first))
    if result.returncode != 0:
        record["stderr_tail"] = result.stderr[-2000:]
        return record
    history = json.loads((out / "run.json").read_text())["history"]
    record["exact_match"] = history["test_exact_match"]
    record["epoch_train_seconds"] = history["epoch_train_seconds"]
    record["final_exact_match"] = history["test_exact_match"][-1]
    record["seconds_per_epoch"] = median_epoch_seconds(history["epoch_train_seconds"])
    return record


def report(records: list[dict], meta: dict) -> str:
    ok = [r for r in records if r.get("returncode") == 0]
    lines = [
        "# Seq2Seq refactor: DLFS2 rows before vs after",
        "",
        "Raw output of `benchmarks/refactor_regression.py` "
        f"({meta.get('date', '?')}, {os.cpu_count()} cores, shared machine, "
        "`OMP_NUM_THREADS=2 TF_NUM_INTEROP_THREADS=2`).",
        "",
        f"- before: `{meta.get('before_commit', '?')}` (worktree `{meta.get('before_tree', '?')}`)",
        f"- after: `{meta.get('after_commit', '?')}` (worktree `{meta.get('after_tree', '?')}`)",
        f"- load averages (1, 5, 15 min) at start: {meta.get('load_start')}, at end: "
        f"{meta.get('load_end')}",
        f"- order: for each seed, for each row, before then after; {len(ok)} of "
        f"{len(records)} runs finished",
        "",
        "Per pair (same seed, back to back). s/epoch: median `epoch_train_seconds` after epoch 1.",
        "",
        "| row | seed | before final exact match | after final exact match | before s/epoch "
        "| after s/epoch | ratio after/before | load (1 min) before, after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = {}
    for row in ROWS:
        pairs = {}
        for r in ok:
            if r["row"] == row:
                pairs.setdefault(r["seed"], {})[r["label"]] = r
        ratios = []
        for seed, pair in sorted(pairs.items()):
            b, a = pair.get("before"), pair.get("after")
            cells = [row, str(seed)]
            cells += [f"{p['final_exact_match']:.3f}" if p else "-" for p in (b, a)]
            cells += [f"{p['seconds_per_epoch']:.2f}" if p else "-" for p in (b, a)]
            if b and a:
                ratios.append(a["seconds_per_epoch"] / b["seconds_per_epoch"])
                cells.append(f"{ratios[-1]:.3f}")
            else:
                cells.append("-")
            cells.append(", ".join(f"{p['load_before'][0]:.2f}" if p else "-" for p in (b, a)))
            lines.append("| " + " | ".join(cells) + " |")
        by_label = {
            label: [r for r in ok if r["row"] == row and r["label"] == label]
            for label in ("before", "after")
        }
        summary[row] = {"ratios": ratios, **by_label}
    lines += [
        "",
        "Summary (medians over seeds; README figures from its DLFS2 table, an idle machine):",
        "",
        "| row | epochs | before exact match (per seed) | after exact match (per seed) "
        "| README exact match (per seed) | before s/epoch | after s/epoch | README s/epoch "
        "| ratio of medians | median per-pair ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row, s in summary.items():
        _, epochs, _, readme_em, readme_s = ROWS[row]
        cells = [row, str(epochs)]
        medians = {}
        for label in ("before", "after"):
            runs = sorted(s[label], key=lambda r: r["seed"])
            if runs:
                em = statistics.median(r["final_exact_match"] for r in runs)
                per = ", ".join(f"{r['final_exact_match']:.3f}" for r in runs)
                cells.append(f"{em:.3f} ({per})")
                medians[label] = statistics.median(r["seconds_per_epoch"] for r in runs)
            else:
                cells.append("-")
        cells.append(
            f"{statistics.median(readme_em):.3f} ({', '.join(f'{v:.3f}' for v in readme_em)})"
        )
        cells += [f"{medians[k]:.2f}" if k in medians else "-" for k in ("before", "after")]
        cells.append(f"{readme_s:.1f}")
        cells.append(f"{medians['after'] / medians['before']:.3f}" if len(medians) == 2 else "-")
        cells.append(f"{statistics.median(s['ratios']):.3f}" if s["ratios"] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Exact match after every epoch, per run:", ""]
    for r in records:
        if r.get("returncode") == 0:
            curve = " ".join(f"{v:.3f}" for v in r["exact_match"])
            secs = " ".join(f"{v:.2f}" for v in r["epoch_train_seconds"])
            lines.append(
                f"- {r['row']} {r['label']} seed {r['seed']}: {curve} (epoch seconds {secs}; "
                f"wall {r['wall_seconds']:.0f} s; keras_s2s from `{r['keras_s2s_file']}`)"
            )
        else:
            lines.append(
                f"- {r['row']} {r['label']} seed {r['seed']}: FAILED (exit {r['returncode']})"
            )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="59560d3")
    parser.add_argument("--before-tree", default="/work/exp/before_tree")
    parser.add_argument("--after", default="HEAD", help="commit of this checkout to measure")
    parser.add_argument("--after-tree", default="/work/exp/after_tree")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--epochs", type=int, default=0, help="override the rows' epochs")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per run")
    parser.add_argument("--workdir", default="/tmp/keras_s2s_refactor_regression")
    parser.add_argument("--raw", default="/tmp/keras_s2s_refactor_regression/runs.jsonl")
    parser.add_argument("--out", default=str(HERE / "refactor_regression.md"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--steps-ab",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="instead: alternate blocks of training steps between a live before and after "
        "process, ROUNDS blocks each, per row; print the seconds per block",
    )
    args = parser.parse_args()
    if args.steps_ab:
        trees = {"before": Path(args.before_tree), "after": Path(args.after_tree)}
        for row in args.rows.split(","):
            result = steps_ab(trees, row, args.steps_ab)
            ratios = [a / b for a, b in zip(result["after"], result["before"], strict=True)]
            result["median_ratio"] = statistics.median(ratios)
            result["median_seconds"] = {k: statistics.median(result[k]) for k in trees}
            print(json.dumps(result), flush=True)
        return
    raw = Path(args.raw)
    meta_path = raw.with_suffix(".meta.json")
    if not args.report_only:
        before_tree = Path(args.before_tree).resolve()
        after_tree = Path(args.after_tree).resolve()
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "before_commit": ensure_tree(before_tree, args.before),
            "before_tree": str(before_tree),
            "after_commit": ensure_tree(after_tree, args.after),
            "after_tree": str(after_tree),
            "load_start": load_average(),
        }
        for row in args.rows.split(","):
            pipeline = ROWS[row][0]
            a, b = (t / "pipelines" / f"{pipeline}.toml" for t in (before_tree, after_tree))
            if a.read_bytes() != b.read_bytes():
                print(f"note: {pipeline}.toml differs between the trees", file=sys.stderr)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text("")
        workdir = Path(args.workdir)
        for seed in (int(s) for s in args.seeds.split(",")):
            for row in args.rows.split(","):
                for label, tree in (("before", before_tree), ("after", after_tree)):
                    record = run_one(tree, label, row, seed, workdir, args.timeout, args.epochs)
                    with raw.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    print(json.dumps(record), flush=True)
        meta["load_end"] = load_average()
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    records = [json.loads(line) for line in raw.read_text().splitlines() if line]
    text = report(records, meta)
    out = Path(args.out)
    if out.exists() and NOTES in out.read_text():
        # Hand-written notes below the marker survive a rewrite of the tables.
        text += "\n" + NOTES + out.read_text().split(NOTES, 1)[1]
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
