import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class LSTMCell(keras.layers.Layer):
    """An LSTM cell written from the gate equations, for teaching and checking.

    With x the input, h and c the previous states and [.;.] concatenation:

        f = sigmoid(W_f [x; h] + b_f)     forget gate
        g = tanh(W_g [x; h] + b_g)        cell candidate
        i = sigmoid(W_i [x; h] + b_i)     input gate
        o = sigmoid(W_o [x; h] + b_o)     output gate
        c' = f * c + i * g
        h' = o * tanh(c')

    The weights are laid out like `keras.layers.LSTMCell`'s (`kernel [D, 4H]`,
    `recurrent_kernel [H, 4H]`, `bias [4H]`, gates in the order i, f, g, o), so they load into
    `keras.layers.LSTM` as they are and both give the same outputs. Models use the fast Keras
    layer; wrap this one in `keras.layers.RNN` to run it over a sequence.

    Args:
        units: int, H.

    Call arguments:
        inputs: `[B, D]`.
        states: `[h, c]`, each `[B, H]`.

    Returns:
        `(h', [h', c'])`.

    Example:
    ```python
    rnn = keras.layers.RNN(keras_s2s.layers.LSTMCell(32), return_sequences=True)
    outputs = rnn(np.zeros((2, 5, 8), "float32"))  # [2, 5, 32]
    ```

    References:
        Hochreiter & Schmidhuber, 1997, "Long Short-Term Memory"; Gers et al., 2000,
        "Learning to Forget".
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, inputs_shape):
        self.kernel = self.add_weight(
            shape=(inputs_shape[-1], 4 * self.units), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units), initializer="orthogonal", name="recurrent_kernel"
        )
        # Forget-gate bias starts at 1 (as Keras's unit_forget_bias).
        bias = [0.0] * self.units + [1.0] * self.units + [0.0] * (2 * self.units)
        self.bias = self.add_weight(
            shape=(4 * self.units,), initializer=keras.initializers.Constant(bias), name="bias"
        )

    def call(self, inputs, states, training=False):
        h, c = states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)
        f = ops.sigmoid(z_f)
        g = ops.tanh(z_g)
        i = ops.sigmoid(z_i)
        o = ops.sigmoid(z_o)
        c = f * c + i * g
        h = o * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config
