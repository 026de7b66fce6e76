import math

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoding import beam_search, greedy_search, length_penalty
from keras_s2s.models import Seq2Seq

V, PAD, BOS, EOS = 8, 0, 2, 3
A, B, X, Y = 4, 5, 6, 7


def table_step(table):
    """A fake model whose next-token distribution depends only on the previous token."""
    logits = np.full((V, V), math.log(1e-6), "float32")
    for prev, probs in table.items():
        for token, p in probs.items():
            logits[prev, token] = math.log(p)
    logits = tf.constant(logits)

    def step_fn(token_ids, state, step):
        return tf.gather(logits, token_ids), state

    return step_fn


TRAP = table_step(
    {
        BOS: {A: 0.6, B: 0.4},
        A: {X: 0.35, Y: 0.35, EOS: 0.3},
        X: {EOS: 1.0},
        Y: {EOS: 1.0},
        B: {EOS: 0.95, X: 0.05},
    }
)


def test_beam_finds_the_sequence_greedy_misses():
    state = {"dummy": tf.zeros([2, 1])}
    greedy, greedy_logp = greedy_search(TRAP, state, batch_size=2, max_length=4)
    assert greedy.numpy()[0].tolist() == [A, X, EOS, PAD]
    ids, scores, log_probs = beam_search(TRAP, state, 2, max_length=4, beam_size=2)
    assert ids.shape == (2, 1, 4)
    assert ids.numpy()[:, 0].tolist() == [[B, EOS, PAD, PAD]] * 2
    np.testing.assert_allclose(log_probs.numpy()[:, 0], math.log(0.4 * 0.95), atol=1e-4)
    assert np.all(log_probs.numpy()[:, 0] > greedy_logp.numpy())


def test_nbest_is_sorted_and_length_normalized():
    state = {"dummy": tf.zeros([1, 1])}
    ids, scores, log_probs = beam_search(
        TRAP, state, 1, max_length=4, beam_size=4, length_penalty_alpha=1.0, num_results=3
    )
    hyps = ids.numpy()[0].tolist()
    assert hyps[0] == [B, EOS, PAD, PAD]
    assert sorted(map(tuple, hyps[1:])) == [(A, X, EOS, PAD), (A, Y, EOS, PAD)]
    s = scores.numpy()[0]
    assert np.all(np.diff(s) <= 1e-6)
    lengths = [h.index(EOS) + 1 for h in hyps]
    expected = log_probs.numpy()[0] / length_penalty(np.array(lengths), 1.0).numpy()
    np.testing.assert_allclose(s, expected, rtol=1e-5)


def test_num_results_must_fit_the_beam():
    with pytest.raises(ValueError, match="num_results=3"):
        beam_search(TRAP, {}, 1, max_length=3, beam_size=2, num_results=3)


@pytest.fixture(scope="module")
def model_and_source():
    tf.random.set_seed(0)
    model = Seq2Seq(12, 9, embedding_dim=8, hidden_dim=16, reverse_source=True)
    source = np.array([[5, 6, 7, 0], [4, 9, 8, 11], [3, 0, 0, 0], [10, 10, 4, 4]], "int32")
    return model, source


def test_beam_of_one_is_greedy(model_and_source):
    model, source = model_and_source
    g_ids, g_logp = greedy_search(model.decode_step, model.encode(source), 4, max_length=7)
    b_ids, _, b_logp = beam_search(model.decode_step, model.encode(source), 4, 7, beam_size=1)
    np.testing.assert_array_equal(b_ids.numpy()[:, 0], g_ids.numpy())
    np.testing.assert_allclose(b_logp.numpy()[:, 0], g_logp.numpy(), rtol=1e-5, atol=1e-5)


def teacher_forced_log_prob(model, source_row, hypothesis):
    tokens = list(hypothesis[: hypothesis.index(EOS) + 1]) if EOS in hypothesis else hypothesis
    tokens = [t for t in tokens if t != PAD]
    logits = model(
        {
            "encoder_token_ids": source_row[None],
            "decoder_token_ids": np.array([[BOS] + tokens[:-1]], "int32"),
        }
    )
    logits = np.asarray(logits)[0].astype("float64")
    logits[:, [PAD, BOS]] = -1e9
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    return sum(log_probs[i, t] for i, t in enumerate(tokens)), len(tokens)


def test_nbest_scores_equal_teacher_forced_rescoring(model_and_source):
    model, source = model_and_source

    @tf.function(jit_compile=True)
    def decode(source, alpha):
        return beam_search(
            model.decode_step, model.encode(source), tf.shape(source)[0], 6,
            beam_size=4, length_penalty_alpha=alpha, num_results=3,
        )  # fmt: skip

    ids, scores, log_probs = decode(source, tf.constant(0.6))
    for row in range(len(source)):
        for n in range(3):
            hyp = ids.numpy()[row, n].tolist()
            expected, length = teacher_forced_log_prob(model, source[row], hyp)
            np.testing.assert_allclose(log_probs.numpy()[row, n], expected, atol=1e-4)
            if EOS in hyp:
                np.testing.assert_allclose(
                    scores.numpy()[row, n],
                    expected / float(length_penalty(length, 0.6)),
                    atol=1e-4,
                )


def test_beam_log_prob_is_at_least_greedy_without_length_penalty(model_and_source):
    model, source = model_and_source
    _, g_logp = greedy_search(model.decode_step, model.encode(source), 4, max_length=7)
    _, _, b_logp = beam_search(model.decode_step, model.encode(source), 4, 7, beam_size=4)
    assert np.all(b_logp.numpy()[:, 0] >= g_logp.numpy() - 1e-5)


def test_dict_cache_state_passes_through_beam_search_under_xla():
    B, L, T, D = 2, 2, 5, 4

    def step_fn(token_ids, state, step):
        cache = state["cache"]
        update = tf.ones_like(cache[:, :, :1]) * tf.cast(token_ids, tf.float32)[:, None, None, None]
        cache = tf.where(tf.range(T)[None, None, :, None] == step, update, cache)
        # Prefer the token equal to (sum of cached values) mod 4 + 4: depends on the cache.
        preferred = tf.cast(tf.reduce_sum(cache, axis=[1, 2, 3]), tf.int32) % 4 + 4
        logits = tf.one_hot(preferred, V) * 4.0
        return logits, {"cache": cache, "index": state["index"] + 1}

    @tf.function(jit_compile=True)
    def decode():
        state = {"cache": tf.zeros([B, L, T, D]), "index": tf.zeros([B], tf.int32)}
        return beam_search(step_fn, state, B, max_length=T, beam_size=3)

    ids, scores, _ = decode()
    greedy, _ = greedy_search(
        step_fn, {"cache": tf.zeros([B, L, T, D]), "index": tf.zeros([B], tf.int32)}, B, T
    )
    np.testing.assert_array_equal(ids.numpy()[:, 0], greedy.numpy())
    assert np.all(np.isfinite(scores.numpy()))
