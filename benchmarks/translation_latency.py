"""Batch-1 latency of `Translator.translate`: one traced call against three, and the SavedModel.

    python benchmarks/translation_latency.py RUN [--sources 100] [--beam 4]
        [--out benchmarks/translation_latency.md]

RUN is a trained run (e.g. `keras-s2s train multi30k_transformer_de_en`). Its first
`--sources` validation sources are translated one at a time, greedy and beam `--beam` (no
length penalty), by: `Translator.translate` (tokenizing, decoding and detokenizing in one
traced call), the same `Translator`'s three traced calls from Python (`encode_sources`,
`decode_ids`, `detokenize_nbest`: what `translate` did before), and the run's SavedModel
(`serving_default` / `beam_search`, one call). Each source goes through the systems in turn
(the order rotates), after a warm-up of each; the median milliseconds per sentence are kept.
Checks that the three give the same translations.

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import tensorflow as tf
from _results import Results
from multi30k_constraints import split_texts
from translation_speed import savedmodel_system

from keras_s2s.export import export
from keras_s2s.translator import Translator


def three_calls(translator):
    def translate(texts, beam):
        ids, _ = translator.decode_ids(translator.encode_sources(tf.constant(texts)), beam, 1)
        return [t.decode("utf-8") for t in translator.detokenize_nbest(ids).numpy()[:, 0]]

    return translate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/translation_latency.md")
    args = parser.parse_args()
    results = Results()
    sources = split_texts(args.run, "validation")[0][: args.sources]
    translator = Translator.from_run_directory(args.run)
    folder = tempfile.mkdtemp()
    path = export(args.run, formats=("savedmodel",), output_root=folder)["savedmodel"]
    systems = {
        "Translator.translate (one traced call)": lambda texts, beam: translator.translate(
            texts, beam
        ),
        "Translator, three traced calls": three_calls(translator),
        "SavedModel (one call)": savedmodel_system(path),
    }
    rows, same = {}, True
    for beam in (1, args.beam):
        for translate in systems.values():  # warm-up: traces
            translate(sources[:2], beam)
            translate(sources[-1:], beam)
        times = {name: [] for name in systems}
        for i, source in enumerate(sources):
            names = list(systems)
            outputs = set()
            for name in names[i % len(names) :] + names[: i % len(names)]:
                start = time.perf_counter()
                (output,) = systems[name]([source], beam)
                times[name].append(time.perf_counter() - start)
                outputs.add(output)
            same &= len(outputs) == 1
        rows[beam] = {name: 1000 * statistics.median(t) for name, t in times.items()}
    reference = "Translator, three traced calls"
    decodings = {1: "greedy", args.beam: f"beam {args.beam}"}
    lines = [
        "# Batch-1 latency: `Translator.translate` in one traced call",
        "",
        f"Run: `{args.run}`; its first {len(sources)} validation sources, one at a time, "
        "every system in turn (rotating order) after a warm-up; median milliseconds per "
        f"sentence; no length penalty. Same translations from all three: "
        f"{'yes' if same else 'NO'}. Ratio: time over the three calls' time.",
        "",
        "| system | " + " | ".join(f"{decodings[b]} ms (ratio)" for b in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for name in systems:
        cells = [f"{rows[b][name]:.1f} ({rows[b][name] / rows[b][reference]:.2f})" for b in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    results.write(args.out, lines)
    print(json.dumps({"same": same, "ms": {decodings[b]: r for b, r in rows.items()}}))


if __name__ == "__main__":
    main()
