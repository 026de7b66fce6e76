"""The input pipeline: small `dataset -> dataset` steps, applied with `dataset.apply`.

    strings --tokenize--> ids --add_bos_eos--> --filter_by_length--> --teacher_forcing-->
    --bucket_by_tokens--> batches ({"encoder_token_ids", "decoder_token_ids"}, labels)

`make_dataset` chains them (with cache, shuffle and prefetch) the way training uses them.
The special ids come from the tokenizers: targets are wrapped in the target tokenizer's bos and
eos, and each side is padded with its tokenizer's pad id (masked out of the loss and metrics).
"""

from __future__ import annotations

import collections
import dataclasses

import tensorflow as tf

from keras_s2s.tokenizers import Tokenizer

_TOKENIZE_BATCH = 1024


def tokenize(source_tokenizer: Tokenizer, target_tokenizer: Tokenizer):
    """`(source, target)` strings -> `{"source": ids[S], "target": ids[T]}` (int32)."""

    def apply(dataset: tf.data.Dataset) -> tf.data.Dataset:
        def fn(source, target):
            return {
                "source": source_tokenizer.tokenize(source),
                "target": target_tokenizer.tokenize(target),
            }

        # Tokenizing a batch at a time is several times faster than one string at a time.
        return (
            dataset.batch(_TOKENIZE_BATCH)
            .map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .unbatch()
        )

    return apply


def add_bos_eos(bos_id: int, eos_id: int):
    """Wraps the target in bos ... eos (the source is left as is)."""

    def apply(dataset):
        def fn(example):
            target = tf.concat([[bos_id], example["target"], [eos_id]], axis=0)
            return {**example, "target": target}

        return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return apply


def _length_ok(max_source_length: int, max_target_length: int):
    # The target holds bos and eos: its decoder input/labels are len - 1 <= max + 1 long.
    def ok(example):
        return (tf.size(example["source"]) <= max_source_length) & (
            tf.size(example["target"]) <= max_target_length + 2
        )

    return ok


def filter_by_length(max_source_length: int, max_target_length: int):
    """Drops examples whose source or target (without bos/eos) exceeds the max length."""

    def apply(dataset):
        return dataset.filter(_length_ok(max_source_length, max_target_length))

    return apply


def count_too_long(dataset, max_source_length: int, max_target_length: int) -> tuple[int, int]:
    """Returns `(kept, dropped)` for `filter_by_length` on a bos/eos-wrapped dataset."""
    ok = _length_ok(max_source_length, max_target_length)
    counts = dataset.map(lambda e: tf.cast(ok(e), tf.int64)).reduce(
        tf.zeros([2], tf.int64), lambda acc, k: acc + tf.stack([k, 1 - k])
    )
    kept, dropped = (int(v) for v in counts.numpy())
    return kept, dropped


def teacher_forcing():
    """Target `[bos, y1..yn, eos]` -> decoder input `[bos, y1..yn]`, labels `[y1..yn, eos]`."""

    def apply(dataset):
        def fn(example):
            target = example["target"]
            features = {"encoder_token_ids": example["source"], "decoder_token_ids": target[:-1]}
            return features, target[1:]

        return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return apply


