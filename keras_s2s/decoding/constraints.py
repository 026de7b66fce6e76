"""Lexically constrained beam search: phrases every output must contain (terminology).

Dynamic beam allocation (Post & Vilar, 2018, "Fast Lexically Constrained Decoding with
Dynamic Beam Allocation for Neural Machine Translation"), in fixed shapes after fairseq's
vectorized version (Hu et al., 2019). Each hypothesis tracks which phrases it has output and
how far into the phrase it is now writing; at each step the candidates are

- the 2K best continuations over the whole beam (as in plain beam search),
- for each hypothesis, the next token of the phrase it is writing and the first token of
  each phrase it has not output yet,
- each hypothesis's single best next token,

and the K new hypotheses are shared between *banks*, one per number of constraint tokens
met: the best of each bank first (the bank with the most tokens met first), then the second
best of each, and so on, so that hypotheses that have output more of the phrases keep a place
in the beam beside the better-scoring ones that have not. eos is banned until every phrase
is out, so every finished hypothesis satisfies its constraints; an example none of whose
hypotheses finishes within `max_length` falls back on its best alive one, which may not.

A phrase is a token sequence (a multi-piece SentencePiece phrase is several tokens); it is met
when its tokens appear consecutively. A phrase that began but was broken off by another token
counts as not started.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from keras_s2s.decoding.engine import Setup
from keras_s2s.decoding.strategies import (
    _NEG_INF,
    BeamSearch,
    _Beams,
    top_k_wide,
)


class _Constrained(NamedTuple):
    """The loop state of `ConstrainedBeamSearch` (C phrases per example)."""

    beams: _Beams
    met: tf.Tensor  # bool [B, K, C]: the phrase is out (a missing phrase counts as met).
    phrase: tf.Tensor  # int32 [B, K]: the phrase being written, -1 for none.
    matched: tf.Tensor  # int32 [B, K]: its tokens out so far (0 when none).


def _ranks(values, group, valid):
    """Each entry's rank by `values` (descending, ties by index) among the valid entries of
    its `group` (`[B, M]` each): int32 `[B, M]`."""
    m = tf.shape(values)[1]
    index = tf.range(m)
    better = (values[:, None, :] > values[:, :, None]) | (
        (values[:, None, :] == values[:, :, None]) & (index[None, None, :] < index[None, :, None])
    )
    same = (group[:, None, :] == group[:, :, None]) & valid[:, None, :]
    return tf.reduce_sum(tf.cast(better & same, tf.int32), axis=-1)


class ConstrainedBeamSearch(BeamSearch):
    """Beam search whose outputs contain every phrase of their example (see the module).

    Args:
        beam_size: K. The more phrases, the larger K should be: the beam is shared between
            the banks of 0 .. (tokens of all phrases) tokens met.
        constraint_ids: int32 `[B, C, P]`: C phrases per example, each right-padded with the
            pad id to P tokens; an all-padding phrase is none.
        length_penalty: GNMT alpha, as for `BeamSearch`.
        num_results: N <= K best hypotheses per example.
    """

    # Its constraint ids are per example, closed over: the batch stays whole.
    compacts = False

    def __init__(self, beam_size: int, constraint_ids, length_penalty=0.0, num_results=1):
        super().__init__(beam_size, length_penalty, num_results)
        self.constraint_ids = tf.convert_to_tensor(constraint_ids, tf.int32)

    def _lengths(self, setup: Setup):
        return tf.reduce_sum(tf.cast(self.constraint_ids != setup.pad_id, tf.int32), axis=-1)

    def initialize(self, setup: Setup):
        K = self.width
        missing = self._lengths(setup) == 0  # [B, C]
        return _Constrained(
            beams=super().initialize(setup),
            met=tf.tile(missing[:, None, :], [1, K, 1]),
            phrase=tf.fill([setup.batch_size, K], -1),
            matched=tf.zeros([setup.batch_size, K], tf.int32),
        )

    def history(self, setup: Setup, state: _Constrained):
        return super().history(setup, state.beams)

    def examples_done(self, setup: Setup, state: _Constrained):
        # Alive hypotheses are not sorted by score here (banks): bound by the best of them.
        best_alive = tf.reduce_max(state.beams.alive_log_probs, axis=1)
        return self._beaten(setup, state.beams, best_alive)

    def finalize(self, setup: Setup, state: _Constrained):
        # An example with no finished hypothesis falls back on its alive ones: those that
        # have every phrase out first.
        beams = state.beams
        unmet = ~tf.reduce_all(state.met, axis=-1)
        ranked = beams.alive_log_probs + tf.where(unmet, _NEG_INF / 10, 0.0)
        return super().finalize(setup, beams._replace(alive_log_probs=ranked))

    def _next_token(self, phrase, matched):
        """The next token of the phrase each hypothesis writes (`phrase`, `matched` `[B, M]`;
        meaningless where `phrase` is -1)."""
        phrases = self.constraint_ids
        current_ids = tf.gather(phrases, tf.maximum(phrase, 0), batch_dims=1)  # [B, M, P]
        return tf.gather(current_ids, tf.minimum(matched, tf.shape(phrases)[2] - 1), batch_dims=2)

    def _advance(self, setup, lengths, met, phrase, matched, tokens):
        """The constraint state after `tokens` (`[B, M]`, with their parents' `met [B, M, C]`,
        `phrase`, `matched [B, M]`): `(met, phrase, matched, tokens met [B, M])`."""
        phrases = self.constraint_ids  # [B, C, P]
        num_phrases = tf.shape(phrases)[1]
        writing = phrase >= 0
        current = tf.maximum(phrase, 0)
        next_token = self._next_token(phrase, matched)
        current_length = tf.gather(lengths, current, batch_dims=1)
        goes_on = writing & (tokens == next_token)
        completes = goes_on & (matched + 1 == current_length)
        # Otherwise the token may begin a phrase not yet out (the first such phrase).
        first_ids = phrases[:, :, 0]  # [B, C]
        begins = ~met & (tokens[:, :, None] == first_ids[:, None, :])  # [B, M, C]
        begun = tf.argmax(tf.cast(begins, tf.int32), axis=-1, output_type=tf.int32)
        starts = ~goes_on & tf.reduce_any(begins, axis=-1)
        begun_length = tf.gather(lengths, begun, batch_dims=1)
        starts_and_ends = starts & (begun_length == 1)
        done_phrase = tf.where(completes, current, begun)
        newly_met = (completes | starts_and_ends)[:, :, None] & (
            tf.range(num_phrases)[None, None, :] == done_phrase[:, :, None]
        )
        met = met | newly_met
        phrase = tf.where(goes_on & ~completes, current, tf.where(starts, begun, -1))
        phrase = tf.where(starts_and_ends, -1, phrase)
        matched = tf.where(
            goes_on & ~completes, matched + 1, tf.where(starts & ~starts_and_ends, 1, 0)
        )
        out = tf.reduce_sum(tf.where(met, lengths[:, None, :], 0), axis=-1) + matched
        return met, phrase, matched, out

    def step(self, setup: Setup, step, log_probs, state: _Constrained):
        B, K = setup.batch_size, self.width
        beams, phrases = state.beams, self.constraint_ids
        lengths = self._lengths(setup)  # [B, C]
        total = tf.reduce_sum(lengths, axis=-1)  # [B]
        vocabulary = log_probs.shape[-1] or tf.shape(log_probs)[-1]
        log_probs = tf.reshape(log_probs, [B, K, vocabulary])
        # eos only once every phrase is out.
        all_met = tf.reduce_all(state.met, axis=-1)  # [B, K]
        is_eos_column = tf.range(vocabulary) == setup.eos_id
        log_probs = tf.where(
            ~all_met[:, :, None] & is_eos_column[None, None, :], _NEG_INF, log_probs
        )
        scores = beams.alive_log_probs[:, :, None] + log_probs  # [B, K, V]
        flat = tf.reshape(scores, [B, K * vocabulary])

        # Candidates (beam, token): the 2K best overall, each hypothesis's next phrase tokens
        # (the one it is writing, the first of each phrase not out), its best token.
        _, top_index = top_k_wide(flat, 2 * K)
        writing_next = self._next_token(state.phrase, state.matched)  # [B, K]
        writing_next = tf.where(state.phrase >= 0, writing_next, setup.pad_id)
        firsts = tf.where(state.met, setup.pad_id, tf.expand_dims(phrases[:, :, 0], 1))  # [B, K, C]
        phrase_tokens = tf.concat([writing_next[:, :, None], firsts], axis=-1)
        per_beam = tf.shape(phrase_tokens)[2]
        phrase_beams = tf.tile(tf.range(K)[None, :, None], [B, 1, per_beam])
        best_tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)  # [B, K]
        beam_ids = tf.concat(
            [
                top_index // vocabulary,
                tf.reshape(phrase_beams, [B, -1]),
                tf.tile(tf.range(K)[None, :], [B, 1]),
            ],
            axis=1,
        )
        tokens = tf.concat(
            [
                tf.cast(top_index % vocabulary, tf.int32),
                tf.reshape(phrase_tokens, [B, -1]),
                best_tokens,
            ],
            axis=1,
        )
        candidate_scores = tf.gather(flat, beam_ids * vocabulary + tokens, batch_dims=1)
        m = tf.shape(tokens)[1]
        earlier = tf.range(m)[None, None, :] < tf.range(m)[None, :, None]
        repeated = tf.reduce_any(
            (beam_ids[:, None, :] == beam_ids[:, :, None])
            & (tokens[:, None, :] == tokens[:, :, None])
            & earlier,
            axis=-1,
        )
        valid = (tokens != setup.pad_id) & ~repeated & (candidate_scores > _NEG_INF / 2)

        met, phrase, matched, out = self._advance(
            setup,
            lengths,
            tf.gather(state.met, beam_ids, batch_dims=1),
            tf.gather(state.phrase, beam_ids, batch_dims=1),
            tf.gather(state.matched, beam_ids, batch_dims=1),
            tokens,
        )
        is_eos = tokens == setup.eos_id
        columns = tf.range(setup.max_length)
        candidate_seq = tf.gather(beams.alive_seq, beam_ids, batch_dims=1)
        candidate_seq = tf.where(columns[None, None, :] == step, tokens[:, :, None], candidate_seq)

        # Alive: the best of each bank (most tokens met first), then the second best, ...
        growing = valid & ~is_eos
        rank = _ranks(candidate_scores, out, growing)
        key = rank * (total[:, None] + 1) + (total[:, None] - out)
        key = tf.where(growing, key, tf.int32.max)
        _, alive_index = tf.math.top_k(-key, K)
        chosen_ok = tf.gather(growing, alive_index, batch_dims=1)
        alive_log_probs = tf.where(
            chosen_ok, tf.gather(candidate_scores, alive_index, batch_dims=1), _NEG_INF
        )
        parents = tf.gather(beam_ids, alive_index, batch_dims=1)

        # Finished: every valid eos candidate (its phrases are all out) joins the finished set.
        new_beams = self._next_beams(
            beams, step, candidate_seq, candidate_scores, valid & is_eos, alive_index,
            alive_log_probs,
        )  # fmt: skip
        new_state = _Constrained(
            beams=new_beams,
            met=tf.gather(met, alive_index, batch_dims=1),
            phrase=tf.gather(phrase, alive_index, batch_dims=1),
            matched=tf.gather(matched, alive_index, batch_dims=1),
        )
        # The candidates' count is dynamic (phrases per example): restore the static shapes.
        for new, old in zip(tf.nest.flatten(new_state), tf.nest.flatten(state), strict=True):
            new.set_shape(old.shape)
        parents.set_shape(state.phrase.shape)
        tokens = tf.reshape(tf.gather(tokens, alive_index, batch_dims=1), [-1])
        return tokens, parents, new_state
