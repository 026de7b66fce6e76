"""Loads the train/validation/test splits a pipeline's `data` config names."""

from __future__ import annotations

import tensorflow as tf

from keras_s2s.data.sources import SPLITS, data_source, load_tfds_split

__all__ = ["SPLITS", "as_strings", "available_splits", "load_splits", "load_tfds_split"]


def available_splits(data: dict) -> tuple[str, ...]:
    """The splits a `data` section provides (file sources may have no validation or test)."""
    return data_source(data["source"]).available_splits(data)


def load_splits(
    data: dict, splits=SPLITS, skipped: dict | None = None
) -> dict[str, tf.data.Dataset]:
    """Returns `{split: (source, target) dataset}` for a pipeline's `data` section, from its
    data source (`data.source`, see `keras_s2s.data.sources`).

    File sources skip the pairs whose source or target is empty (or only whitespace). If
    `skipped` is a dict, it receives `{split: number of pairs skipped}` for every split returned:
    a split's own file's count; splits held out of the training file get 0 (the training file's
    count holds them all); TFDS splits get 0 (not scanned).
    """
    counts = {}
    datasets = data_source(data["source"]).load_splits(data, splits, counts)
    if skipped is not None:
        skipped.update(counts)
    return datasets


def as_strings(dataset: tf.data.Dataset) -> tuple[list[str], list[str]]:
    """Materializes a `(source, target)` dataset as two lists of Python strings."""
    sources, targets = [], []
    for source, target in dataset.batch(4096).as_numpy_iterator():
        sources.extend(s.decode("utf-8") for s in source)
        targets.extend(t.decode("utf-8") for t in target)
    return sources, targets
