"""Logits processors: small steps that change the next-token logits before a strategy picks.

The decoding loop (`keras_s2s.decoding.decode`) applies its processors in order at every step,
after the model's step function and before the log-softmax the strategy reads:

    logits [R, V] float32 -> processor(logits, step, history) -> logits [R, V]

R is the number of rows the loop decodes (batch x beam, or batch x samples), `step` the int32
position being decoded (0 for the first token after bos) and `history` the int32 `[R, L]`
tokens each row has output so far (columns `>= step` hold padding). A processor that reads
`history` sets `needs_history = True` (the loop then asks the strategy for it). A banned token
gets `BANNED` (-1e9), not -inf, so that a row whose every token is banned still has a finite
softmax.

Processors are plain Python objects holding their settings; they run inside the loop's
`tf.while_loop` (eager, `tf.function`, XLA, SavedModel, TFLite), so they use fixed-shape ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

#: The logit of a token a processor rules out.
BANNED = -1e9


class LogitsProcessor:
    """Base class: `__call__(logits [R, V], step, history [R, L] or None) -> logits [R, V]`."""

    #: Whether `__call__` reads `history` (the loop passes None otherwise).
    needs_history = False

    def __call__(self, logits, step, history):
        raise NotImplementedError


def _ban(logits, banned):
    """`logits` with the True entries of the bool `banned` (broadcast to `[R, V]`) set to
    `BANNED`."""
    return tf.where(banned, tf.constant(BANNED, logits.dtype), logits)


class BanTokens(LogitsProcessor):
    """Token ids that are never output (the loop always bans pad and bos; a user's banned
    words add theirs)."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = tuple(int(i) for i in token_ids)

    def __call__(self, logits, step, history):
        del step, history
        if not self.token_ids:
            return logits
        vocabulary = tf.range(tf.shape(logits)[-1])
        banned = tf.reduce_any(vocabulary[:, None] == tf.constant(self.token_ids)[None, :], -1)
        return _ban(logits, banned[None, :])


class MinLength(LogitsProcessor):
    """eos is banned until `min_length` tokens (eos included) can be output: a row's output
    has at least `min_length` tokens, eos the last of them."""

    def __init__(self, min_length: int, eos_id: int):
        self.min_length, self.eos_id = int(min_length), int(eos_id)

    def __call__(self, logits, step, history):
        del history
        is_eos = tf.range(tf.shape(logits)[-1]) == self.eos_id
        return _ban(logits, (is_eos & (step + 1 < self.min_length))[None, :])


class NoRepeatNgram(LogitsProcessor):
    """No n-gram of `n` tokens appears twice in a row's output: a token that would complete
    an n-gram already output is banned (as fairseq's and Hugging Face's `no_repeat_ngram_size`).
    """

    needs_history = True

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"`n` must be at least 1. Received: n={n}")
        self.n = int(n)

    def __call__(self, logits, step, history):
        n, length = self.n, history.shape[1]
        if length is None or length < n:
            return logits
        starts = length - n + 1  # n-grams start at columns 0 .. starts - 1
        # An earlier n-gram (all its columns < step) whose first n - 1 tokens equal the last
        # n - 1 tokens output: its n-th token would repeat it.
        followers = history[:, n - 1 :]  # [R, starts]: the n-th token of each n-gram
        match = tf.broadcast_to(tf.range(starts)[None, :] + n <= step, tf.shape(followers))
        for k in range(n - 1):
            last = tf.gather(history, tf.maximum(step - (n - 1) + k, 0), axis=1)
            match &= history[:, k : k + starts] == last[:, None]
        rows = tf.shape(history)[0]
        indices = tf.stack([tf.repeat(tf.range(rows)[:, None], starts, axis=1), followers], axis=-1)
        counts = tf.scatter_nd(
            tf.reshape(indices, [-1, 2]),
            tf.reshape(tf.cast(match, tf.int32), [-1]),
            tf.shape(logits),
        )
        return _ban(logits, counts > 0)
