"""Evaluates a run directory on a split of its pipeline's data."""

from __future__ import annotations

import os
import time

from keras_s2s.data.splits import as_strings, load_splits
from keras_s2s.evaluation.scores import score_translations
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str = "test",
    limit: int = 0,
    translator: Translator | None = None,
    allow_unfinished: bool = False,
) -> dict:
    """Greedy-decodes a split (free running, from bos) and scores it against the references.

    Returns the figures of `score_translations` plus `split` and `decode_seconds`. A run that
    did not finish needs `allow_unfinished=True` (its last checkpoint is scored).
    """
    run = RunDirectory(run_dir)
    config = run.config()
    translator = translator or Translator.from_run_directory(
        run_dir, allow_unfinished=allow_unfinished
    )
    sources, references = as_strings(load_splits(config["data"], splits=(split,))[split])
    if limit:
        sources, references = sources[:limit], references[:limit]
    start = time.perf_counter()
    hypotheses = translator.translate(sources, batch_size=config["evaluation"]["batch_size"])
    seconds = time.perf_counter() - start
    scores = score_translations(hypotheses, references)
    return {"split": split, **scores, "decode_seconds": round(seconds, 2)}
