"""Greedy decoding: at each step take the most likely token."""

from __future__ import annotations

import tensorflow as tf

from keras_s2s.decoding.protocol import StepFn, join_state, split_state
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
    collect=None,
    constant_state_keys: tuple[str, ...] = (),
):
    """Decodes `max_length` tokens at most, in one `tf.while_loop` with fixed shapes.

    Works eagerly, inside `tf.function` and with `jit_compile=True`. Stops early once every
    row has produced eos.

    Args:
        step_fn: `(token_ids [B], state, step) -> (logits [B, V], state)`.
        state: the initial state from the model's `encode`.
        batch_size: B (an int or a scalar tensor).
        max_length: the most tokens to generate, eos included.
        collect: optional `state -> tensor [B, ...]` read after every step (e.g.
            `lambda s: s["attention"]`); its values are returned stacked `[B, max_length, ...]`.
        constant_state_keys: keys of the dict `state` whose entries never change during
            decoding (as for `beam_search`): they are closed over instead of carried through
            the loop. `step_fn` and `collect` still receive the whole state; the entries
            `step_fn` returns under these keys are ignored.

    Returns:
        `(token_ids, scores)`: int32 `[B, max_length]` (eos included, then `pad_id`) and float32
        `[B]` log-probabilities of each output sequence (eos included); with `collect`, a third
        item, the collected values.
    """
    state, constants = split_state(state, constant_state_keys)
    tokens = tf.fill([batch_size], tf.constant(bos_id, tf.int32))
    output = tf.fill([batch_size, max_length], tf.constant(pad_id, tf.int32))
    scores = tf.zeros([batch_size], tf.float32)
    finished = tf.zeros([batch_size], tf.bool)
    columns = tf.range(max_length)
    if collect is not None:
        first = collect(join_state(state, constants))
        shape = tf.concat([[batch_size, max_length], tf.shape(first)[1:]], axis=0)
        collected = tf.zeros(shape, first.dtype)
    else:
        collected = tf.zeros([0])

    def at_step(step, rank):
        # [1, max_length, 1, ...]: True at column `step`.
        return tf.reshape(columns == step, [1, max_length] + [1] * (rank - 2))

    def cond(step, tokens, output, scores, finished, collected, state):
        del tokens, output, scores, collected, state
        return (step < max_length) & ~tf.reduce_all(finished)

    def body(step, tokens, output, scores, finished, collected, state):
        logits, state = step_fn(tokens, join_state(state, constants), step)
        state, _ = split_state(state, constant_state_keys, missing_ok=True)
        log_probs = tf.nn.log_softmax(never_pad_or_bos(logits, pad_id, bos_id), axis=-1)
        next_tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        next_tokens = tf.where(finished, pad_id, next_tokens)
        token_log_probs = tf.gather(log_probs, next_tokens, batch_dims=1)
        scores += tf.where(finished, 0.0, token_log_probs)
        # Write column `step` without growing anything (fixed shapes for XLA/TFLite).
        output = tf.where(at_step(step, 2), next_tokens[:, None], output)
        if collect is not None:
            value = tf.expand_dims(collect(join_state(state, constants)), 1)
            collected = tf.where(at_step(step, len(collected.shape)), value, collected)
        finished |= next_tokens == eos_id
        return step + 1, next_tokens, output, scores, finished, collected, state

    _, _, output, scores, _, collected, _ = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tokens, output, scores, finished, collected, state),
        maximum_iterations=max_length,
    )
    if collect is not None:
        return output, scores, collected
    return output, scores