@dataclasses.dataclass(frozen=True)
class BucketSpec:
    """Bucket shapes for `bucket_by_tokens`.

    An example's bucket is its longer side, rounded up to a multiple of `width`: L =
    `width * ceil(max(source length, decoder length) / width)`. A bucket holds
    `batch_tokens // L` rows, or `rows` rows in every bucket if `rows` is set. Each side of a
    batch is padded to its longest example rounded up to a multiple of `width` (so one side is
    L, the other at most L). A bucket's last batch is partial, and its size depends only on how
    many examples fall in the bucket. So there are at most `2 * ceil(S/width) * ceil(T/width)`
    shapes, and XLA compiles a few programs, not one per batch.

    One key (the longer side), not one per (source, target) pair of lengths: a bucket's last,
    partial batch comes out when the epoch ends, and with a bucket per pair of lengths many of
    an epoch's updates would be such small batches, flushed in length order at the end; with
    few buckets and the batches shuffled (`make_dataset(batch_shuffle_buffer=...)`) they are
    few and spread out (the README's pipeline section has the measured effect).
    """

    batch_tokens: int
    width: int
    max_source_length: int
    max_decoder_length: int
    rows: int = 0

    def padded_length(self, length):
        """`length` rounded up to a multiple of `width` (at least `width`)."""
        w = tf.cast(self.width, length.dtype)
        return tf.maximum(tf.cast(1, length.dtype), (length + w - 1) // w) * w

    def batch_size(self, longest):
        """Rows of the bucket of (padded) length `longest`."""
        if self.rows:
            return tf.constant(self.rows, tf.int64)
        return tf.maximum(tf.constant(1, tf.int64), self.batch_tokens // longest)


def _padding_values(pad_ids: tuple[int, int]):
    source, target = pad_ids
    return {"encoder_token_ids": source, "decoder_token_ids": target}, target


def _pad_batch(features, labels, pad_ids: tuple[int, int], paddings):
    """Pads each side of a batch with its pad id; `paddings(x)` gives `tf.pad`'s paddings."""
    values, label_value = _padding_values(pad_ids)
    padded = {k: tf.pad(v, paddings(v), constant_values=values[k]) for k, v in features.items()}
    return padded, tf.pad(labels, paddings(labels), constant_values=label_value)


def bucket_by_tokens(spec: BucketSpec, pad_ids: tuple[int, int], pad_batch_to_full: bool = False):
    """Batches `(features, labels)` examples of similar lengths under a token budget.

    Args:
        spec: the bucket shapes.
        pad_ids: the `(source, target)` tokenizers' pad ids.
        pad_batch_to_full: pad each bucket's last, partial batch with all-padding rows (masked
            out of the loss and metrics): half the shapes, at the cost of computing on empty
            rows.
    """

    def key_fn(features, labels):
        del labels
        longest = tf.maximum(
            tf.size(features["encoder_token_ids"], out_type=tf.int64),
            tf.size(features["decoder_token_ids"], out_type=tf.int64),
        )
        return spec.padded_length(longest) // spec.width

    def window_size_fn(key):
        return spec.batch_size(key * spec.width)

    def round_up(features, labels):
        def paddings(x):
            length = tf.shape(x)[1]
            return [[0, 0], [0, spec.padded_length(length) - length]]

        return _pad_batch(features, labels, pad_ids, paddings)

    def reduce_fn(key, window):
        batch_size = window_size_fn(key)
        batched = window.padded_batch(batch_size, padding_values=_padding_values(pad_ids))
        batched = batched.map(round_up)
        if not pad_batch_to_full:
            return batched

        def fill(features, labels):
            missing = tf.cast(batch_size, tf.int32) - tf.shape(labels)[0]
            return _pad_batch(features, labels, pad_ids, lambda x: [[0, missing], [0, 0]])

        return batched.map(fill)

    def apply(dataset):
        return dataset.group_by_window(key_fn, reduce_fn, window_size_func=window_size_fn)

    return apply


def count_batch_shapes(dataset: tf.data.Dataset) -> collections.Counter:
    """Counts one pass of `make_dataset` batches by shape: `{(encoder, decoder shape): batches}`.

    `len()` of the result is the number of distinct batch shapes of an epoch, so the number of
    programs a jit-compiled model compiles for it. A bucket gives full batches and, unless its
    example count is a multiple of its batch size, one smaller last batch (none with
    `pad_batch_to_full`); a batch's shorter side depends on the examples it drew.
    """
    shapes = dataset.map(
        lambda features, labels: (
            tf.shape(features["encoder_token_ids"]),
            tf.shape(features["decoder_token_ids"]),
        )
    )
    return collections.Counter(
        (tuple(enc.tolist()), tuple(dec.tolist())) for enc, dec in shapes.as_numpy_iterator()
    )


def pad_to_fixed(
    batch_size: int, source_length: int, decoder_length: int, pad_ids: tuple[int, int]
):
    """Batches of `batch_size` examples padded to fixed lengths with the `(source, target)`
    pad ids: one shape (plus the last, partial batch) for models with static lengths
    (`Seq2Seq(unroll=True)`, TFLite)."""

    def apply(dataset):
        return dataset.padded_batch(
            batch_size,
            padded_shapes=(
                {"encoder_token_ids": [source_length], "decoder_token_ids": [decoder_length]},
                [decoder_length],
            ),
            padding_values=_padding_values(pad_ids),
        )

    return apply


def prepare_examples(
    dataset: tf.data.Dataset,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer,
) -> tf.data.Dataset:
    """Strings -> `{"source", "target"}` ids with the target tokenizer's bos/eos around the
    target."""
    return dataset.apply(tokenize(source_tokenizer, target_tokenizer)).apply(
        add_bos_eos(target_tokenizer.bos_id, target_tokenizer.eos_id)
    )


def make_dataset(
    dataset: tf.data.Dataset,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer,
    *,
    max_source_length: int,
    max_target_length: int,
    batch_tokens: int,
    bucket_width: int = 8,
    shuffle_buffer: int = 0,
    batch_shuffle_buffer: int = 0,
    seed: int | None = None,
    cache: bool = True,
    pad_batch_to_full: bool = False,
    batch_size: int = 0,
    fixed_lengths: bool = False,
) -> tf.data.Dataset:
    """The whole training pipeline: a `(source, target)` string dataset to model batches.

    Returns batches `({"encoder_token_ids": [B, S], "decoder_token_ids": [B, T]}, labels [B, T])`
    for `model.fit`. Deterministic for a given `seed` (shuffled again each epoch).

    By default examples are bucketed by length under a budget of `batch_tokens` padded tokens
    per batch; with `batch_size`, each batch holds that many examples instead (as the DLFS2
    book's do), still bucketed by length. With `fixed_lengths`, every batch is padded to
    S = `max_source_length` and T = `max_target_length + 1` (for models with static lengths)
    and holds `batch_size` examples (default `batch_tokens // max(S, T)`), in random order.
    Batching drops no example (only `filter_by_length` does): each bucket's last batch is
    smaller, unless `pad_batch_to_full` fills it with padding rows (`count_batch_shapes` counts
    the shapes an epoch then has). Buckets release their last batches when the epoch's examples
    run out, so they come together, in length order: `batch_shuffle_buffer` (batches) shuffles
    the batches too (the trainer uses 512, more than an epoch of Multi30k holds, so the order
    of an epoch's batches is a permutation).

    Example:
    ```python
    train = keras_s2s.data.make_dataset(
        pairs, tokenizer, tokenizer, max_source_length=32, max_target_length=16,
        batch_tokens=2048, shuffle_buffer=10000, batch_shuffle_buffer=512, seed=1)
    ```
    """
    decoder_length = max_target_length + 1
    pad_ids = (source_tokenizer.pad_id, target_tokenizer.pad_id)
    ds = prepare_examples(dataset, source_tokenizer, target_tokenizer)
    ds = ds.apply(filter_by_length(max_source_length, max_target_length))
    ds = ds.apply(teacher_forcing())  # Deterministic, so cached: an epoch only shuffles and pads.
    if cache:
        ds = ds.cache()
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if fixed_lengths:
        rows = batch_size or max(1, batch_tokens // max(max_source_length, decoder_length))
        ds = ds.apply(pad_to_fixed(rows, max_source_length, decoder_length, pad_ids))
    else:
        spec = BucketSpec(
            batch_tokens, bucket_width, max_source_length, decoder_length, rows=batch_size
        )
        ds = ds.apply(bucket_by_tokens(spec, pad_ids, pad_batch_to_full))
    if batch_shuffle_buffer:
        batch_seed = None if seed is None else seed + 1
        ds = ds.shuffle(batch_shuffle_buffer, seed=batch_seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
