"""Evaluates a run directory on a split of its pipeline's data, or on a user's own files."""

from __future__ import annotations

import os
import sys
import time

from keras_s2s.data.readers import read_lines
from keras_s2s.data.splits import as_strings, load_splits
from keras_s2s.errors import ConfigError, DataError
from keras_s2s.evaluation.scores import score_translations
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator


def read_test_set(source: str | os.PathLike, reference: str | os.PathLike):
    """A user's test set: two aligned text files (UTF-8, plain or gzip), one sentence a line.
    Returns `(sources, references)`; errors name the file (and line)."""
    sources, references = read_lines(source), read_lines(reference)
    if len(sources) != len(references):
        raise DataError(
            f"{source} has {len(sources)} lines but {reference} has {len(references)}: "
            "a test set needs one reference line per source line"
        )
    return sources, references


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str = "test",
    limit: int = 0,
    translator: Translator | None = None,
    allow_unfinished: bool = False,
    beam_size: int = 1,
    length_penalty: float = 0.0,
    source: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """Decodes a split free running (from bos; greedy, or beam search with `beam_size` > 1 and
    the GNMT `length_penalty`) and scores it against the references: sacreBLEU and chrF on the
    detokenized output against the raw references (`score_translations`).

    `source` and `reference` (file paths, plain or gzip) replace the pipeline's split with a
    test set of the user's. `progress` shows a progress bar on stderr. Returns the figures of
    `score_translations` plus `split` (or the source file), `beam_size`, `length_penalty` and
    `decode_seconds`. A run that did not finish needs `allow_unfinished=True` (its last
    checkpoint is scored).
    """
    if (source is None) != (reference is None):
        raise ConfigError("Pass both a source file and a reference file, or neither")
    if beam_size < 1:
        raise ConfigError(f"The beam size must be >= 1; got {beam_size}")
    if length_penalty < 0:
        raise ConfigError(f"The length penalty must be >= 0; got {length_penalty}")
    run = RunDirectory(run_dir)
    config = run.config()
    translator = translator or Translator.from_run_directory(
        run_dir, allow_unfinished=allow_unfinished
    )
    if source is not None:
        sources, references = read_test_set(source, reference)
        name = os.fspath(source)
    else:
        sources, references = as_strings(load_splits(config["data"], splits=(split,))[split])
        name = split
    if limit:
        sources, references = sources[:limit], references[:limit]
    bar = None
    if progress:
        from tqdm import tqdm  # Lazy: start-up time (only progress bars need it).

        bar = tqdm(total=len(sources), desc="translating", unit=" lines", file=sys.stderr)
    start = time.perf_counter()
    try:
        best = translator.translate_nbest(
            sources,
            beam_size=beam_size,
            length_penalty=length_penalty,
            batch_size=config["evaluation"]["batch_size"],
            progress=None if bar is None else bar.update,
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    scores = score_translations([hypotheses[0][0] for hypotheses in best], references)
    return {
        "split": name,
        "beam_size": beam_size,
        "length_penalty": length_penalty,
        **scores,
        "decode_seconds": round(seconds, 2),
    }
