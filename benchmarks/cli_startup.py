"""Start-up times: `keras-s2s --help` and importing the package's parts, in fresh processes.

    python benchmarks/cli_startup.py [--repeats 7] [--out benchmarks/cli_startup.md]

Each case is a fresh `python` process (this interpreter, so the same environment) timed from
start to exit, wall clock; the cases run interleaved (the order rotates between repeats), so a
machine's drift hits them alike. Reported: the median and the range over `--repeats` runs.
`python -c pass` is the interpreter's own start-up. "Everything" imports every subpackage, as
the package did before its subpackages loaded on first use. Writes the whole Markdown file
through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from _results import Results

EVERYTHING = (
    "keras_s2s.layers, keras_s2s.models, keras_s2s.data, keras_s2s.tokenizers, "
    "keras_s2s.training, keras_s2s.decoding, keras_s2s.evaluation, keras_s2s.export, "
    "keras_s2s.tuning"
)
CASES = {
    "python -c pass": ["-c", "pass"],
    "keras-s2s --help": ["-m", "keras_s2s.cli.main", "--help"],
    "import keras_s2s": ["-c", "import keras_s2s"],
    "import keras_s2s.layers": ["-c", "import keras_s2s.layers"],
    "import everything": ["-c", f"import {EVERYTHING}"],
}


def time_once(arguments: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/cli_startup.md")
    args = parser.parse_args()
    header = Results()
    names = list(CASES)
    for name in names:  # Warm the file cache: the first start of each reads from disk.
        time_once(CASES[name])
    times = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(time_once(CASES[name]))
    lines = [
        "# Start-up times in fresh processes",
        "",
        f"Wall-clock seconds from a fresh `python` process's start to its exit; {args.repeats} "
        "runs per case, interleaved (the order rotates); median and range. Python "
        f'{sys.version.split()[0]}. "import everything": `import {EVERYTHING}`.',
        "",
        "| case | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        t = times[name]
        lines.append(f"| `{name}` | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")
    print(header.write(args.out, lines))
    print(json.dumps({name: [round(x, 3) for x in t] for name, t in times.items()}))


if __name__ == "__main__":
    main()
