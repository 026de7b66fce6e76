"""Data sources (`data.source`): where a pipeline's train/validation/test splits come from.

A source is a `DataSource` subclass registered under its name in
`keras_s2s.registry.DATA_SOURCES` (`keras_s2s.data.register_source` for your own). The
built-ins: "tfds" (a TFDS builder: the built-in tasks, generated offline, or an installed
one), and the file sources "text" (aligned source and target files), "tsv"
(`source<TAB>target` lines) and "dlfs2" (`source_target` lines, the DLFS2 book's format).
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_datasets as tfds

import keras_s2s.data.builders  # noqa: F401  (registers the built-in builders with TFDS)
from keras_s2s.data.readers import (
    _pairs_to_dataset,
    drop_empty_pairs,
    holdout,
    read_parallel_text_pairs,
    read_separated_pairs,
)
from keras_s2s.errors import ConfigError, DataError
from keras_s2s.registry import DATA_SOURCES

SPLITS = ("train", "validation", "test")


class DataSource:
    """Where a pipeline's splits come from (see the module).

    A subclass implements `available_splits` and `load_splits`; a source of files sets
    `has_files` (training reads every split's files before it starts, so a bad line of the
    test file is found before hours of training, not after).
    """

    #: Whether the splits are user files (read up front by `train`).
    has_files = False
    #: The `data.source` name it was looked up by (`data_source`), for messages.
    name = ""

    def available_splits(self, data: dict) -> tuple[str, ...]:
        """The splits the `[data]` section provides."""
        raise NotImplementedError

    def load_splits(self, data: dict, splits, skipped: dict) -> dict[str, tf.data.Dataset]:
        """`{split: (source, target) string dataset}` for `splits`; fills `skipped` with
        `{split: pairs skipped}` (empty sides) for each."""
        raise NotImplementedError


class TFDSSource(DataSource):
    """A TFDS builder (`data.name`, `data.config`, `data.data_dir`): its three splits."""

    def available_splits(self, data: dict) -> tuple[str, ...]:
        return SPLITS

    def load_splits(self, data: dict, splits, skipped: dict) -> dict[str, tf.data.Dataset]:
        skipped.update({s: 0 for s in splits})  # (Not scanned.)
        return {
            s: load_tfds_split(data["name"], data["config"], s, data["data_dir"]) for s in splits
        }


class FileSource(DataSource):
    """Pairs read from files: `data.train`, and `data.validation` / `data.test` files or
    examples held out of the training file (`data.validation_size`, `data.test_size`, shuffled
    with `data.holdout_seed`). A subclass implements `read_files`."""

    has_files = True
    #: How many files a split lists.
    files_per_split = 1

    def read_files(self, files: list) -> tuple[list[str], list[str]]:
        """The `(sources, targets)` of one split's files, empty sides included."""
        raise NotImplementedError

    def read_pairs(self, files: list) -> tuple[list[str], list[str], int]:
        """One split's pairs without those with an empty side, and how many were skipped."""
        if len(files) != self.files_per_split:
            raise DataError(
                f"Data source '{self.name}' takes {self.files_per_split} file(s) per split, got "
                f"{len(files)}: {files}"
            )
        pairs = self.read_files(files)
        return drop_empty_pairs(*pairs, where=" and ".join(os.fspath(f) for f in files))

    def available_splits(self, data: dict) -> tuple[str, ...]:
        return ("train",) + tuple(
            split for split in ("validation", "test") if data[split] or data[f"{split}_size"] > 0
        )

    def load_splits(self, data: dict, splits, skipped: dict) -> dict[str, tf.data.Dataset]:
        if not data["train"]:
            raise ConfigError(
                f"data.train must list the training file(s) for source '{data['source']}'"
            )
        pairs, counts = {}, {}
        sources, targets, counts["train"] = self.read_pairs(data["train"])
        pairs["train"] = (sources, targets)
        held_out = {}
        for split in ("validation", "test"):
            if data[split]:
                sources, targets, counts[split] = self.read_pairs(data[split])
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
        # A held-out split's skipped pairs are counted in the training file's.
        skipped.update({s: counts.get(s, 0) for s in splits})
        return {s: _pairs_to_dataset(*pairs[s]) for s in splits}


class TextSource(FileSource):
    """Aligned files: a split is `[source_file, target_file]`, line i translating line i."""

    files_per_split = 2

    def read_files(self, files):
        return read_parallel_text_pairs(*files)


class TSVSource(FileSource):
    """`source<TAB>target` lines: a split is `[file]`; a line holds exactly one tab."""

    def read_files(self, files):
        return read_separated_pairs(files[0], "\t", columns=2)


class DLFS2Source(FileSource):
    """The DLFS2 book's `source_target` lines, padded with spaces (stripped here)."""

    def read_files(self, files):
        return read_separated_pairs(files[0], "_", strip=True)


def data_source(name: str) -> DataSource:
    """The registered data source `name` (`data.source`)."""
    source = DATA_SOURCES[name]()
    source.name = name
    return source


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


def read_parallel_text(source_path, target_path) -> tf.data.Dataset:
    """Aligned files (plain or .gz): line i of `source_path` translates line i of `target_path`.

    Pairs with an empty source or target line are skipped.

    Example:
    ```python
    ds = keras_s2s.data.read_parallel_text("train.en.gz", "train.de.gz")
    ```
    """
    return _pairs_to_dataset(*read_pairs("text", [source_path, target_path])[:2])


def read_tsv(path) -> tf.data.Dataset:
    """`source<TAB>target` lines (plain or .gz); lines with an empty side are skipped."""
    return _pairs_to_dataset(*read_pairs("tsv", [path])[:2])


def read_dlfs2(path) -> tf.data.Dataset:
    """The DLFS2 format: `source_target` lines, padded with spaces (stripped here).

    Lines with an empty side are skipped.
    """
    return _pairs_to_dataset(*read_pairs("dlfs2", [path])[:2])


def read_pairs(kind: str, files: list) -> tuple[list[str], list[str], int]:
    """Reads one split given as a config list with the file source `kind` (`data.source`):
    `[src, tgt]` for "text", `[file]` for "tsv" and "dlfs2".

    Returns `(sources, targets, skipped)`: the pairs without those whose source or target is
    empty (or only whitespace), and how many were skipped.
    """
    source = data_source(kind)
    if not isinstance(source, FileSource):
        raise DataError(f"Data source '{kind}' does not read files")
    return source.read_pairs(files)
