"""Terminology constraints on Multi30k: oracle phrases from the references, run by hand.

    python benchmarks/multi30k_constraints.py RUN_DIR [--beam 4] [--limit 1014] [--seed 1]
        [--out benchmarks/multi30k_constraints.md]

On a trained run's validation split (the constraints are oracle phrases taken from its
references, so the test split is never used): beam search without constraints, the
constrained beam (`ConstrainedBeamSearch`, dynamic beam allocation) given no phrases (the
cost of the machinery alone), then one and two phrases per sentence, each a random 1-2 word
span of the reference (seeded; words of letters and digits only, spans not overlapping).
Each setting is traced first (two small calls of different shapes, so the timed pass reuses
one relaxed trace), then timed on the whole split in `Translator`'s length-sorted batches.
Reported: BLEU (sacreBLEU), the share of phrases that appear in the outputs (as substrings),
and the time against the plain beam's, same process.

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
    parser.add_argument("run")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--limit", type=int, default=1014)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "multi30k_constraints.md"))
    args = parser.parse_args()
    results = Results()
    sources, references = split_texts(args.run, "validation")
    sources, references = sources[: args.limit], references[: args.limit]
    translator = Translator.from_run_directory(args.run)
    beam, rng = args.beam, random.Random(args.seed)
    settings = {
        "beam, no constraints": None,
        "constrained beam, no phrases": [[] for _ in sources],
        "1 oracle phrase": [oracle_phrases(r, 1, rng) for r in references],
        "2 oracle phrases": [oracle_phrases(r, 2, rng) for r in references],
    }
    figures = {}
    for name, constraints in settings.items():
        for size in (7, 8):  # traced twice: the timed pass reuses the relaxed trace
            warm = None if constraints is None else constraints[-size:]
            translator.translate(sources[-size:], beam, constraints=warm)
        outputs, seconds = timed(
            lambda c=constraints: translator.translate(sources, beam, constraints=c)
        )
        pairs = [] if constraints is None else zip(constraints, outputs, strict=True)
        asked = [(p, o) for ps, o in pairs for p in ps]
        row = {
            "bleu": score_translations(outputs, references)["bleu"],
            "phrases": len(asked),
            "phrases_out": sum(p in o for p, o in asked),
            "seconds": seconds,
            "sentences": len(sources),
        }
        figures[name] = row
        print(name, json.dumps(row), flush=True)

    signature = score_translations(["a"], ["a"])["bleu_signature"]
    plain = figures["beam, no constraints"]["seconds"]
    lines = [
        "# Terminology constraints on Multi30k (de -> en, validation)",
        "",
        f"Run: `{args.run}`. The first {len(sources)} validation sentences, beam {beam}, GNMT "
        f"alpha 0, `Translator`'s length-sorted batches; sacreBLEU ({signature}). Oracle "
        f"phrases: random 1-2 word spans of each reference (seed {args.seed}); a phrase is "
        "out when the output contains it as a substring.",
        "",
        "| setting | BLEU | phrases | phrases out | share out | seconds | time / plain beam |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in figures.items():
        share = f"{row['phrases_out'] / row['phrases']:.3f}" if row["phrases"] else "-"
        lines.append(
            f"| {name} | {row['bleu']:.2f} | {row['phrases']} | {row['phrases_out']} | {share} | "
            f"{row['seconds']:.1f} | {row['seconds'] / plain:.2f} |"
        )
    results.write(args.out, lines)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
