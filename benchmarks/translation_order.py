"""Length-sorted batches against batches in file order: `Translator.translate`'s sentences/s.

    python benchmarks/translation_order.py RUN [--sizes 64,512] [--beam 4] [--repeats 3]
        [--out benchmarks/translation_order.md]

RUN is a trained run (e.g. `keras-s2s train multi30k_transformer_de_en`); its validation
sources are translated whole, greedy and beam `--beam` (no length penalty), at each batch
size, two ways: as `Translator.translate` does (all texts sorted by length, then cut into
batches: a batch holds texts of similar lengths, so less padding, and its decoding ends
sooner) and in file order (the texts cut into batches as they come, each batch passed to
`translate` alone, so no batch is sorted against another). Timed interleaved after a warm-up
of each; the median of `--repeats` is kept. Checks that both give the same translations.

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _results import Results
from multi30k_constraints import split_texts

from keras_s2s.translator import Translator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/translation_order.md")
    args = parser.parse_args()
    results = Results()
    sizes = [int(s) for s in args.sizes.split(",")]
    sources, _ = split_texts(args.run, "validation")
    translator = Translator.from_run_directory(args.run)

    def sorted_batches(beam, size):
        return translator.translate(sources, beam, size)

    def file_order(beam, size):
        return [
            text
            for start in range(0, len(sources), size)
            for text in translator.translate(sources[start : start + size], beam, size)
        ]

    ways = {"sorted by length": sorted_batches, "file order": file_order}
    rows, same = [], True
    for beam in (1, args.beam):
        for size in sizes:
            outputs = [way(beam, size) for way in ways.values()]  # warm-up
            same &= outputs[0] == outputs[1]
            times = {name: [] for name in ways}
            for repeat in range(args.repeats):
                for name in list(ways)[repeat % 2 :] + list(ways)[: repeat % 2]:
                    start = time.perf_counter()
                    ways[name](beam, size)
                    times[name].append(time.perf_counter() - start)
            rate = {name: len(sources) / statistics.median(t) for name, t in times.items()}
            rows.append((beam, size, rate["sorted by length"], rate["file order"]))
    lines = [
        "# `Translator.translate`: length-sorted batches against file order",
        "",
        f"Run: `{args.run}`; its {len(sources)} validation sources; median of {args.repeats} "
        "interleaved repeats after a warm-up; no length penalty. Same translations both ways: "
        f"{'yes' if same else 'NO'}. Ratio: sorted sentences/s over file-order sentences/s "
        "(above 1: sorting is faster).",
        "",
        "| decoding | batch size | sorted by length (sentences/s) | file order (sentences/s) "
        "| ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for beam, size, sorted_rate, file_rate in rows:
        name = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(
            f"| {name} | {size} | {sorted_rate:.1f} | {file_rate:.1f} "
            f"| {sorted_rate / file_rate:.2f} |"
        )
    results.write(args.out, lines)
    print(json.dumps({"same": same, "rows": rows}))


if __name__ == "__main__":
    main()
