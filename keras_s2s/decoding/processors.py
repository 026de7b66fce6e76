"""Logits processors: small steps that change the next-token logits before a strategy picks.

The decoding loop (`keras_s2s.decoding.decode`) applies its processors in order at every step,
after the model's step function and before the log-softmax the strategy reads:

    logits [R, V] float32 -> processor(logits, context) -> logits [R, V]

R is the number of rows the loop decodes (batch x beam, or batch x samples) and `context` a
`StepContext`: the int32 `step` being decoded (0 for the first token after bos), the int32
`[R, L]` `history` of tokens each row has output so far (columns `>= step` hold padding; only
for a processor that sets `needs_history = True`) and the int32 `[R]` `source_lengths` (only
when `decode` was given them, which `Translator` does). A banned token gets `BANNED` (-1e9),
not -inf, so that a row whose every token is banned still has a finite softmax.

Processors are plain Python objects holding their settings; they run inside the loop's
`tf.while_loop` (eager, `tf.function`, XLA, SavedModel), so they use fixed-shape ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

#: The logit of a token a processor rules out.
BANNED = -1e9


class StepContext(NamedTuple):
    """What a processor is told at each step (see the module)."""

    step: Any  # int32 scalar
    history: Any  # int32 [R, L], or None
    source_lengths: Any  # int32 [R], or None


class LogitsProcessor:
    """Base class: `__call__(logits [R, V], context: StepContext) -> logits [R, V]`."""

    #: Whether `__call__` reads `context.history` (the loop passes None otherwise).
    needs_history = False
    #: Whether `__call__` reads `context.source_lengths` (`decode` then requires them).
    needs_source_lengths = False

    def for_rows(self, width: int) -> LogitsProcessor:
        """This processor for R = B x `width` rows: one that holds a tensor per example (a
        prefix per source) returns a copy with it repeated `width` times per example."""
        del width
        return self

    def __call__(self, logits, context: StepContext):
        raise NotImplementedError


def _ban(logits, banned):
    """`logits` with the True entries of the bool `banned` (broadcast to `[R, V]`) set to
    `BANNED`."""
    return tf.where(banned, tf.constant(BANNED, logits.dtype), logits)


def _vocabulary(logits):
    """`[V]` token ids; a constant when V is static (graph optimization then folds the masks
    built from it out of the loop)."""
    size = logits.shape[-1]
    return tf.range(size if size is not None else tf.shape(logits)[-1])


class BanTokens(LogitsProcessor):
    """Token ids that are never output (the loop always bans pad and bos)."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = tuple(int(i) for i in token_ids)

    def __call__(self, logits, context):
        if not self.token_ids:
            return logits
        ids = tf.constant(self.token_ids, tf.int32)
        banned = tf.reduce_any(_vocabulary(logits)[:, None] == ids[None, :], -1)
        return _ban(logits, banned[None, :])


class ForcePrefix(LogitsProcessor):
    """Each output begins with its example's prefix: int32 `prefix_ids [B, P]`, right-padded
    with `pad_id` (a row of padding: no prefix). While a row's prefix lasts, every other token
    is banned, so the forced tokens add 0 to the log-probability the strategy scores: a
    score is the continuation's."""

    def __init__(self, prefix_ids, pad_id: int):
        self.prefix_ids, self.pad_id = tf.convert_to_tensor(prefix_ids, tf.int32), int(pad_id)

    def for_rows(self, width: int) -> ForcePrefix:
        return ForcePrefix(tf.repeat(self.prefix_ids, width, axis=0), self.pad_id)

    def __call__(self, logits, context):
        prefix = tf.pad(self.prefix_ids, [[0, 0], [0, 1]], constant_values=self.pad_id)
        column = tf.minimum(context.step, tf.shape(prefix)[1] - 1)
        token = tf.gather(prefix, column, axis=1)  # [R]: pad once the prefix is out
        forced = (token != self.pad_id)[:, None]
        others = _vocabulary(logits)[None, :] != token[:, None]
        return _ban(logits, forced & others)


class BanSequences(LogitsProcessor):
    """Token sequences that never appear in an output (banned words: a word may be several
    pieces): the last token of a sequence is banned when the tokens before it were just
    output. A one-token sequence is banned everywhere.

    `sequences` is a list of token-id lists, or an int32 tensor `[K, P]` of K sequences
    right-padded with `pad_id` (K may be 0; an all-padding row bans nothing): the form a
    SavedModel builds in its graph from banned words it is given.
    """

    needs_history = True

    def __init__(self, sequences, pad_id: int = -1):
        self.pad_id = int(pad_id)
        if not tf.is_tensor(sequences):
            sequences = [list(s) for s in sequences if len(s)]
            width = max([1, *(len(s) for s in sequences)])
            padded = [s + [self.pad_id] * (width - len(s)) for s in sequences]
            sequences = tf.constant(padded, tf.int32, shape=[len(padded), width])
        self.sequences = sequences = tf.convert_to_tensor(sequences, tf.int32)  # [K, P]
        # What the steps share, computed once (not in the decoding loop): each sequence's
        # length and last token, and which of its tokens must precede the last.
        self.lengths = tf.reduce_sum(tf.cast(sequences != self.pad_id, tf.int32), 1)  # [K]
        self.last = tf.gather(sequences, tf.maximum(self.lengths - 1, 0), axis=1, batch_dims=1)
        j = tf.range(tf.shape(sequences)[1])[None, :]
        # Token j < length - 1 of sequence k sits `step + offset` (the column it was output in).
        self.offset = j - (self.lengths[:, None] - 1)  # [K, P]
        self.needed = j < self.lengths[:, None] - 1

    def __call__(self, logits, context):
        back = context.step + self.offset  # [K, P]
        output = tf.gather(context.history, tf.maximum(back, 0), axis=1)  # [R, K, P]
        agrees = (output == self.sequences[None]) & (back >= 0)[None]
        match = tf.reduce_all(agrees | ~self.needed[None], axis=2) & (self.lengths > 0)[None]
        last_tokens = tf.one_hot(self.last, tf.shape(logits)[-1], dtype=tf.float32)  # [K, V]
        hits = tf.matmul(tf.cast(match, tf.float32), last_tokens)  # [R, V]
        return _ban(logits, hits > 0)


