"""The decoding loop with its strategies and processors, on fake step functions whose
distributions are known."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoding import (
    BanSequences,
    BanTokens,
    BeamSearch,
    DecodingStrategy,
    GreedySearch,
    LengthRatio,
    MinLength,
    NoRepeatNgram,
    Sampling,
    decode,
    greedy_search,
)
from keras_s2s.decoding.strategies import _RowStrategy

V, BOS, EOS, PAD = 8, 2, 3, 0
# At the first step: tokens 4, 5, 6 with probabilities 0.5, 0.3, 0.2; eos after it.
FIRST = np.log([1e-12, 1e-12, 1e-12, 1e-12, 0.5, 0.3, 0.2, 1e-12]).astype("float32")


def first_then_eos(token_ids, state, step):
    rows = tf.shape(token_ids)[0]
    eos = tf.one_hot(tf.fill([rows], EOS), V, on_value=10.0, off_value=-10.0)
    logits = tf.where(step == 0, tf.tile(tf.constant(FIRST)[None], [rows, 1]), eos)
    return logits, state


def run(strategy, step_fn=first_then_eos, batch=1, max_length=3, processors=()):
    state = {"x": tf.zeros([batch, 1])}
    return decode(step_fn, state, batch, max_length, strategy, processors)


def first_tokens(result):
    return result.token_ids.numpy()[:, :, 0]


def test_sampling_follows_the_distribution_and_is_reproducible_under_a_seed():
    result = run(Sampling(seed=1, num_samples=4000))
    assert result.token_ids.shape == (1, 4000, 3)
    tokens = first_tokens(result)[0]
    frequencies = [np.mean(tokens == t) for t in (4, 5, 6)]
    np.testing.assert_allclose(frequencies, [0.5, 0.3, 0.2], atol=0.04)
    assert np.all(result.token_ids.numpy()[0, :, 1] == EOS)
    np.testing.assert_allclose(result.log_probs.numpy()[0], np.take(FIRST, tokens), atol=1e-3)
    again = run(Sampling(seed=1, num_samples=4000))
    np.testing.assert_array_equal(again.token_ids.numpy(), result.token_ids.numpy())
    other = run(Sampling(seed=2, num_samples=4000))
    assert np.mean(first_tokens(other) != first_tokens(result)) > 0.3


def test_top_k_top_p_and_temperature_cut_the_distribution():
    for strategy in (Sampling(top_k=2, num_samples=2000), Sampling(top_p=0.7, num_samples=2000)):
        assert set(first_tokens(run(strategy))[0]) == {4, 5}
    # The smallest top_p or top_k = 1 keep the most likely token: greedy.
    for strategy in (Sampling(top_k=1, num_samples=50), Sampling(top_p=0.01, num_samples=50)):
        assert set(first_tokens(run(strategy))[0]) == {4}
    cold = first_tokens(run(Sampling(temperature=0.2, seed=3, num_samples=2000)))[0]
    hot = first_tokens(run(Sampling(temperature=5.0, seed=3, num_samples=2000)))[0]
    # 0.5 ** 5 : 0.3 ** 5 : 0.2 ** 5 puts 92% on token 4; at temperature 5 it is near uniform.
    assert np.mean(cold == 4) > 0.85 and 0.25 < np.mean(hot == 4) < 0.45


def test_sampling_is_reproducible_in_each_execution_mode():
    """A graph gives the eager draws; XLA draws its own numbers, the same on every run."""
    strategy = Sampling(seed=7, num_samples=64, top_k=3)
    eager = run(strategy).token_ids.numpy()
    graph = tf.function(lambda: run(strategy))().token_ids.numpy()
    np.testing.assert_array_equal(graph, eager)
    compiled = [
        tf.function(lambda: run(strategy), jit_compile=True)().token_ids.numpy() for _ in range(2)
    ]
    np.testing.assert_array_equal(compiled[0], compiled[1])
    assert set(compiled[0][0, :, 0]) == {4, 5, 6}


def test_bad_sampling_settings_are_named():
    for kwargs, message in [
        ({"temperature": 0.0}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"num_samples": 0}, "num_samples"),
    ]:
        with pytest.raises(ValueError, match=f"`{message}` must be"):
            Sampling(**kwargs)


def repeating(token_ids, state, step):
    """Prefers 4 5 4 5 ... then eos at step 7; its second choice is token 6, then 7."""
    rows = tf.shape(token_ids)[0]
    preferred = tf.where(step >= 7, EOS, 4 + step % 2)
    logits = tf.one_hot(tf.fill([rows], preferred), V, on_value=6.0, off_value=0.0)
    logits += tf.one_hot(tf.fill([rows], 6), V, on_value=3.0, off_value=0.0)
    logits += tf.one_hot(tf.fill([rows], 7), V, on_value=2.0, off_value=0.0)
    return logits, state


def test_no_repeat_ngram_never_outputs_an_n_gram_twice():
    plain = run(GreedySearch(), repeating, max_length=10).token_ids.numpy()[0, 0]
    assert plain.tolist() == [4, 5, 4, 5, 4, 5, 4, EOS, PAD, PAD]
    for n in (1, 2, 3):
        for strategy in (GreedySearch(), BeamSearch(3)):
            ids = run(strategy, repeating, max_length=10, processors=[NoRepeatNgram(n)])
            output = ids.token_ids.numpy()[0, 0].tolist()
            output = output[: output.index(EOS)] if EOS in output else output
            grams = [tuple(output[i : i + n]) for i in range(len(output) - n + 1)]
            assert len(grams) == len(set(grams)), (n, type(strategy).__name__, output)
    two = run(GreedySearch(), repeating, max_length=10, processors=[NoRepeatNgram(2)])
    # 4 5 4, then 5 would repeat "4 5": the second choice, 6, instead.
    assert two.token_ids.numpy()[0, 0, :4].tolist() == [4, 5, 4, 6]


def test_min_length_and_banned_tokens():
    ids = run(GreedySearch(), first_then_eos, max_length=6, processors=[MinLength(4, EOS)])
    output = ids.token_ids.numpy()[0, 0].tolist()
    assert output.index(EOS) == 3  # eos is the 4th token, the first allowed
    banned = run(GreedySearch(), processors=[BanTokens([4])])
    assert first_tokens(banned)[0, 0] == 5


def test_banned_sequences_and_length_ratios():
    for strategy in (GreedySearch(), BeamSearch(2)):
        ids = run(strategy, repeating, max_length=10, processors=[BanSequences([[5, 4], [7]])])
        # 4 5, then 4 would complete "5 4": the second choice, 6; 7 is never output.
        assert ids.token_ids.numpy()[0, 0, :4].tolist() == [4, 5, 6, 5]
    state = {"x": tf.zeros([2, 1])}
    ratio = LengthRatio(EOS, min_ratio=0.5, max_ratio=1.0)
    result = decode(
        repeating, state, 2, 10, GreedySearch(), [ratio], source_lengths=tf.constant([4, 3])
    )
    # 4 and 3 source tokens: at most 4 and 3 tokens before eos (the model wants 7).
    assert [row[0].tolist().index(EOS) for row in result.token_ids.numpy()] == [4, 3]
    with pytest.raises(ValueError, match="LengthRatio read the source lengths"):
        decode(repeating, state, 2, 10, GreedySearch(), [ratio])


def test_controls_given_as_tensors_equal_the_controls_given_as_numbers():
    """A SavedModel passes the ratios, the n-gram size and the banned sequences as tensors
    (0 and no rows: off); a traced decode with them outputs what the Python settings do."""
    state, lengths = {"x": tf.zeros([2, 1])}, tf.constant([4, 3])

    @tf.function
    def traced(min_ratio, max_ratio, n, banned):
        processors = [LengthRatio(EOS, min_ratio, max_ratio), NoRepeatNgram(n)]
        processors.append(BanSequences(banned, pad_id=PAD))
        result = decode(repeating, state, 2, 10, BeamSearch(2), processors, source_lengths=lengths)
        return result.token_ids

    def plain(processors):
        return decode(
            repeating, state, 2, 10, BeamSearch(2), processors, source_lengths=lengths
        ).token_ids

    no_rows = tf.zeros([0, 1], tf.int32)
    cases = [
        ((0.0, 0.0, 0, no_rows), []),
        ((0.5, 1.0, 0, no_rows), [LengthRatio(EOS, 0.5, 1.0)]),
        ((2.0, 0.0, 0, no_rows), [LengthRatio(EOS, 2.0)]),
        ((0.0, 0.0, 2, no_rows), [NoRepeatNgram(2)]),
        ((0.0, 0.0, 1, no_rows), [NoRepeatNgram(1)]),
        ((0.0, 0.0, 0, [[5, 4], [7, PAD]]), [BanSequences([[5, 4], [7]])]),
    ]
    outputs = set()
    for (min_ratio, max_ratio, n, banned), processors in cases:
        got = traced(min_ratio, max_ratio, tf.constant(n), tf.constant(banned, tf.int32))
        np.testing.assert_array_equal(got.numpy(), plain(processors).numpy())
        outputs.add(got.numpy().tobytes())
    assert len(outputs) == len(cases)  # each control changed the output


def test_a_users_own_strategy_runs_in_the_loop_unchanged():
    class SecondBest(_RowStrategy):
        """The second most likely token at the first step, then the most likely."""

        def choose(self, step, log_probs):
            top = tf.math.top_k(log_probs, 2).indices
            return tf.where(step == 0, top[:, 1], top[:, 0])

    assert issubclass(SecondBest, DecodingStrategy)
    assert first_tokens(run(SecondBest(), batch=2)).tolist() == [[5], [5]]


def test_a_users_own_processor_runs_in_the_loop_unchanged():
    from keras_s2s.decoding import LogitsProcessor

    class EvenTokensFirst(LogitsProcessor):
        """At the first step, odd token ids are ruled out."""

        def __call__(self, logits, context):
            odd = tf.range(logits.shape[-1]) % 2 == 1
            return tf.where(odd[None, :] & (context.step == 0), -1e9, logits)

    for strategy in (GreedySearch(), BeamSearch(2), Sampling(num_samples=50)):
        tokens = first_tokens(run(strategy, processors=[EvenTokensFirst()]))
        assert set(tokens.ravel()) <= {4, 6}, type(strategy).__name__


def test_collect_needs_a_strategy_whose_rows_are_its_results():
    with pytest.raises(ValueError, match="BeamSearch reorders its rows"):
        decode(first_then_eos, {"x": tf.zeros([1, 1])}, 1, 3, BeamSearch(2), collect=lambda s: s)


def test_greedy_search_is_the_loop_with_greedy_strategy():
    ids, scores = greedy_search(first_then_eos, {"x": tf.zeros([2, 1])}, 2, 3)
    result = run(GreedySearch(), batch=2)
    np.testing.assert_array_equal(ids.numpy(), result.token_ids.numpy()[:, 0])
    np.testing.assert_array_equal(scores.numpy(), result.scores.numpy()[:, 0])


def varied_length_step(vocabulary=40, seed=0):
    """A fake model whose distribution depends on the previous token and, for eos, on how far
    the step is from the example's own `eos_step` (so examples end at different steps, and
    one whose `eos_step` is past the last step never does)."""
    rng = np.random.default_rng(seed)
    table = tf.constant(rng.normal(scale=2.0, size=(vocabulary, vocabulary)).astype("float32"))
    is_eos = tf.one_hot(EOS, vocabulary)

    def step_fn(token_ids, state, step):
        late = tf.cast(step, tf.float32) - state["eos_step"]  # [R]
        logits = tf.gather(table, token_ids) + 3.0 * late[:, None] * is_eos[None, :]
        # A growing cache (its dim 1 starts at 0) and a constant memory ride along.
        cache = tf.concat([state["cache"], tf.cast(token_ids, tf.float32)[:, None, None]], 1)
        logits += tf.reduce_mean(state["memory"], axis=1)[:, None] * 0.0
        return logits, {**state, "cache": cache}

    return step_fn


def varied_state(batch, seed=1):
    rng = np.random.default_rng(seed)
    eos_step = np.linspace(1, 16, batch).astype("float32")
    rng.shuffle(eos_step)
    return {
        "eos_step": tf.constant(eos_step),
        "cache": tf.zeros([batch, 0, 1]),
        "memory": tf.constant(rng.normal(size=(batch, 5)).astype("float32")),
    }


@pytest.mark.parametrize(
    "strategy,processors",
    [
        (GreedySearch(), ()),
        (BeamSearch(4, 0.6, num_results=2), ()),
        (BeamSearch(3), (NoRepeatNgram(2),)),
        (GreedySearch(), (LengthRatio(EOS, 0.5, 2.0),)),
    ],
    ids=["greedy", "beam-nbest-alpha", "beam-no-repeat", "greedy-length-ratio"],
)
def test_compacting_the_batch_gives_the_same_results(strategy, processors):
    batch, max_length = 9, 12
    step_fn, state = varied_length_step(), varied_state(batch)
    lengths = tf.constant(np.arange(1, batch + 1), tf.int32)

    def run_loop(compact):
        fn = tf.function(
            lambda: decode(
                step_fn,
                state,
                batch,
                max_length,
                strategy,
                processors,
                constant_state_keys=("memory",),
                source_lengths=lengths,
                compact=compact,
            )  # fmt: skip
        )
        return fn()

    whole, compacted = run_loop(False), run_loop(True)
    np.testing.assert_array_equal(compacted.token_ids.numpy(), whole.token_ids.numpy())
    np.testing.assert_allclose(compacted.scores.numpy(), whole.scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(compacted.log_probs.numpy(), whole.log_probs.numpy(), atol=1e-5)
    # The examples ended at different steps (so rows left the loop at different times), and
    # one at least ran to the last step.
    ends = (whole.token_ids.numpy()[:, 0] == EOS).argmax(axis=-1)
    ran_out = ~(whole.token_ids.numpy()[:, 0] == EOS).any(axis=-1)
    assert len(set(ends[~ran_out])) >= 3 and ran_out.any()


def test_compact_keeps_the_batch_whole_where_it_cannot_drop_rows():
    # Sampling draws from the whole batch's random numbers; a prefix is held per example.
    from keras_s2s.decoding.engine import _compactable
    from keras_s2s.decoding.processors import ForcePrefix

    assert _compactable(GreedySearch(), [BanTokens((PAD,))], None)
    assert not _compactable(Sampling(seed=1), [], None)
    assert not _compactable(GreedySearch(), [ForcePrefix(tf.constant([[4]]), PAD)], None)
    assert not _compactable(GreedySearch(), [], lambda state: state["x"])
    batch, step_fn, state = 5, varied_length_step(), varied_state(5)
    sampled = [
        decode(step_fn, state, batch, 8, Sampling(seed=3), compact=compact).token_ids.numpy()
        for compact in (False, True)
    ]
    np.testing.assert_array_equal(*sampled)
