"""Loads the train/validation/test splits a pipeline's `data` config names."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_datasets as tfds

import keras_s2s.data.builders  # noqa: F401  (registers the built-in builders with TFDS)
from keras_s2s.data.readers import _pairs_to_dataset, holdout, read_pairs
from keras_s2s.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")


def load_tfds_split(name: str, config: str, split: str, data_dir: str = "") -> tf.data.Dataset:
    """A TFDS split as `(source, target)` strings; built-in builders are generated offline."""
    full_name = f"{name}/{config}" if config else name
    try:
        builder = tfds.builder(full_name, data_dir=data_dir or None)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
        raise ConfigError(
            f"Unknown TFDS dataset '{full_name}' (data.name/data.config): {e}"
        ) from None
    if split not in builder.info.splits:
        builder.download_and_prepare()
    if split not in builder.info.splits:
        raise DataError(
            f"TFDS dataset '{full_name}' has no '{split}' split "
            f"(it has: {', '.join(builder.info.splits)})"
        )
    return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)


def available_splits(data: dict) -> tuple[str, ...]:
    """The splits a `data` section provides (file sources may have no validation or test)."""
    if data["source"] == "tfds":
        return SPLITS
    return ("train",) + tuple(
        split for split in ("validation", "test") if data[split] or data[f"{split}_size"] > 0
    )


def load_splits(
    data: dict, splits=SPLITS, skipped: dict | None = None
) -> dict[str, tf.data.Dataset]:
    """Returns `{split: (source, target) dataset}` for a pipeline's `data` section.

    File sources skip the pairs whose source or target is empty (or only whitespace). If
    `skipped` is a dict, it receives `{split: number of pairs skipped}` for every split returned:
    a split's own file's count; splits held out of the training file get 0 (the training file's
    count holds them all); TFDS splits get 0 (not scanned).
    """
    if data["source"] == "tfds":
        if skipped is not None:
            skipped.update({s: 0 for s in splits})
        return {
            s: load_tfds_split(data["name"], data["config"], s, data["data_dir"]) for s in splits
        }
    kind = data["source"]
    if not data["train"]:
        raise ConfigError(f"data.train must list the training file(s) for source '{kind}'")
    pairs, counts = {}, {}
    sources, targets, counts["train"] = read_pairs(kind, data["train"])
    pairs["train"] = (sources, targets)
    held_out = {}
    for split in ("validation", "test"):
        if data[split]:
            sources, targets, counts[split] = read_pairs(kind, data[split])
            pairs[split] = (sources, targets)
        elif data[f"{split}_size"] > 0:
            held_out[split] = data[f"{split}_size"]
        elif split in splits:
            raise ConfigError(
                f"No {split} data: set data.{split} to file(s) or data.{split}_size > 0 "
                "to hold out examples from the training file"
            )
    if held_out:
        pairs.update(holdout(*pairs["train"], held_out, seed=data["holdout_seed"]))
    if skipped is not None:
        skipped.update({s: counts.get(s, 0) for s in splits})
    return {s: _pairs_to_dataset(*pairs[s]) for s in splits}


def as_strings(dataset: tf.data.Dataset) -> tuple[list[str], list[str]]:
    """Materializes a `(source, target)` dataset as two lists of Python strings."""
    sources, targets = [], []
    for source, target in dataset.batch(4096).as_numpy_iterator():
        sources.extend(s.decode("utf-8") for s in source)
        targets.extend(t.decode("utf-8") for t in target)
    return sources, targets
