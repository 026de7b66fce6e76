"""Multi30k results table and curve from finished run directories. Run by hand.

    python benchmarks/multi30k_results.py [runs/multi30k_transformer_de_en RUN ...]
        [--alphas 0,0.6,1.0] [--beam 4] [--out benchmarks/multi30k_results.md]
        [--plot benchmarks/multi30k_curve.png] [--json benchmarks/multi30k_results.json]

For each run (trained with `keras-s2s train <pipeline>`): the decoding is chosen on the
validation split only (greedy, and beam search of `--beam` with each length penalty alpha in
`--alphas`; the alpha with the best validation BLEU is kept), then the test split is scored
once, greedy and with the chosen beam setting. Training minutes are the sum of the epochs'
training seconds (`epoch_train_seconds`: the training steps only, no validation, no decoding),
as the run logged them. Scores are sacreBLEU (signature printed) and chrF on detokenized,
cased output against the raw references.

Writes a Markdown table (`--out`), a plot of validation BLEU (greedy, logged after every epoch)
against training minutes for each run (`--plot`), and prints one JSON object last. Each run's
row is kept in `--json` (one per pipeline), so the test split of a run is scored once: a
pipeline already there is not scored again (delete its row to rescore a new run). Without a
run, the Markdown file and the plot are rewritten from `--json` alone. A row scored by this
script records the commit it was scored at; the Markdown file (written whole through
benchmarks/_results.py) shows it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _results import Results

from keras_s2s import Translator
from keras_s2s.evaluation import evaluate_run
from keras_s2s.run_directory import RunDirectory


def _row(run_dir: Path, beam: int, alphas: list[float]) -> dict:
    run = RunDirectory(run_dir)
    config, meta = run.config(), run.metadata()
    history, training = meta["history"], meta["training"]
    translator = Translator.from_run_directory(run_dir)
    model = translator.model
    val = {"greedy": evaluate_run(run_dir, "validation", translator=translator)}
    for alpha in alphas:
        val[f"beam{beam}_alpha{alpha}"] = evaluate_run(
            run_dir, "validation", translator=translator, beam_size=beam, length_penalty=alpha
        )
    best_alpha = max(alphas, key=lambda a: val[f"beam{beam}_alpha{a}"]["bleu"])
    # The test split, once per decoding, with the settings chosen above.
    test_greedy = evaluate_run(run_dir, "test", translator=translator)
    test_beam = evaluate_run(
        run_dir, "test", translator=translator, beam_size=beam, length_penalty=best_alpha
    )
    seconds = history["epoch_train_seconds"]
    return {
        "run_dir": str(run_dir),
        "pipeline": config["name"],
        "model": config["model"]["type"],
        "parameters": model.count_params(),
        "epochs": len(seconds),
        "train_minutes": round(sum(seconds) / 60, 1),
        "kept": str(meta.get("checkpoint_epoch")),
        "val_bleu_greedy": round(val["greedy"]["bleu"], 2),
        "val_bleu_beam": {k: round(v["bleu"], 2) for k, v in val.items() if k != "greedy"},
        "chosen_alpha": best_alpha,
        "test_bleu_greedy": round(test_greedy["bleu"], 2),
        "test_bleu_beam": round(test_beam["bleu"], 2),
        "test_chrf_greedy": round(test_greedy["chrf"], 2),
        "test_chrf_beam": round(test_beam["chrf"], 2),
        "bleu_signature": test_beam["bleu_signature"],
        "chrf_signature": test_beam["chrf_signature"],
        "curve": {
            "train_minutes": [round(sum(seconds[: i + 1]) / 60, 2) for i in range(len(seconds))],
            "val_bleu": [
                None if b is None else round(b, 2) for b in history.get("validation_bleu", [])
            ],
        },
        "averaged": {k: v for k, v in training.items() if k.startswith("averaged") or k == "kept"},
    }


def plot_curves(curves, xlabel, title, path, mark_minutes=None):
    """Validation BLEU against minutes, one line per `(label, minutes, bleu)` of `curves`
    (points where either is None are left out), written to `path`; a dotted line at
    `mark_minutes` if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, minutes, bleu in curves:
        points = [
            (m, b) for m, b in zip(minutes, bleu, strict=True) if m is not None and b is not None
        ]
        axes.plot(*zip(*points, strict=True), marker="o", label=label)
    if mark_minutes is not None:
        axes.axvline(mark_minutes, color="grey", linestyle=":", label=f"{mark_minutes} minutes")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("validation sacreBLEU (greedy)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    # Below the axes: the recipes' labels are long and the curves fill the plot.
    axes.legend(loc="upper left", bbox_to_anchor=(0, -0.15), fontsize="small", frameon=False)
    figure.savefig(path, dpi=110, bbox_inches="tight")


def _plot(rows, path):
    plot_curves(
        [(r["pipeline"], r["curve"]["train_minutes"], r["curve"]["val_bleu"]) for r in rows],
        "training minutes (sum of epoch training seconds, 2 CPU cores)",
        "Multi30k: validation BLEU against training time",
        path,
    )


def _markdown(rows, beam):
    lines = [
        "# Multi30k: BLEU and chrF of the finished runs",
        "",
        "Each row was scored once by this script from a finished run directory (trained with "
        "`keras-s2s train <pipeline>`) and kept in `benchmarks/multi30k_results.json`: the "
        f"decoding (greedy, or beam {beam} with the length penalty alpha of the best validation "
        "BLEU) is chosen on the validation split, then the test split is scored once. Training "
        "minutes: the sum of the epochs' training seconds as the run logged them.",
        "",
        "| pipeline | model | parameters | training minutes | epochs | kept | val BLEU greedy "
        f"| val BLEU beam {beam} (alpha) | test BLEU greedy | test BLEU beam | test chrF greedy "
        "| test chrF beam |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        chosen = r["val_bleu_beam"][f"beam{beam}_alpha{r['chosen_alpha']}"]
        lines.append(
            f"| {r['pipeline']} | {r['model']} | {r['parameters']:,} | {r['train_minutes']} "
            f"| {r['epochs']} | {r['kept']} | {r['val_bleu_greedy']} | {chosen} "
            f"({r['chosen_alpha']}) | {r['test_bleu_greedy']} | {r['test_bleu_beam']} "
            f"| {r['test_chrf_greedy']} | {r['test_chrf_beam']} |"
        )
    lines += [
        "",
        "Scored at: "
        + "; ".join(f"{r['pipeline']} {r.get('scored_at_commit', 'not recorded')}" for r in rows)
        + ".",
    ]
    signatures = sorted({(r["bleu_signature"], r["chrf_signature"]) for r in rows})
    lines += ["", *(f"sacreBLEU signatures: BLEU `{b}`, chrF `{c}`" for b, c in signatures)]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--alphas", default="0,0.6,1.0")
    parser.add_argument("--out", default="benchmarks/multi30k_results.md")
    parser.add_argument("--plot", default="benchmarks/multi30k_curve.png")
    parser.add_argument(
        "--json",
        default="benchmarks/multi30k_results.json",
        help="rows of every run scored (read first: a run already in it is not scored again)",
    )
    args = parser.parse_args()
    header = Results()
    alphas = [float(a) for a in args.alphas.split(",")]
    path = Path(args.json)
    scored = {r["pipeline"]: r for r in json.loads(path.read_text())} if path.is_file() else {}
    for run in args.runs:
        pipeline = RunDirectory(run).config()["name"]
        if pipeline not in scored:  # The test split is scored once per run.
            scored[pipeline] = _row(Path(run), args.beam, alphas)
            scored[pipeline]["scored_at_commit"] = header.commit + (
                " (with uncommitted changes)" if header.dirty else ""
            )
    rows = list(scored.values())
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    header.write(args.out, _markdown(rows, args.beam))
    _plot(rows, args.plot)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
