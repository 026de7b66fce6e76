"""Beam search with length normalization and n-best output.

After tensorflow/models `official/nlp/modeling/ops/beam_search.py`: two sets of K hypotheses per
example, the alive ones (still growing) and the finished ones (ended with eos, kept by length
normalized score), in one `tf.while_loop` with fixed shapes. It stops once no alive hypothesis
can beat the worst finished one, or at `max_length`.

The loop state is one named structure, `_Beams` (as keras-hub's `BeamSampler` and OpenNMT-tf's
`dynamic_decode` name theirs). The parts of the decoding state that never change (encoder memory,
attention keys) are tiled to the beams once and stay outside it: only the state that changes is
reordered by parent beam at each step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from keras_s2s.decoding.greedy import never_pad_or_bos
from keras_s2s.decoding.protocol import StepFn, join_state, split_state
from keras_s2s.tokenizers import BOS_ID, EOS_ID, PAD_ID

_NEG_INF = -1e9


def length_penalty(length, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


def tile_beams(tensor, beam_size: int):
    """`[B, ...]` -> `[B * K, ...]`, each example repeated K times in a row."""
    return tf.repeat(tensor, beam_size, axis=0)


def _gather_beams(nest, indices, batch_size, beam_size):
    """Picks beams `indices [B, K]` (parent beam of each new beam) in each `[B * K, ...]` tensor."""

    def gather(t):
        shaped = tf.reshape(t, tf.concat([[batch_size, beam_size], tf.shape(t)[1:]], 0))
        picked = tf.gather(shaped, indices, batch_dims=1)
        return tf.reshape(picked, tf.shape(t))

    return tf.nest.map_structure(gather, nest)


class _Beams(NamedTuple):
    """The `tf.while_loop` state of `beam_search` (B batch, K beam, L `max_length`)."""

    step: tf.Tensor  # int32 scalar: the position being decoded.
    tokens: tf.Tensor  # int32 [B*K]: the last token of each alive hypothesis.
    alive_seq: tf.Tensor  # int32 [B, K, L]: alive hypotheses, pad after `step`.
    alive_log_probs: tf.Tensor  # float32 [B, K], best first.
    finished_seq: tf.Tensor  # int32 [B, K, L]: eos included, then padding.
    finished_scores: tf.Tensor  # float32 [B, K]: length-normalized, best first.
    finished_log_probs: tf.Tensor  # float32 [B, K].
    finished_flags: tf.Tensor  # bool [B, K]: False for a slot no hypothesis filled yet.
    state: Any  # the step function's state without its constant entries, [B*K, ...] tensors.


def check_num_results(num_results: int, beam_size: int) -> None:
    """Raises `ValueError` unless 1 <= `num_results` <= `beam_size`."""
    if not 1 <= num_results <= beam_size:
        raise ValueError(
            f"`num_results` must be between 1 and beam_size={beam_size}. "
            f"Received: num_results={num_results}"
        )


def beam_search(
    step_fn: StepFn,
    state,
    batch_size,
    max_length: int,
    beam_size: int,
    length_penalty_alpha=0.0,
    num_results: int = 1,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    constant_state_keys: tuple[str, ...] = (),
):
    """Decodes with a beam of `beam_size` hypotheses per example.

    Args:
        step_fn: `(token_ids [B*K], state, step) -> (logits [B*K, V], state)`.
        state: the initial state from the model's `encode`, with a leading batch dim B (it is
            tiled to B*K here).
        batch_size: B.
        max_length: the most tokens per hypothesis, eos included.
        beam_size: K, fixed per compiled function.
        length_penalty_alpha: GNMT alpha >= 0 (a float or scalar tensor); 0 ranks by
            log-probability.
        num_results: N <= K best hypotheses returned per example.
        constant_state_keys: keys of the dict `state` whose entries never change during
            decoding (encoder memory, attention keys, a Transformer's cross-attention keys and
            values; a model's `constant_state_keys`). They are tiled to `[B*K, ...]` once and
            never reordered by parent beam; `step_fn` still receives the whole state, and the
            entries it returns under these keys are ignored. Every other entry is reordered by
            parent beam at each step.

    Returns:
        `(token_ids [B, N, max_length], scores [B, N], log_probs [B, N])`: hypotheses best first
        (eos included, then padding), their length-normalized scores and their log-probabilities.
    """
    check_num_results(num_results, beam_size)
    K = beam_size
    alpha = tf.cast(length_penalty_alpha, tf.float32)
    columns = tf.range(max_length)

    state, constants = split_state(state, constant_state_keys)
    state = tf.nest.map_structure(lambda t: tile_beams(t, K), state)
    # [B*K, ...] once, for every step: closed over by `body`, so never part of the loop state.
    constants = tf.nest.map_structure(lambda t: tile_beams(t, K), constants)

    def cond(beams: _Beams):
        # With alpha >= 0 an alive hypothesis can at best keep its log-probability and be
        # normalized by the longest length. Once the N-th best finished one beats that bound for
        # every example, the N best are final.
        best_alive = beams.alive_log_probs[:, 0] / length_penalty(max_length, alpha)
        nth = num_results - 1
        done = tf.reduce_all(
            beams.finished_flags[:, nth] & (beams.finished_scores[:, nth] > best_alive)
        )
        return (beams.step < max_length) & ~done

    def body(beams: _Beams):
        step = beams.step
        logits, state = step_fn(beams.tokens, join_state(beams.state, constants), step)
        state, _ = split_state(state, constant_state_keys, missing_ok=True)
        log_probs = tf.nn.log_softmax(never_pad_or_bos(logits, pad_id, bos_id), axis=-1)
        vocabulary = tf.shape(log_probs)[-1]
        log_probs = tf.reshape(log_probs, [batch_size, K, vocabulary])
        candidates = beams.alive_log_probs[:, :, None] + log_probs
        # 2K candidates: even if K of them end with eos, K alive ones remain.
        top_log_probs, top_index = tf.math.top_k(tf.reshape(candidates, [batch_size, -1]), 2 * K)
        top_beams = top_index // vocabulary
        top_tokens = tf.cast(top_index % vocabulary, tf.int32)
        top_seq = tf.gather(beams.alive_seq, top_beams, batch_dims=1)
        top_seq = tf.where(columns[None, None, :] == step, top_tokens[:, :, None], top_seq)
        is_eos = top_tokens == eos_id

        # Alive: the best K candidates that did not end.
        alive_log_probs, alive_index = tf.math.top_k(tf.where(is_eos, _NEG_INF, top_log_probs), K)
        parents = tf.gather(top_beams, alive_index, batch_dims=1)

        # Finished: the top-K candidates that ended (not the other K, so that a beam of one is
        # greedy search) join the finished set, which keeps its best K.
        is_eos &= tf.range(2 * K)[None, :] < K
        new_scores = tf.where(is_eos, top_log_probs / length_penalty(step + 1, alpha), _NEG_INF)
        all_seq = tf.concat([beams.finished_seq, top_seq], axis=1)
        all_scores = tf.concat([beams.finished_scores, new_scores], axis=1)
        all_log_probs = tf.concat(
            [beams.finished_log_probs, tf.where(is_eos, top_log_probs, _NEG_INF)], axis=1
        )
        all_flags = tf.concat([beams.finished_flags, is_eos], axis=1)
        finished_scores, keep = tf.math.top_k(all_scores, k=K)

        return (
            _Beams(
                step=step + 1,
                tokens=tf.reshape(tf.gather(top_tokens, alive_index, batch_dims=1), [-1]),
                alive_seq=tf.gather(top_seq, alive_index, batch_dims=1),
                alive_log_probs=alive_log_probs,
                finished_seq=tf.gather(all_seq, keep, batch_dims=1),
                finished_scores=finished_scores,
                finished_log_probs=tf.gather(all_log_probs, keep, batch_dims=1),
                finished_flags=tf.gather(all_flags, keep, batch_dims=1),
                state=_gather_beams(state, parents, batch_size, K),
            ),
        )

    initial = _Beams(
        step=tf.constant(0),
        tokens=tf.fill([batch_size * K], tf.constant(bos_id, tf.int32)),
        alive_seq=tf.fill([batch_size, K, max_length], tf.constant(pad_id, tf.int32)),
        # Only the first beam is alive at the start, so the K beams do not all repeat one path.
        alive_log_probs=tf.tile(tf.constant([[0.0] + [_NEG_INF] * (K - 1)]), [batch_size, 1]),
        finished_seq=tf.fill([batch_size, K, max_length], tf.constant(pad_id, tf.int32)),
        finished_scores=tf.fill([batch_size, K], _NEG_INF),
        finished_log_probs=tf.fill([batch_size, K], _NEG_INF),
        finished_flags=tf.zeros([batch_size, K], tf.bool),
        state=state,
    )
    # The batch dim may only be known at run time; every other dim is fixed.
    invariants = tf.nest.map_structure(
        lambda t: tf.TensorShape([None]).concatenate(t.shape[1:]) if t.shape.rank else t.shape,
        initial,
    )
    (beams,) = tf.while_loop(
        cond, body, (initial,), shape_invariants=(invariants,), maximum_iterations=max_length
    )

    # Examples with fewer than N finished hypotheses fall back on their alive ones.
    alive_scores = beams.alive_log_probs / length_penalty(max_length, alpha)
    finished_scores = tf.where(beams.finished_flags, beams.finished_scores, _NEG_INF * 10)
    all_seq = tf.concat([beams.finished_seq, beams.alive_seq], axis=1)
    all_scores = tf.concat([finished_scores, alive_scores], axis=1)
    all_log_probs = tf.concat([beams.finished_log_probs, beams.alive_log_probs], axis=1)
    scores, best = tf.math.top_k(all_scores, k=num_results)
    return (
        tf.gather(all_seq, best, batch_dims=1),
        scores,
        tf.gather(all_log_probs, best, batch_dims=1),
    )
