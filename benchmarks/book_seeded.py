"""Runs the DLFS2 book's `run.py` with its model initialization and batch order re-seeded.

    python benchmarks/book_seeded.py --seed N [run.py arguments...]

The book's runner is deterministic: `dataset.sequence.load_data` seeds numpy with 1984 to
shuffle, and every later draw (weights, batch order) follows from it. To see how much its
own results move with the seed (as ours do), this wrapper keeps the same data split and
reseeds numpy with `--seed` right after loading. `--seed 0` leaves the book's run unchanged.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[2] / "shared" / "reference" / "dlfs2-book"


def main():
    args = sys.argv[1:]
    seed = int(args[args.index("--seed") + 1])
    del args[args.index("--seed") : args.index("--seed") + 2]
    sys.path[:0] = [str(BOOK), str(BOOK / "ch07")]
    import numpy as np
    from dataset import sequence

    load_data = sequence.load_data

    def seeded_load_data(*a, **kw):
        data = load_data(*a, **kw)
        if seed:
            np.random.seed(seed)
        return data

    sequence.load_data = seeded_load_data
    sys.argv = [str(BOOK / "run.py"), *args]
    runpy.run_path(str(BOOK / "run.py"), run_name="__main__")


if __name__ == "__main__":
    main()
