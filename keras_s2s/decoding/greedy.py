"""Greedy decoding: at each step take the most likely token."""

from __future__ import annotations

import tensorflow as tf

from keras_s2s.decoding.protocol import StepFn
from keras_s2s.tokenizers import BOS_ID, EOS_ID, PAD_ID


def never_pad_or_bos(logits, pad_id: int = PAD_ID, bos_id: int = BOS_ID):
    """float32 logits `[B, V]` with pad and bos made impossible (they are never outputs)."""
    logits = tf.cast(logits, tf.float32)
    vocabulary = tf.range(tf.shape(logits)[-1])
    banned = (vocabulary == pad_id) | (vocabulary == bos_id)
    return tf.where(banned[None, :], tf.constant(-1e9, tf.float32), logits)


def greedy_search(
    step_fn: StepFn,
    state,
    batch_size,
    max_length: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
):
    """Decodes `max_length` tokens at most, in one `tf.while_loop` with fixed shapes.

    Works eagerly, inside `tf.function` and with `jit_compile=True`. Stops early once every
    row has produced eos.

    Args:
        step_fn: `(token_ids [B], state, step) -> (logits [B, V], state)`.
        state: the initial state from the model's `encode`.
        batch_size: B (an int or a scalar tensor).
        max_length: the most tokens to generate, eos included.

    Returns:
        `(token_ids, scores)`: int32 `[B, max_length]` (eos included, then `pad_id`) and float32
        `[B]` log-probabilities of each output sequence (eos included).
    """
    tokens = tf.fill([batch_size], tf.constant(bos_id, tf.int32))
    output = tf.fill([batch_size, max_length], tf.constant(pad_id, tf.int32))
    scores = tf.zeros([batch_size], tf.float32)
    finished = tf.zeros([batch_size], tf.bool)
    columns = tf.range(max_length)

    def cond(step, tokens, output, scores, finished, state):
        del tokens, output, scores, state
        return (step < max_length) & ~tf.reduce_all(finished)

    def body(step, tokens, output, scores, finished, state):
        logits, state = step_fn(tokens, state, step)
        log_probs = tf.nn.log_softmax(never_pad_or_bos(logits, pad_id, bos_id), axis=-1)
        next_tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        next_tokens = tf.where(finished, pad_id, next_tokens)
        token_log_probs = tf.gather(log_probs, next_tokens, batch_dims=1)
        scores += tf.where(finished, 0.0, token_log_probs)
        # Write column `step` without growing anything (fixed shapes for XLA/TFLite).
        output = tf.where(columns[None, :] == step, next_tokens[:, None], output)
        finished |= next_tokens == eos_id
        return step + 1, next_tokens, output, scores, finished, state

    _, _, output, scores, _, _ = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tokens, output, scores, finished, state),
        maximum_iterations=max_length,
    )
    return output, scores
