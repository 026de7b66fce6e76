import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class SimpleRNNCell(keras.layers.Layer):
    """The plain (Elman) RNN cell: h' = tanh(x W + h U + b).

    Weights are laid out like `keras.layers.SimpleRNNCell`'s (`kernel`, `recurrent_kernel`,
    `bias`), so they load into `keras.layers.SimpleRNN` as they are.

    Args:
        units: int, H.
        recurrent_initializer: initializer of U (a large one makes gradients explode over
            long sequences, which gradient clipping contains).

    Call arguments:
        inputs: `[B, D]`.
        states: `[h]`, `[B, H]`.

    Returns:
        `(h', [h'])`.

    References:
        Elman, 1990, "Finding Structure in Time".
    """

    def __init__(self, units, recurrent_initializer="orthogonal", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        self.units = units
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.state_size = [units]
        self.output_size = units

    def build(self, inputs_shape):
        self.kernel = self.add_weight(
            shape=(inputs_shape[-1], self.units), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs, states, training=False):
        h = ops.tanh(
            ops.matmul(inputs, self.kernel)
            + ops.matmul(states[0], self.recurrent_kernel)
            + self.bias
        )
        return h, [h]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            }
        )
        return config
