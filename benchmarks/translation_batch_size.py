"""`Translator`'s batch size: sentences/s by batch size, greedy and beam, on validation sources.

    python benchmarks/translation_batch_size.py RUN [--sizes 32,64,128,256,512] [--beam 4]
        [--repeats 3] [--out benchmarks/translation_batch_size.md]

RUN is a trained run (e.g. `keras-s2s train multi30k_transformer_de_en`). Its validation
sources (not the test split: the default batch size is chosen here) are translated whole by
`Translator.translate` at each batch size (texts of similar lengths batched together, as
always), greedy and beam `--beam` without a length penalty, after a warm-up pass of each;
the sizes are timed interleaved (the order rotates between repeats) and the median is kept.
A batch decodes batch size x beam rows at each step: more rows share each op's overhead,
but the batch runs until its longest translation ends and a beam's top k grows with it.
Checks that every batch size gives the same translations.

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
    parser.add_argument("--sizes", default="32,64,128,256,512")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/translation_batch_size.md")
    args = parser.parse_args()
    results = Results()
    sizes = [int(s) for s in args.sizes.split(",")]
    sources, _ = split_texts(args.run, "validation")
    translator = Translator.from_run_directory(args.run)
    rows, same = {}, True
    for beam in (1, args.beam):
        outputs = {size: translator.translate(sources, beam, size) for size in sizes}  # warm-up
        same &= all(out == outputs[sizes[0]] for out in outputs.values())
        times = {size: [] for size in sizes}
        for repeat in range(args.repeats):
            for size in sizes[repeat % len(sizes) :] + sizes[: repeat % len(sizes)]:
                start = time.perf_counter()
                translator.translate(sources, beam, size)
                times[size].append(time.perf_counter() - start)
        rows[beam] = {
            size: round(len(sources) / statistics.median(t), 1) for size, t in times.items()
        }
    lines = [
        "# `Translator.translate`: sentences/s by batch size",
        "",
        f"Run: `{args.run}`; its {len(sources)} validation sources; median of {args.repeats} "
        "interleaved repeats after a warm-up; no length penalty. Same translations at every "
        f"batch size: {'yes' if same else 'NO'}.",
        "",
        "| batch size (sentences) | "
        + " | ".join(
            f"{'greedy' if beam == 1 else f'beam {beam}'} sentences/s (rows {beam} x size)"
            for beam in rows
        )
        + " |",
        "|---:|" + "---:|" * len(rows),
    ]
    for size in sizes:
        lines.append(f"| {size} | " + " | ".join(str(rows[beam][size]) for beam in rows) + " |")
    results.write(args.out, lines)
    print(json.dumps({"same": same, **{str(b): r for b, r in rows.items()}}))


if __name__ == "__main__":
    main()
