import keras
import numpy as np
import pytest

from keras_s2s.layers import LSTMCell, SimpleRNNCell


def sequences(batch=3, steps=7, features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype("float32")


@pytest.mark.parametrize(
    "cell, reference",
    [
        (
            lambda: LSTMCell(6),
            lambda: keras.layers.LSTM(6, return_sequences=True, return_state=True),
        ),
        (
            lambda: SimpleRNNCell(6),
            lambda: keras.layers.SimpleRNN(6, return_sequences=True, return_state=True),
        ),
    ],
)
def test_cell_equals_the_keras_layer_with_the_same_weights(cell, reference):
    x = sequences()
    ours = keras.layers.RNN(cell(), return_sequences=True, return_state=True)
    theirs = reference()
    ours_out = ours(x)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    theirs_out = theirs(x)
    assert len(ours_out) == len(theirs_out)
    for a, b in zip(ours_out, theirs_out, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_lstm_cell_gate_equations_by_hand():
    cell = LSTMCell(2)
    x = np.array([[0.5, -1.0]], "float32")
    h = np.array([[0.1, 0.2]], "float32")
    c = np.array([[0.3, -0.4]], "float32")
    out, (h2, c2) = cell(x, [h, c])
    W, U, b = (np.asarray(v) for v in cell.get_weights())
    z = x @ W + h @ U + b
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sigmoid(z[:, :2]), sigmoid(z[:, 2:4]), np.tanh(z[:, 4:6]), sigmoid(z[:, 6:])
    expected_c = f * c + i * g
    # atol too: with random weights c' = f*c + i*g can land near 0, where a float32 rounding
    # difference is a large relative error (rtol alone failed 1 run in 10).
    np.testing.assert_allclose(np.asarray(c2), expected_c, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h2), o * np.tanh(expected_c), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out), np.asarray(h2))


@pytest.mark.parametrize("cell_cls", [LSTMCell, SimpleRNNCell])
def test_cell_contract(cell_cls, tmp_path):
    cell = cell_cls(4, name="cell")
    clone = cell_cls.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    x = sequences(2, 5, 3)
    model = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.RNN(cell), keras.layers.Dense(1)]
    )
    expected = np.asarray(model(x))
    path = tmp_path / "cell.keras"
    model.save(path)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(x)), expected, rtol=1e-6)
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    assert model.jit_compile is True
    history = model.fit(x, np.ones((2, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match="units=0"):
        cell_cls(0)
