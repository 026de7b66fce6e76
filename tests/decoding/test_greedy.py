import numpy as np
import tensorflow as tf

from keras_s2s.decoding import greedy_search
from keras_s2s.models import Seq2Seq

V, BOS, EOS, PAD = 8, 2, 3, 0


def scripted_step(script):
    """A fake step function that emits `script[row][step]` (then eos) whatever it is fed."""
    script = tf.constant(script, tf.int32)

    def step_fn(token_ids, state, step):
        column = tf.minimum(step, tf.shape(script)[1] - 1)
        wanted = script[:, column]
        logits = tf.one_hot(wanted, V, on_value=5.0, off_value=0.0)
        return logits, {**state, "seen": state["seen"] + tf.cast(token_ids, tf.float32)[:, None]}

    return step_fn


def test_greedy_follows_the_argmax_and_pads_after_eos():
    step_fn = scripted_step([[4, 5, EOS, 6, 6], [6, EOS, 7, 7, 7]])
    state = {"seen": tf.zeros([2, 1])}
    ids, scores = greedy_search(step_fn, state, batch_size=2, max_length=5)
    np.testing.assert_array_equal(ids.numpy(), [[4, 5, EOS, PAD, PAD], [6, EOS, PAD, PAD, PAD]])
    # pad and bos are banned, so the softmax runs over the other V - 2 tokens.
    step_logp = float(tf.nn.log_softmax(tf.one_hot(0, V - 2, on_value=5.0))[0])
    np.testing.assert_allclose(scores.numpy(), [3 * step_logp, 2 * step_logp], rtol=1e-6)


def test_greedy_never_emits_pad_or_bos():
    def step_fn(token_ids, state, step):
        logits = tf.tile(tf.constant([[9.0, 0.0, 9.0, 1.0, 0.0, 0.0, 0.0, 0.0]]), [2, 1])
        return logits, state

    ids, _ = greedy_search(step_fn, {"x": tf.zeros([2])}, batch_size=2, max_length=4)
    np.testing.assert_array_equal(ids.numpy()[:, 0], [EOS, EOS])


def test_transformer_like_dict_cache_passes_through_under_xla():
    # A state shaped like a Transformer's fixed-size cache: [B, L, T, D] plus a step index,
    # updated in place at `step` (never grown).
    B, L, T, D = 3, 2, 6, 4

    def step_fn(token_ids, state, step):
        cache = state["cache"]
        update = tf.ones([B, L, 1, D]) * tf.cast(token_ids, tf.float32)[:, None, None, None]
        positions = tf.range(T)[None, None, :, None]
        cache = tf.where(positions == step, update, cache)
        logits = tf.one_hot(tf.fill([B], 4 + step % 2), V) * 3.0
        return logits, {"cache": cache, "index": state["index"] + 1}

    @tf.function(jit_compile=True)
    def decode():
        state = {"cache": tf.zeros([B, L, T, D]), "index": tf.constant(0)}
        return greedy_search(step_fn, state, batch_size=B, max_length=T)

    ids, scores = decode()
    np.testing.assert_array_equal(ids.numpy(), [[4, 5, 4, 5, 4, 5]] * B)
    assert np.all(np.isfinite(scores.numpy()))


def test_model_greedy_equals_step_by_step_argmax_under_xla():
    model = Seq2Seq(12, 10, embedding_dim=8, hidden_dim=16, reverse_source=True)
    source = np.array([[5, 6, 7, 0], [4, 9, 8, 11]], "int32")

    @tf.function(jit_compile=True)
    def decode(source):
        return greedy_search(model.decode_step, model.encode(source), tf.shape(source)[0], 6)

    ids, _ = decode(source)
    # Reference: a Python loop that teacher-forces the model's own argmax outputs.
    expected = []
    for row in range(2):
        tokens = [BOS]
        for _ in range(6):
            logits = np.asarray(
                model(
                    {
                        "encoder_token_ids": source[row : row + 1],
                        "decoder_token_ids": np.array([tokens], "int32"),
                    }
                )
            )[0, -1].copy()
            logits[[PAD, BOS]] = -np.inf
            tokens.append(int(np.argmax(logits)))
            if tokens[-1] == EOS:
                break
        expected.append(tokens[1:] + [PAD] * (7 - len(tokens)))
    np.testing.assert_array_equal(ids.numpy(), expected)
