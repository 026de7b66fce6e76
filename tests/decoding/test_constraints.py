"""Lexically constrained beam search (dynamic beam allocation) on a fake step function whose
preferences are known."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoding import BeamSearch, ConstrainedBeamSearch, NoRepeatNgram, decode
from tests.decoding.test_engine import EOS, PAD, repeating


def contains(output, phrase):
    return any(output[i : i + len(phrase)] == phrase for i in range(len(output)))


def outputs(result):
    rows = result.token_ids.numpy()[:, 0].tolist()
    return [row[: row.index(EOS) + 1] if EOS in row else row for row in rows]


def constrained(constraint_ids, beam_size=4, max_length=12, processors=()):
    constraint_ids = tf.convert_to_tensor(constraint_ids, tf.int32)
    batch = tf.shape(constraint_ids)[0]
    strategy = ConstrainedBeamSearch(beam_size, constraint_ids)
    return decode(repeating, {"x": tf.zeros([batch, 1])}, batch, max_length, strategy, processors)


def test_every_phrase_appears_and_an_example_without_phrases_is_plain_beam_search():
    # `repeating` prefers 4 5 4 5 4 5 4 eos; 6 and 7 are its second and third choices.
    phrases = [[[7, 6], [PAD, PAD]], [[6, PAD], [7, PAD]], [[PAD, PAD], [PAD, PAD]]]
    result = constrained(phrases)
    first, second, free = outputs(result)
    assert contains(first, [7, 6]), first
    assert 6 in second and 7 in second, second
    assert first[-1] == EOS and second[-1] == EOS
    plain = decode(repeating, {"x": tf.zeros([1, 1])}, 1, 12, BeamSearch(4))
    assert free == outputs(plain)[0]
    # Scores are the outputs' log-probabilities under the model: lower with the phrases.
    log_probs = result.log_probs.numpy()[:, 0]
    assert log_probs[0] < log_probs[2] and log_probs[1] < log_probs[2]
    np.testing.assert_allclose(log_probs[2], plain.log_probs.numpy()[0, 0], rtol=1e-6)


def test_a_multi_token_phrase_is_written_whole_and_processors_still_apply():
    result = constrained([[[6, 7, 6]]], processors=[NoRepeatNgram(3)])
    (output,) = outputs(result)
    assert contains(output, [6, 7, 6]) and output[-1] == EOS, output
    grams = [tuple(output[i : i + 3]) for i in range(len(output) - 2)]
    assert len(grams) == len(set(grams))


def test_a_phrase_that_cannot_fit_falls_back_on_the_best_alive_hypothesis():
    # Four tokens cannot fit in three steps: no hypothesis finishes, none ends with eos.
    (output,) = outputs(constrained([[[6, 7, 6, 7]]], max_length=3))
    assert EOS not in output and len(output) == 3


def test_constrained_beam_search_runs_in_a_tf_function():
    fn = tf.function(lambda ids: constrained(ids).token_ids, reduce_retracing=True)
    for ids in ([[[7, PAD]]], [[[6, 7, 6]], [[7, 7, 7]]]):
        rows = fn(tf.constant(ids)).numpy()[:, 0].tolist()
        for row, phrases in zip(rows, ids, strict=True):
            assert contains(row, [t for t in phrases[0] if t != PAD]), row
    with pytest.raises(ValueError, match="num_results"):
        ConstrainedBeamSearch(2, [[[4]]], num_results=3)
