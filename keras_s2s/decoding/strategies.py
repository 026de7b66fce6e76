"""Decoding strategies for the loop of `keras_s2s.decoding.engine.decode`.

- `GreedySearch`: the most likely token at each step.
- `BeamSearch`: K hypotheses per example, GNMT length penalty, n-best output.
- `Sampling`: a random token from the (temperature-scaled, top-k / top-p filtered)
  distribution, N samples per source, reproducible under a seed.

Each row stops at eos; the rows of a finished example output padding.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from keras_s2s.decoding.engine import DecodingStrategy, Setup, example_rows
from keras_s2s.decoding.processors import BANNED

_NEG_INF = -1e9


def length_penalty(length, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


def check_num_results(num_results: int, beam_size: int) -> None:
    """Raises `ValueError` unless 1 <= `num_results` <= `beam_size`."""
    if not 1 <= num_results <= beam_size:
        raise ValueError(
            f"`num_results` must be between 1 and beam_size={beam_size}. "
            f"Received: num_results={num_results}"
        )


_BLOCK = 64


def top_k_wide(values, k: int):
    """`tf.math.top_k(values, k)` over the last axis of a wide `values [B, M]` (a beam's K x V
    candidates), in two passes: the k blocks of 64 with the largest maxima, then the top k of
    those k x 64 values. The k largest values lie in those blocks (a value outside them has k
    blocks of larger maxima above it), so values and indices equal `tf.math.top_k`'s; among
    equal values the order may differ. One pass over M and a top k of 64k values cost less
    than a top k over M (`benchmarks/beam_top_k.md`). A narrow or dynamic M takes
    `tf.math.top_k` itself."""
    width = values.shape[-1]
    if width is None or width < _BLOCK * 4 * max(k, 16):
        return tf.math.top_k(values, k)
    blocks = -(-width // _BLOCK)
    padded = tf.pad(values, [[0, 0], [0, blocks * _BLOCK - width]], constant_values=-float("inf"))
    padded = tf.reshape(padded, [-1, blocks, _BLOCK])
    _, best_blocks = tf.math.top_k(tf.reduce_max(padded, axis=-1), k)  # [B, k]
    candidates = tf.reshape(tf.gather(padded, best_blocks, batch_dims=1), [-1, k * _BLOCK])
    top_values, position = tf.math.top_k(candidates, k)
    block = tf.gather(best_blocks, position // _BLOCK, batch_dims=1)
    return top_values, block * _BLOCK + position % _BLOCK


def _write_column(output, step, tokens):
    """`output [R, L]` with column `step` set to `tokens [R]` (fixed shapes, no scatter; L is
    static, so the column ids are a constant)."""
    columns = tf.range(output.shape[-1])
    return tf.where((columns == step)[None, :], tokens[:, None], output)


class _Rows(NamedTuple):
    """The loop state of the strategies that keep one output per row."""

    output: tf.Tensor  # int32 [R, L]: tokens so far, then padding.
    log_probs: tf.Tensor  # float32 [R]: log-probability of the tokens so far.
    finished: tf.Tensor  # bool [R]: the row has output eos.


class _RowStrategy(DecodingStrategy):
    """A strategy whose rows are its results: `choose` picks each row's next token."""

    def choose(self, step, log_probs):
        raise NotImplementedError

    def initialize(self, setup: Setup):
        rows = setup.batch_size * self.width
        return _Rows(
            output=tf.fill([rows, setup.max_length], tf.constant(setup.pad_id, tf.int32)),
            log_probs=tf.zeros([rows], tf.float32),
            finished=tf.zeros([rows], tf.bool),
        )

    def step(self, setup: Setup, step, log_probs, state: _Rows):
        tokens = tf.where(state.finished, setup.pad_id, self.choose(step, log_probs))
        token_log_probs = tf.gather(log_probs, tokens, batch_dims=1)
        return (
            tokens,
            None,
            _Rows(
                output=_write_column(state.output, step, tokens),
                log_probs=state.log_probs + tf.where(state.finished, 0.0, token_log_probs),
                finished=state.finished | (tokens == setup.eos_id),
            ),
        )

    def examples_done(self, setup: Setup, state: _Rows):
        return tf.reduce_all(tf.reshape(state.finished, [-1, self.width]), axis=1)

    def select(self, setup: Setup, state: _Rows, examples):
        rows = example_rows(examples, self.width)
        return tf.nest.map_structure(lambda t: tf.gather(t, rows), state)

    def history(self, setup: Setup, state: _Rows):
        return state.output

    def finalize(self, setup: Setup, state: _Rows):
        shape = [setup.batch_size, self.width]
        log_probs = tf.reshape(state.log_probs, shape)
        output = tf.reshape(state.output, [*shape, setup.max_length])
        return output, log_probs, log_probs


