import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoding import beam_search, greedy_search, length_penalty, strategies
from keras_s2s.decoding.strategies import top_k_wide
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
    keras.utils.set_random_seed(0)  # Keras's initializers: the same weights in any test order.
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


def test_an_exhaustive_beam_scores_at_least_greedy_without_length_penalty(model_and_source):
    # A narrow beam can prune greedy's path and end lower (a random model does so for some
    # seeds and rows), but a beam as wide as every prefix (9 ids, 3 steps: 9**2 prefixes of
    # length 2) searches exhaustively, so its best is at least greedy's by construction.
    model, source = model_and_source
    _, g_logp = greedy_search(model.decode_step, model.encode(source), 4, max_length=3)
    _, _, b_logp = beam_search(model.decode_step, model.encode(source), 4, 3, beam_size=81)
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


# === Constant state (`constant_state_keys`) ===

CONSTANT_KEYS = ("memory", "keys")


def attention_step(seed, vocabulary=V, width=4):
    """A fake attention decoder with seeded weights: its state has a varying RNN state `h`
    `[B, D]` and a constant `memory` and attention `keys` `[B, S, D]`, both of which change
    the logits. Returns `(step_fn, initial_state(batch_size))`."""
    rng = np.random.default_rng(seed)
    embedding = tf.constant(rng.normal(size=(vocabulary, width)), tf.float32)
    recurrent = tf.constant(rng.normal(size=(width, width)), tf.float32)
    output = tf.constant(rng.normal(size=(2 * width, vocabulary)) * 1.5, tf.float32)

    def step_fn(token_ids, state, step):
        h = tf.tanh(tf.gather(embedding, token_ids) + state["h"] @ recurrent)
        weights = tf.nn.softmax(tf.einsum("bsd,bd->bs", state["keys"], h))
        context = tf.einsum("bs,bsd->bd", weights, state["memory"])
        logits = tf.concat([h, context], axis=-1) @ output
        return logits, {**state, "h": h}

    def initial_state(batch_size, source_length=3):
        return {
            "h": tf.constant(rng.normal(size=(batch_size, width)), tf.float32),
            "memory": tf.constant(rng.normal(size=(batch_size, source_length, width)), tf.float32),
            "keys": tf.constant(rng.normal(size=(batch_size, source_length, width)), tf.float32),
        }

    return step_fn, initial_state


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_constant_state_keys_do_not_change_the_results(seed, jit_compile):
    step_fn, initial_state = attention_step(seed)
    state = initial_state(batch_size=3)

    @tf.function(jit_compile=jit_compile)
    def decode(keys):
        return beam_search(
            step_fn, state, 3, max_length=6, beam_size=3, length_penalty_alpha=0.6,
            num_results=2, constant_state_keys=keys,
        )  # fmt: skip

    # Tiled rows are equal within an example, so skipping their gather changes nothing.
    for expected, got in zip(decode(()), decode(CONSTANT_KEYS), strict=True):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_constant_state_is_tiled_once_and_never_gathered():
    step_fn, initial_state = attention_step(0)
    state = initial_state(batch_size=2)
    seen = []

    def recording_step(token_ids, state, step):
        seen.append((state["memory"], state["keys"]))
        logits, state = step_fn(token_ids, state, step)
        # Returned constant entries are ignored: this change must not reach the next step.
        return logits, {**state, "memory": state["memory"] + 1.0}

    # Eagerly the loop runs in Python: every step receives the very tensors tiled before it.
    beam_search(recording_step, state, 2, 5, beam_size=3, constant_state_keys=CONSTANT_KEYS)
    assert len(seen) >= 2
    memory, keys = seen[0]
    np.testing.assert_array_equal(memory.numpy(), np.repeat(state["memory"].numpy(), 3, axis=0))
    np.testing.assert_array_equal(keys.numpy(), np.repeat(state["keys"].numpy(), 3, axis=0))
    assert all(m is memory and k is keys for m, k in seen)


