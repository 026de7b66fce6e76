"""Data: built-in TFDS tasks, readers for users' files, and the tf.data input pipeline."""

from keras_s2s.data import builders
from keras_s2s.data.pipeline import (
    BucketSpec,
    add_bos_eos,
    bucket_by_tokens,
    count_batch_shapes,
    count_too_long,
    filter_by_length,
    make_dataset,
    pad_to_fixed,
    prepare_examples,
    teacher_forcing,
    tokenize,
)
from keras_s2s.data.sources import (
    DataSource,
    FileSource,
    read_dlfs2,
    read_parallel_text,
    read_tsv,
)
from keras_s2s.data.splits import as_strings, load_splits, load_tfds_split
from keras_s2s.data.vocabulary import build_tokenizers
from keras_s2s.registry import DATA_SOURCES

#: Class decorator: registers a `DataSource` subclass under a `data.source` name.
register_source = DATA_SOURCES.register

__all__ = [
    "BucketSpec",
    "DataSource",
    "FileSource",
    "register_source",
    "add_bos_eos",
    "as_strings",
    "bucket_by_tokens",
    "build_tokenizers",
    "builders",
    "count_batch_shapes",
    "count_too_long",
    "filter_by_length",
    "load_splits",
    "load_tfds_split",
    "make_dataset",
    "pad_to_fixed",
    "prepare_examples",
    "read_dlfs2",
    "read_parallel_text",
    "read_tsv",
    "teacher_forcing",
    "tokenize",
]
