"""Ensembles and terminology constraints on Multi30k, run by hand on two trained runs.

    python benchmarks/multi30k_controls.py RUN_A RUN_B [--beam 4] [--length-penalty 1.0]
        [--constraint-limit 1014] [--seed 1] [--out benchmarks/multi30k_controls.md]

RUN_A and RUN_B are two runs of one recipe with different seeds (e.g. `keras-s2s train
multi30k_transformer_de_en --seed 43 --output-dir ...`): they share the pipeline's data and
SentencePiece vocabulary, which is trained on the training split alone and does not depend on
the seed.

1. Ensemble: RUN_A, RUN_B and their ensemble (`Translator.ensemble`), greedy and beam
   `--beam` (GNMT alpha `--length-penalty`, the pipeline's choice on validation), scored with
   sacreBLEU on the validation split; then on the test split, once.
2. Terminology constraints (RUN_A, validation split only: the constraints are oracle phrases
   taken from the references): beam search without constraints, the constrained beam
   (`ConstrainedBeamSearch`) given no phrases (the cost of the machinery alone), then one and
   two phrases per sentence, each a random 1-2 word span of the reference (seeded; words of
   letters and digits only, spans not overlapping). Reported: BLEU, the share of phrases that
   appear in the outputs, and the decoding time against the plain beam's, same process.

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from _results import Results

from keras_s2s.data.splits import as_strings, load_splits
from keras_s2s.evaluation.scores import score_translations
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator

ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"^[^\W_]+$")


def split_texts(run_dir: str, split: str) -> tuple[list[str], list[str]]:
    """The (sources, references) of a run's split, as `evaluate_run` reads them."""
    config = RunDirectory(run_dir).config()
    return as_strings(load_splits(config["data"], splits=(split,))[split])


def oracle_phrases(reference: str, count: int, rng: random.Random) -> list[str]:
    """`count` non-overlapping random spans of 1-2 words of `reference` (fewer if it is short)."""
    words = reference.split()
    free = [i for i, w in enumerate(words) if WORD.match(w)]
    phrases, used = [], set()
    for _ in range(count):
        starts = [i for i in free if i not in used]
        if not starts:
            break
        start = rng.choice(starts)
        length = 2 if start + 1 in starts and rng.random() < 0.5 else 1
        used.update(range(start, start + length))
        phrases.append(" ".join(words[start : start + length]))
    return phrases


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--constraint-limit", type=int, default=1014)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-test", action="store_true", help="validation only (a dry run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "multi30k_controls.md"))
    args = parser.parse_args()
    results = Results()
    run_a, run_b = args.runs
    systems = {
        "A": Translator.from_run_directory(run_a),
        "B": Translator.from_run_directory(run_b),
    }
    systems["A+B"] = Translator.ensemble([systems["A"], systems["B"]])
    beam, alpha = args.beam, args.length_penalty
    figures = {"ensemble": {}, "constraints": {}}
    splits = ["validation"] + ([] if args.skip_test else ["test"])
    for split in splits:  # validation first; the test split once, after it
        sources, references = split_texts(run_a, split)
        for name, translator in systems.items():
            greedy, greedy_s = timed(lambda t=translator, s=sources: t.translate(s))
            beamed, beam_s = timed(
                lambda t=translator, s=sources: [
                    h[0][0] for h in t.translate_nbest(s, beam, 1, alpha)
                ]
            )
            row = {
                "greedy_bleu": score_translations(greedy, references)["bleu"],
                "beam_bleu": score_translations(beamed, references)["bleu"],
                "greedy_seconds": greedy_s,
                "beam_seconds": beam_s,
                "sentences": len(sources),
            }
            figures["ensemble"][f"{split}/{name}"] = row
            print(split, name, json.dumps(row), flush=True)

    sources, references = split_texts(run_a, "validation")
    sources, references = sources[: args.constraint_limit], references[: args.constraint_limit]
    translator = systems["A"]
    rng = random.Random(args.seed)
    settings = {
        "beam, no constraints": None,
        "constrained beam, no phrases": [[] for _ in sources],
        "1 oracle phrase": [oracle_phrases(r, 1, rng) for r in references],
        "2 oracle phrases": [oracle_phrases(r, 2, rng) for r in references],
    }
    for name, constraints in settings.items():
        outputs, seconds = timed(
            lambda c=constraints: (
                translator.translate(sources, beam, constraints=c)
                if c is not None
                else translator.translate(sources, beam)
            )
        )
        asked = [(p, o) for ps, o in zip(constraints or [], outputs, strict=True) for p in ps]
        row = {
            "bleu": score_translations(outputs, references)["bleu"],
            "phrases": len(asked),
            "phrases_out": sum(p in o for p, o in asked),
            "seconds": seconds,
            "sentences": len(sources),
        }
        figures["constraints"][name] = row
        print(name, json.dumps(row), flush=True)

    signature = score_translations(["a"], ["a"])["bleu_signature"]
    lines = [
        "# Ensembles and terminology constraints on Multi30k (de -> en)",
        "",
        f"Runs: A = `{run_a}`, B = `{run_b}` (one recipe, two seeds). Decoding: greedy, and "
        f"beam {beam} with GNMT alpha {alpha} (the pipeline's choice on validation); "
        f"`Translator`'s default batches (length-sorted). sacreBLEU ({signature}).",
        "",
        "## Ensemble (validation, then test once)",
        "",
        "| split | system | BLEU greedy | BLEU beam | seconds greedy | seconds beam |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, row in figures["ensemble"].items():
        split, name = key.split("/")
        lines.append(
            f"| {split} | {name} | {row['greedy_bleu']:.2f} | {row['beam_bleu']:.2f} | "
            f"{row['greedy_seconds']:.1f} | {row['beam_seconds']:.1f} |"
        )
    plain = figures["constraints"]["beam, no constraints"]["seconds"]
    lines += [
        "",
        f"## Terminology constraints (run A, the first {len(sources)} validation sentences, "
        f"beam {beam}, alpha 0)",
        "",
        f"Oracle phrases: random 1-2 word spans of each reference (seed {args.seed}). A phrase "
        "is out when the output contains it as a substring.",
        "",
        "| setting | BLEU | phrases | phrases out | share out | seconds | time / plain beam |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in figures["constraints"].items():
        share = f"{row['phrases_out'] / row['phrases']:.3f}" if row["phrases"] else "-"
        lines.append(
            f"| {name} | {row['bleu']:.2f} | {row['phrases']} | {row['phrases_out']} | {share} | "
            f"{row['seconds']:.1f} | {row['seconds'] / plain:.2f} |"
        )
    results.write(args.out, lines)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
