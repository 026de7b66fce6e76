"""Ensembles on Multi30k: two runs of one recipe and their ensemble, run by hand.

    python benchmarks/multi30k_ensemble.py RUN_A RUN_B [--beam 4] [--length-penalty 1.0]
        [--out benchmarks/multi30k_ensemble.md]

RUN_A and RUN_B are two runs of one recipe with different seeds (e.g. `keras-s2s train
multi30k_transformer_de_en --seed 43 --output-dir ...`): they share the pipeline's data and
SentencePiece vocabulary, which is trained on the training split alone and does not depend on
the seed. RUN_A, RUN_B and their ensemble (`Translator.ensemble`) decode greedy and with beam
`--beam` (GNMT alpha `--length-penalty`: the pipeline's choice on validation), scored with
sacreBLEU on the validation split, then on the test split, once. Each system and decoding is
traced first (two small calls of different shapes), then timed on the whole split.

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _results import Results
from multi30k_constraints import split_texts, timed

from keras_s2s.evaluation.scores import score_translations
from keras_s2s.translator import Translator

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "multi30k_ensemble.md"))
    args = parser.parse_args()
    results = Results()
    run_a, run_b = args.runs
    systems = {"A": Translator.from_run_directory(run_a), "B": Translator.from_run_directory(run_b)}
    systems["A+B"] = Translator.ensemble([systems["A"], systems["B"]])
    beam, alpha = args.beam, args.length_penalty
    figures = {}
    for split in ("validation", "test"):  # validation first; the test split once, after it
        sources, references = split_texts(run_a, split)
        for name, translator in systems.items():
            row = {"sentences": len(sources)}
            for kind, size in (("greedy", 1), ("beam", beam)):
                for count in (7, 8):  # traced twice: the timed pass reuses the relaxed trace
                    translator.translate_nbest(sources[-count:], size, 1, alpha)
                best, seconds = timed(
                    lambda t=translator, s=sources, k=size: t.translate_nbest(s, k, 1, alpha)
                )
                outputs = [hypotheses[0][0] for hypotheses in best]
                row[f"{kind}_bleu"] = score_translations(outputs, references)["bleu"]
                row[f"{kind}_seconds"] = seconds
            figures[f"{split}/{name}"] = row
            print(split, name, json.dumps(row), flush=True)

    signature = score_translations(["a"], ["a"])["bleu_signature"]
    lines = [
        "# Ensembles on Multi30k (de -> en)",
        "",
        f"Runs: A = `{run_a}`, B = `{run_b}` (one recipe, two seeds). Decoding: greedy, and "
        f"beam {beam} with GNMT alpha {alpha} (the pipeline's choice on validation), in "
        f"`Translator`'s length-sorted batches; sacreBLEU ({signature}). The validation rows "
        "came first; the test rows were scored once, after them.",
        "",
        "| split | system | BLEU greedy | BLEU beam | seconds greedy | seconds beam |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, row in figures.items():
        split, name = key.split("/")
        lines.append(
            f"| {split} | {name} | {row['greedy_bleu']:.2f} | {row['beam_bleu']:.2f} | "
            f"{row['greedy_seconds']:.1f} | {row['beam_seconds']:.1f} |"
        )
    results.write(args.out, lines)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
