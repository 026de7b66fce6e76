import keras


@keras.saving.register_keras_serializable(package="keras_s2s")
class PositionwiseFeedForward(keras.layers.Layer):
    """The position-wise feed-forward network of a Transformer layer.

    `FFN(x) = act(x W_1 + b_1) W_2 + b_2`, applied to every position alike.

    Shape letters: B batch, T length, D width, F `intermediate_dim`.

    Args:
        intermediate_dim: int, F, the width of the hidden layer.
        activation: activation of the hidden layer.
        kernel_initializer: initializer of both kernels.
        bias_initializer: initializer of both biases.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, T, D]`.

    Returns:
        `[B, T, D]`.

    Example:
    ```python
    ffn = keras_s2s.models.transformer.PositionwiseFeedForward(intermediate_dim=64)
    y = ffn(np.ones((2, 5, 16), "float32"))  # [2, 5, 16]
    ```

    References:
        Vaswani et al., 2017, "Attention Is All You Need", section 3.3.
    """

    def __init__(
        self,
        intermediate_dim,
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(intermediate_dim, int) or intermediate_dim < 1:
            raise ValueError(
                "`intermediate_dim` must be a positive integer. "
                f"Received: intermediate_dim={intermediate_dim!r}"
            )
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _initializers(self):
        return {
            "kernel_initializer": keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            "bias_initializer": keras.initializers.get(
                keras.initializers.serialize(self.bias_initializer)
            ),
        }

    def build(self, inputs_shape):
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="intermediate_dense",
            **self._initializers(),
        )
        self.intermediate_dense.build(inputs_shape)
        self.output_dense = keras.layers.Dense(
            inputs_shape[-1], dtype=self.dtype_policy, name="output_dense", **self._initializers()
        )
        self.output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self.built = True

    def call(self, inputs):
        return self.output_dense(self.intermediate_dense(inputs))

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