def loop_body_gathers(keys) -> int:
    """The GatherV2 ops in the traced beam search loop body."""
    step_fn, initial_state = attention_step(0)
    state = initial_state(batch_size=2)
    decode = tf.function(
        lambda: beam_search(step_fn, state, 2, 5, beam_size=3, constant_state_keys=keys)
    )
    graph = decode.get_concrete_function().graph
    (loop,) = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
    functions = {f.signature.name: f for f in graph.as_graph_def().library.function}
    body = functions[loop.get_attr("body").name]
    return sum(node.op == "GatherV2" for node in body.node_def)


def test_constant_state_gathers_are_gone_from_the_loop_body():
    # One gather per state tensor reordered by parent beam: two fewer with memory and keys.
    assert loop_body_gathers(()) - loop_body_gathers(CONSTANT_KEYS) == 2


def test_constant_state_keys_must_name_entries_of_a_dict_state():
    step_fn, initial_state = attention_step(0)
    state = initial_state(batch_size=1)
    with pytest.raises(ValueError, match="does not have: \\['cache'\\]"):
        beam_search(step_fn, state, 1, 3, beam_size=2, constant_state_keys=("memory", "cache"))
    with pytest.raises(ValueError, match="not a string"):
        beam_search(step_fn, state, 1, 3, beam_size=2, constant_state_keys="memory")
    with pytest.raises(ValueError, match="needs a dict state"):
        beam_search(TRAP, [tf.zeros([1, 1])], 1, 3, beam_size=2, constant_state_keys=("memory",))


def test_greedy_accepts_constant_state_keys():
    step_fn, initial_state = attention_step(3)
    state = initial_state(batch_size=3)
    collect = lambda s: s["memory"][:, 0, 0] + s["h"][:, 0]  # noqa: E731
    expected = greedy_search(step_fn, state, 3, 6, collect=collect)
    got = greedy_search(step_fn, state, 3, 6, collect=collect, constant_state_keys=CONSTANT_KEYS)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(g.numpy(), e.numpy())


def brute_force(step_fn, state, max_length, alpha):
    """Every hypothesis of one example (`state` has batch 1): `{tokens: score}`, scored as beam
    search scores them (eos-ended: log-prob / penalty(length); the others: log-prob /
    penalty(max_length))."""
    scores, frontier, tokens = {}, [((), 0.0)], [BOS]
    for step in range(max_length):
        logits, state = step_fn(tf.constant(tokens, tf.int32), state, tf.constant(step))
        logits = np.asarray(logits, "float64")
        logits[:, [PAD, BOS]] = -np.inf
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        grown, rows, tokens = [], [], []
        for row, (prefix, log_prob) in enumerate(frontier):
            for token in range(logits.shape[-1]):
                if token in (PAD, BOS):
                    continue
                hypothesis, total = prefix + (token,), log_prob + log_probs[row, token]
                if token == EOS or step + 1 == max_length:
                    length = step + 1 if token == EOS else max_length
                    scores[hypothesis] = total / float(length_penalty(length, alpha))
                else:
                    grown.append((hypothesis, total))
                    rows.append(row)
                    tokens.append(token)
        frontier, rows = grown, tf.constant(rows, tf.int32)
        state = tf.nest.map_structure(lambda t, rows=rows: tf.gather(t, rows), state)
    return scores


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_a_beam_that_keeps_every_hypothesis_finds_the_brute_force_n_best(seed, alpha):
    # Vocabulary of 6: outputs 1, eos, 4, 5. With max_length 3 there are at most 36 candidates
    # at a step (9 prefixes x 4), so a beam of 36 prunes nothing and must be exact.
    vocabulary, max_length, n, batch = 6, 3, 3, 2
    step_fn, initial_state = attention_step(seed, vocabulary=vocabulary)
    state = initial_state(batch_size=batch)
    ids, scores, _ = beam_search(
        step_fn, state, batch, max_length, beam_size=36, length_penalty_alpha=alpha,
        num_results=n, constant_state_keys=CONSTANT_KEYS,
    )  # fmt: skip
    for row in range(batch):
        row_state = tf.nest.map_structure(lambda t, row=row: t[row : row + 1], state)
        expected = brute_force(step_fn, row_state, max_length, alpha)
        best = sorted(expected.values(), reverse=True)[:n]
        np.testing.assert_allclose(scores.numpy()[row], best, atol=1e-4)
        for hypothesis, score in zip(ids.numpy()[row], scores.numpy()[row], strict=True):
            tokens = tuple(int(t) for t in hypothesis if t != PAD)
            np.testing.assert_allclose(expected[tokens], score, atol=1e-4)


