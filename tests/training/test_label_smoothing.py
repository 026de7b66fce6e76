"""Label smoothing in the masked loss, checked against what holds by construction: the closed
form of the loss, its minimum at the smoothed target, eps = 0 being the plain loss, padding
columns changing nothing, and float32 arithmetic under float16 logits."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.training import MaskedSparseCategoricalCrossentropy

V = 7


def batch(seed, width=5, padded_from=(5, 3, 1)):
    """Labels [3, width] (real tokens 1..V-1, padding 0 after `padded_from[i]`) and logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, V, size=(3, width)).astype("int32")
    for row, length in enumerate(padded_from):
        labels[row, length:] = 0
    logits = rng.normal(scale=3.0, size=(3, width, V)).astype("float32")
    return labels, logits


def reference(labels, logits, eps):
    """The smoothed cross-entropy in float64 numpy, averaged over real tokens."""
    logits = logits.astype("float64")
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    target = (1 - eps) * np.eye(V)[labels] + eps / V
    per_token = -(target * log_probs).sum(-1)
    mask = labels != 0
    return per_token[mask].mean()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_loss_equals_the_smoothed_cross_entropy_over_real_tokens(eps):
    labels, logits = batch(0)
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=eps)(labels, logits)
    np.testing.assert_allclose(float(loss), reference(labels, logits, eps), rtol=1e-5)


@pytest.mark.parametrize("eps", [0.1, 0.3])
@pytest.mark.parametrize("c", [0.0, 2.0, 9.0])
def test_one_hot_logits_give_the_closed_form(eps, c):
    """Logits c * one_hot(label): log Z = log(e^c + V - 1), and the loss is
    (1 - eps) (log Z - c) + eps (log Z - c / V) = log Z - c (1 - eps + eps / V)."""
    labels = np.array([[1, 4, 6, 0]], "int32")
    logits = c * np.eye(V, dtype="float32")[labels]
    expected = np.log(np.exp(c) + V - 1) - c * (1 - eps + eps / V)
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=eps)(labels, logits)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.1, 0.4])
def test_the_minimum_is_the_entropy_of_the_smoothed_target(eps):
    """Predicting exactly the smoothed target q (logits log q) gives the loss H(q) and a zero
    gradient: softmax(logits) - q = 0."""
    labels = np.array([[3, 5, 0, 0], [2, 2, 6, 0]], "int32")
    q = (1 - eps) * np.eye(V)[labels] + eps / V
    logits = tf.Variable(np.log(q).astype("float32"))
    loss_fn = MaskedSparseCategoricalCrossentropy(label_smoothing=eps)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, logits)
    peak = 1 - eps + eps / V
    entropy = -peak * np.log(peak) - (V - 1) * (eps / V) * np.log(eps / V)
    np.testing.assert_allclose(float(loss), entropy, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(), 0.0, atol=1e-7)


def test_no_smoothing_is_the_plain_masked_loss():
    labels, logits = batch(1)
    per_token = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    mask = labels != 0
    plain = np.asarray(per_token)[mask].mean()
    for loss_fn in (
        MaskedSparseCategoricalCrossentropy(),
        MaskedSparseCategoricalCrossentropy(label_smoothing=0.0),
    ):
        assert float(loss_fn(labels, logits)) == pytest.approx(plain, rel=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_padding_columns_change_neither_loss_nor_gradient(eps):
    labels, logits = batch(2)
    extra = np.random.default_rng(3).normal(scale=5.0, size=(3, 4, V)).astype("float32")
    padded_labels = np.concatenate([labels, np.zeros((3, 4), "int32")], axis=1)
    loss_fn = MaskedSparseCategoricalCrossentropy(label_smoothing=eps)
    results = []
    for y, x in ((labels, logits), (padded_labels, np.concatenate([logits, extra], axis=1))):
        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, variable)
        results.append((float(loss), tape.gradient(loss, variable).numpy()))
    (loss, grad), (padded_loss, padded_grad) = results
    assert padded_loss == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(padded_grad[:, :5], grad, rtol=1e-5, atol=1e-8)
    assert np.all(padded_grad[:, 5:] == 0.0)  # padding positions get weight exactly 0


def test_float16_logits_are_computed_in_float32():
    """Logits around 30 (+-90): their exp overflows float16 (max 65504), yet the loss is float32
    arithmetic on the same (float16-rounded) values."""
    labels, logits = batch(4)
    logits16 = (logits * 10 + 30).astype("float16")
    loss_fn = MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)
    loss = loss_fn(labels, logits16)
    assert loss.dtype == "float32"
    expected = reference(labels, logits16.astype("float32"), 0.1)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_probabilities_give_the_same_loss_as_their_logits():
    labels, logits = batch(5)
    probs = np.asarray(keras.ops.softmax(logits, axis=-1))
    from_probs = MaskedSparseCategoricalCrossentropy(from_logits=False, label_smoothing=0.2)
    from_logits = MaskedSparseCategoricalCrossentropy(label_smoothing=0.2)
    np.testing.assert_allclose(
        float(from_probs(labels, probs)), float(from_logits(labels, logits)), rtol=1e-5
    )


def test_config_round_trip_and_bad_values():
    loss_fn = MaskedSparseCategoricalCrossentropy(pad_id=1, label_smoothing=0.1)
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert type(restored) is MaskedSparseCategoricalCrossentropy
    assert (restored.pad_id, restored.label_smoothing) == (1, 0.1)
    labels, logits = batch(6)
    labels[labels == 1] = 2  # pad_id 1: keep the real tokens real
    assert float(restored(labels, logits)) == float(loss_fn(labels, logits))
    for eps in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"label_smoothing={eps}"):
            MaskedSparseCategoricalCrossentropy(label_smoothing=eps)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_fused_gradient_equals_the_closed_form(eps, jit_compile):
    """The loss's own gradient is softmax - smoothed target on real tokens (divided by their
    count) and 0 on padding, with and without XLA."""
    labels, logits = batch(2)
    loss_fn = MaskedSparseCategoricalCrossentropy(label_smoothing=eps)

    @tf.function(jit_compile=jit_compile)
    def loss_and_gradient(logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = loss_fn(labels, logits)
        return loss, tape.gradient(loss, logits)

    loss, gradient = loss_and_gradient(tf.constant(logits))
    real = labels != 0
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    target = (1 - eps) * np.eye(V)[labels] + eps / V
    want = np.where(real[..., None], softmax - target, 0.0) / real.sum()
    np.testing.assert_allclose(float(loss), reference(labels, logits, eps), rtol=1e-5)
    np.testing.assert_allclose(gradient.numpy(), want, atol=1e-6)