class MinLength(LogitsProcessor):
    """eos is banned until `min_length` tokens (eos included) can be output: a row's output
    has at least `min_length` tokens, eos the last of them."""

    def __init__(self, min_length: int, eos_id: int):
        self.min_length, self.eos_id = int(min_length), int(eos_id)

    def __call__(self, logits, context):
        is_eos = _vocabulary(logits) == self.eos_id
        return _ban(logits, (is_eos & (context.step + 1 < self.min_length))[None, :])


class LengthRatio(LogitsProcessor):
    """Output lengths as ratios of each row's source length (in tokens): at least
    `ceil(min_ratio x source length)` tokens before eos, and eos forced once
    `ceil(max_ratio x source length)` tokens are out (0 turns a bound off). The loop's
    `max_length` still caps every output. The ratios may be float32 scalar tensors (a
    SavedModel's inputs; checked by the caller)."""

    needs_source_lengths = True

    def __init__(self, eos_id: int, min_ratio=0.0, max_ratio=0.0):
        numbers = not (tf.is_tensor(min_ratio) or tf.is_tensor(max_ratio))
        if numbers and (min_ratio < 0 or max_ratio < 0 or (max_ratio and min_ratio > max_ratio)):
            raise ValueError(
                "Length ratios must be >= 0 with min_ratio <= max_ratio. "
                f"Received: min_ratio={min_ratio}, max_ratio={max_ratio}"
            )
        self.eos_id, self.min_ratio, self.max_ratio = int(eos_id), min_ratio, max_ratio

    def _bound(self, ratio, context):
        lengths = tf.cast(context.source_lengths, tf.float32)
        return tf.cast(tf.math.ceil(ratio * lengths), tf.int32)[:, None]  # [R, 1]

    def __call__(self, logits, context):
        is_eos = (_vocabulary(logits) == self.eos_id)[None, :]
        tokens_out = context.step  # tokens output before this step
        # A ratio of 0 bans nothing (given as a number, its ban is left out of the loop).
        if tf.is_tensor(self.min_ratio) or self.min_ratio:
            logits = _ban(logits, is_eos & (tokens_out < self._bound(self.min_ratio, context)))
        if tf.is_tensor(self.max_ratio) or self.max_ratio:
            # Words before eos: max x source length; then only eos.
            over = (tokens_out >= self._bound(self.max_ratio, context)) & (self.max_ratio > 0)
            logits = _ban(logits, ~is_eos & over)
        return logits


class NoRepeatNgram(LogitsProcessor):
    """No n-gram of `n` tokens appears twice in a row's output: a token that would complete
    an n-gram already output is banned (as fairseq's and Hugging Face's `no_repeat_ngram_size`).
    `n` may be an int32 scalar tensor (a SavedModel's input), where 0 turns the ban off.
    """

    needs_history = True

    def __init__(self, n):
        if not tf.is_tensor(n) and n < 1:
            raise ValueError(f"`n` must be at least 1. Received: n={n}")
        self.n = n if tf.is_tensor(n) else int(n)

    def __call__(self, logits, context):
        n, step, history = self.n, context.step, context.history
        length = history.shape[1]
        if isinstance(n, int):
            if length is not None and length < n:
                return logits
            size, on = n, None
        else:  # A tensor n: 0 (off) or more than the history (no n-gram fits) bans nothing.
            columns = tf.shape(history)[1]
            size, on = tf.clip_by_value(n, 1, columns), (n > 0) & (n <= columns)
        if length is None:
            length = tf.shape(history)[1]
        starts = length - size + 1  # n-grams start at columns 0 .. starts - 1

        def window(k):  # column s: token s + k of the output
            return tf.slice(history, [0, k], [-1, starts])

        # The n-gram starting at column s is earlier than the last n - 1 tokens output (all its
        # columns < step) and its first n - 1 tokens equal them: its n-th token would repeat it.
        followers = window(size - 1)  # [R, starts]: the n-th token of each n-gram
        match = tf.range(starts)[None, :] + size <= step
        match = tf.broadcast_to(match if on is None else match & on, tf.shape(followers))

        def agree(k, match):
            last = tf.gather(history, tf.maximum(step - (size - 1) + k, 0), axis=1)
            return match & (window(k) == last[:, None])

        if isinstance(size, int):
            for k in range(size - 1):
                match = agree(k, match)
        else:
            _, match = tf.while_loop(
                lambda k, _: k < size - 1, lambda k, match: (k + 1, agree(k, match)), [0, match]
            )
        rows = tf.shape(history)[0]
        indices = tf.stack([tf.repeat(tf.range(rows)[:, None], starts, axis=1), followers], -1)
        counts = tf.scatter_nd(
            tf.reshape(indices, [-1, 2]),
            tf.reshape(tf.cast(match, tf.int32), [-1]),
            tf.shape(logits),
        )
        return _ban(logits, counts > 0)