@pytest.mark.parametrize("width,k", [(8000 * 4, 8), (5000, 2), (300, 8)])
def test_top_k_wide_equals_top_k(width, k):
    # Random values (no ties), banned entries at -1e9, and winners crowded into one block.
    rng = np.random.default_rng(width)
    values = rng.normal(size=(5, width)).astype("float32")
    values[0, rng.choice(width, width // 2, replace=False)] = -1e9
    values[1, 128 : 128 + k] += 50.0
    values[2, -3:] += 50.0  # The last, partly padded block.
    expected = tf.math.top_k(values, k)
    got = tf.function(top_k_wide, reduce_retracing=True)(tf.constant(values), k)
    np.testing.assert_array_equal(got[0].numpy(), expected.values.numpy())
    np.testing.assert_array_equal(got[1].numpy(), expected.indices.numpy())


def test_beam_search_over_a_wide_vocabulary_matches_one_top_k(monkeypatch):
    # V x K = 2400 x 4 takes the two-pass top k; the results equal those of one top k.
    vocabulary, rng = 2400, np.random.default_rng(0)
    logits = tf.constant(rng.normal(scale=4.0, size=(vocabulary, vocabulary)).astype("float32"))

    def step_fn(token_ids, state, step):
        return tf.gather(logits, token_ids), state

    state = {"dummy": tf.zeros([3, 1])}
    run = lambda: beam_search(step_fn, state, 3, max_length=6, beam_size=4, num_results=4)  # noqa: E731
    wide = run()
    monkeypatch.setattr(strategies, "top_k_wide", tf.math.top_k)
    plain = run()
    for a, b in zip(wide, plain, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_transformer_decodes_the_same_with_finished_examples_compacted_out(beam_size):
    # Growing self-attention caches (reordered by parent beam), constant cross-attention keys
    # and values, and examples of different lengths (random weights: some never end).
    from keras_s2s.decoding import BeamSearch, GreedySearch, decode
    from keras_s2s.models import Transformer

    keras.utils.set_random_seed(1)
    model = Transformer(14, 14, hidden_dim=16, intermediate_dim=32, num_heads=2,
                        num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)  # fmt: skip
    source = np.random.default_rng(2).integers(4, 14, size=(6, 5)).astype("int32")
    source[:, 3:] *= np.array([[0, 0]] * 3 + [[1, 1]] * 3, "int32")  # some sources are shorter
    strategy = GreedySearch() if beam_size == 1 else BeamSearch(beam_size, 0.6, 2)

    def run(compact):
        fn = tf.function(
            lambda ids: decode(
                model.decode_step,
                model.encode(ids),
                tf.shape(ids)[0],
                10,
                strategy,
                constant_state_keys=model.constant_state_keys,
                compact=compact,
            )  # fmt: skip
        )
        return fn(tf.constant(source))

    whole, compacted = run(False), run(True)
    np.testing.assert_array_equal(compacted.token_ids.numpy(), whole.token_ids.numpy())
    np.testing.assert_allclose(compacted.scores.numpy(), whole.scores.numpy(), atol=1e-4)
    ended = (whole.token_ids.numpy()[:, 0] == EOS).any(axis=-1)
    assert ended.any()