class GreedySearch(_RowStrategy):
    """The most likely token at each step; scores are log-probabilities."""

    compacts = True

    def choose(self, step, log_probs):
        return tf.argmax(log_probs, axis=-1, output_type=tf.int32)


class Sampling(_RowStrategy):
    """Random sampling: `num_samples` outputs per source, each token drawn from the model's
    distribution scaled by `temperature`, cut to the `top_k` most likely tokens (0: all) and to
    the smallest set whose probability reaches `top_p` (1.0: all).

    Draws are stateless (Gumbel-max over `tf.random.stateless_uniform` seeded by
    `(seed, step)`): the same seed gives the same outputs on every run and in every execution
    mode; different seeds give different ones. Scores are the log-probabilities of the outputs
    under the model (after the processors, before the temperature and the cuts).

    Args:
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
        top_k: keep the `top_k` most likely tokens (0 keeps all).
        top_p: keep the most likely tokens until their probability reaches `top_p`, in (0, 1].
        seed: an int (or int32 scalar tensor).
        num_samples: outputs per source, N.

    `temperature`, `top_k` and `top_p` may also be scalar tensors (the inputs of a SavedModel
    signature): they are then checked by the caller, and both cuts always run (a cut at 0 or
    1.0 keeps every token).
    """

    def __init__(
        self,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed=0,
        num_samples: int = 1,
    ):
        if num_samples < 1:
            raise ValueError(f"`num_samples` must be >= 1. Received: num_samples={num_samples}")
        self.seed, self.width = seed, int(num_samples)
        if any(tf.is_tensor(v) for v in (temperature, top_k, top_p)):
            self.temperature = tf.cast(temperature, tf.float32)
            self.top_k, self.top_p = tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float32)
            return
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
        if top_k < 0:
            raise ValueError(f"`top_k` must be >= 0. Received: top_k={top_k}")
        if not 0 < top_p <= 1:
            raise ValueError(f"`top_p` must be in (0, 1]. Received: top_p={top_p}")
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)

    def _filtered(self, log_probs):
        logits = log_probs / self.temperature
        vocabulary = log_probs.shape[-1]
        if tf.is_tensor(self.top_k):
            k = tf.shape(logits)[-1]
            k = tf.where((self.top_k > 0) & (self.top_k < k), self.top_k, k)
            kth = tf.gather(tf.math.top_k(logits, k).values, k - 1, axis=1)[:, None]
            logits = tf.where(logits < kth, BANNED, logits)
        elif self.top_k and (vocabulary is None or self.top_k < vocabulary):
            kth = tf.math.top_k(logits, self.top_k).values[:, -1:]
            logits = tf.where(logits < kth, BANNED, logits)
        if tf.is_tensor(self.top_p) or self.top_p < 1.0:
            ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
            # The smallest set reaching top_p: a token stays if the ones before it sum below.
            before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
            kept = tf.reduce_sum(tf.cast(before < self.top_p, tf.int32), axis=-1)
            threshold = tf.gather(ordered, tf.maximum(kept, 1) - 1, batch_dims=1)[:, None]
            logits = tf.where(logits < threshold, BANNED, logits)
        return logits

    def choose(self, step, log_probs):
        seed = tf.stack([tf.cast(self.seed, tf.int32), tf.cast(step, tf.int32)])
        uniform = tf.random.stateless_uniform(
            tf.shape(log_probs), seed=seed, minval=1e-20, maxval=1.0, alg="philox"
        )
        gumbel = -tf.math.log(-tf.math.log(uniform))
        return tf.argmax(self._filtered(log_probs) + gumbel, axis=-1, output_type=tf.int32)


