"""Global-norm clipping keeps a tanh RNN trainable where its gradients explode."""

import keras
import numpy as np
import tensorflow as tf

from keras_s2s.layers import SimpleRNNCell

T, STEPS = 100, 200


def train_tanh_rnn(global_clipnorm):
    """SGD on 100-step sequences with a tanh RNN whose recurrent matrix has gain 1.5."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, T, 1)).astype("float32")
    y = (x[:, -3:, 0].sum(axis=1, keepdims=True) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((T, 1)),
            keras.layers.RNN(SimpleRNNCell(32, keras.initializers.Orthogonal(gain=1.5))),
            keras.layers.Dense(1),
        ]
    )
    optimizer = keras.optimizers.SGD(0.1, global_clipnorm=global_clipnorm)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss, tf.linalg.global_norm(gradients)

    history = np.array([[float(v) for v in step()] for _ in range(STEPS)])
    return history[:, 0], history[:, 1]


def biggest_setback(losses):
    """The largest rise of the loss above the best value reached before it."""
    return float(np.max(losses[1:] - np.minimum.accumulate(losses)[:-1]))


def test_clipping_contains_exploding_gradients():
    losses, norms = train_tanh_rnn(global_clipnorm=None)
    # Unclipped: the gradient norm swings over orders of magnitude, and a spike undoes training.
    assert norms[10:].max() / norms[10:].min() > 100
    assert biggest_setback(losses) > 0.3

    clipped_losses, _ = train_tanh_rnn(global_clipnorm=1.0)
    assert np.all(np.isfinite(clipped_losses))
    assert clipped_losses[-1] < 0.6 * clipped_losses[0]  # it learns
    assert biggest_setback(clipped_losses) < 0.5 * biggest_setback(losses)