class _Beams(NamedTuple):
    """The loop state of `BeamSearch` (B batch, K beam, L `max_length`)."""

    alive_seq: tf.Tensor  # int32 [B, K, L]: alive hypotheses, pad after the step.
    alive_log_probs: tf.Tensor  # float32 [B, K], best first.
    finished_seq: tf.Tensor  # int32 [B, K, L]: eos included, then padding.
    finished_scores: tf.Tensor  # float32 [B, K]: length-normalized, best first.
    finished_log_probs: tf.Tensor  # float32 [B, K].
    finished_flags: tf.Tensor  # bool [B, K]: False for a slot no hypothesis filled yet.


class BeamSearch(DecodingStrategy):
    """Beam search with length normalization and n-best output.

    After tensorflow/models `official/nlp/modeling/ops/beam_search.py`: two sets of K
    hypotheses per example, the alive ones (still growing) and the finished ones (ended with
    eos, kept by length-normalized score). It stops once no alive hypothesis can beat the
    N-th best finished one, or at `max_length`. A beam of one is greedy search.

    Args:
        beam_size: K, fixed per compiled function.
        length_penalty: GNMT alpha >= 0 (a float or scalar tensor); 0 ranks by
            log-probability.
        num_results: N <= K best hypotheses returned per example, best first.
    """

    reorders = True
    compacts = True

    def __init__(self, beam_size: int, length_penalty=0.0, num_results: int = 1):
        check_num_results(num_results, beam_size)
        self.width, self.num_results = int(beam_size), int(num_results)
        self.alpha = length_penalty

    def initialize(self, setup: Setup):
        B, K, L = setup.batch_size, self.width, setup.max_length
        pad = tf.constant(setup.pad_id, tf.int32)
        return _Beams(
            alive_seq=tf.fill([B, K, L], pad),
            # Only the first beam is alive at the start, so the K beams do not repeat one path.
            alive_log_probs=tf.tile(tf.constant([[0.0] + [_NEG_INF] * (K - 1)]), [B, 1]),
            finished_seq=tf.fill([B, K, L], pad),
            finished_scores=tf.fill([B, K], _NEG_INF),
            finished_log_probs=tf.fill([B, K], _NEG_INF),
            finished_flags=tf.zeros([B, K], tf.bool),
        )

    def examples_done(self, setup: Setup, beams: _Beams):
        return self._beaten(setup, beams, beams.alive_log_probs[:, 0])  # sorted: best first

    def _beaten(self, setup: Setup, beams: _Beams, best_alive):
        """bool `[B]`: whether each example's N-th best finished hypothesis beats its best
        alive log-probability `best_alive [B]`. With alpha >= 0 an alive hypothesis can at best
        keep its log-probability and be normalized by the longest length; once the N-th best
        finished one beats that bound, the example's N best are final."""
        alpha = tf.cast(self.alpha, tf.float32)
        bound = best_alive / length_penalty(setup.max_length, alpha)
        nth = self.num_results - 1
        return beams.finished_flags[:, nth] & (beams.finished_scores[:, nth] > bound)

    def select(self, setup: Setup, beams: _Beams, examples):
        return tf.nest.map_structure(lambda t: tf.gather(t, examples), beams)

    def history(self, setup: Setup, beams: _Beams):
        return tf.reshape(beams.alive_seq, [-1, setup.max_length])

    def step(self, setup: Setup, step, log_probs, beams: _Beams):
        B, K = setup.batch_size, self.width
        vocabulary = log_probs.shape[-1] or tf.shape(log_probs)[-1]
        candidates = beams.alive_log_probs[:, :, None] + tf.reshape(log_probs, [B, K, vocabulary])
        # 2K candidates: even if K of them end with eos, K alive ones remain.
        top_log_probs, top_index = top_k_wide(tf.reshape(candidates, [B, K * vocabulary]), 2 * K)
        top_beams = top_index // vocabulary
        top_tokens = tf.cast(top_index % vocabulary, tf.int32)
        top_seq = tf.gather(beams.alive_seq, top_beams, batch_dims=1)
        columns = tf.range(setup.max_length)
        top_seq = tf.where(columns[None, None, :] == step, top_tokens[:, :, None], top_seq)
        is_eos = top_tokens == setup.eos_id

        # Alive: the best K candidates that did not end.
        alive_log_probs, alive_index = tf.math.top_k(tf.where(is_eos, _NEG_INF, top_log_probs), K)
        parents = tf.gather(top_beams, alive_index, batch_dims=1)

        # Finished: the top-K candidates that ended (not the other K, so that a beam of one is
        # greedy search) join the finished set, which keeps its best K.
        is_eos &= tf.range(2 * K)[None, :] < K
        tokens = tf.reshape(tf.gather(top_tokens, alive_index, batch_dims=1), [-1])
        new_beams = self._next_beams(
            beams, step, top_seq, top_log_probs, is_eos, alive_index, alive_log_probs
        )
        return tokens, parents, new_beams

    def _next_beams(self, beams, step, seq, log_probs, ends, alive_index, alive_log_probs):
        """The beams after a step, from M candidates (`seq [B, M, L]`, `log_probs [B, M]`):
        the alive ones at `alive_index [B, K]` (with `alive_log_probs`), and the finished set
        joined by the candidates that `ends` (scored with the length penalty), keeping its
        best K."""
        alpha = tf.cast(self.alpha, tf.float32)
        new_scores = tf.where(ends, log_probs / length_penalty(step + 1, alpha), _NEG_INF)
        all_seq = tf.concat([beams.finished_seq, seq], axis=1)
        all_scores = tf.concat([beams.finished_scores, new_scores], axis=1)
        all_log_probs = tf.concat(
            [beams.finished_log_probs, tf.where(ends, log_probs, _NEG_INF)], axis=1
        )
        all_flags = tf.concat([beams.finished_flags, ends], axis=1)
        finished_scores, keep = tf.math.top_k(all_scores, k=self.width)
        return _Beams(
            alive_seq=tf.gather(seq, alive_index, batch_dims=1),
            alive_log_probs=alive_log_probs,
            finished_seq=tf.gather(all_seq, keep, batch_dims=1),
            finished_scores=finished_scores,
            finished_log_probs=tf.gather(all_log_probs, keep, batch_dims=1),
            finished_flags=tf.gather(all_flags, keep, batch_dims=1),
        )

    def finalize(self, setup: Setup, beams: _Beams):
        # Examples with fewer than N finished hypotheses fall back on their alive ones.
        alpha = tf.cast(self.alpha, tf.float32)
        alive_scores = beams.alive_log_probs / length_penalty(setup.max_length, alpha)
        finished_scores = tf.where(beams.finished_flags, beams.finished_scores, _NEG_INF * 10)
        all_seq = tf.concat([beams.finished_seq, beams.alive_seq], axis=1)
        all_scores = tf.concat([finished_scores, alive_scores], axis=1)
        all_log_probs = tf.concat([beams.finished_log_probs, beams.alive_log_probs], axis=1)
        scores, best = tf.math.top_k(all_scores, k=self.num_results)
        return (
            tf.gather(all_seq, best, batch_dims=1),
            scores,
            tf.gather(all_log_probs, best, batch_dims=1),
        )
