import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class PositionalEncoding(keras.layers.Layer):
    """Adds sinusoidal position encodings to a sequence of vectors.

    Position p's encoding has `PE[p, 2i] = sin(p / w^(2i/D))` and
    `PE[p, 2i+1] = cos(p / w^(2i/D))`, w = `max_wavelength`. It is computed in float32 (float16
    positions lose integer precision above 2048) and cast to the compute dtype before the
    addition.

    Shape letters: B batch, T sequence length, D width.

    Args:
        max_wavelength: float, w, the longest wavelength of the sinusoids.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, T, D]`.
        start_index: int or int32 scalar tensor, the position of `inputs[:, 0]`. A decode step
            at position t passes `[B, 1, D]` and `start_index=t` and gets position t's
            encoding; a tensor works inside `tf.while_loop` and under XLA.

    Returns:
        `inputs + PE[start_index : start_index + T]`, `[B, T, D]`.

    Example:
    ```python
    embedded = keras.layers.Embedding(100, 32)(np.ones((2, 7), "int32"))
    x = keras_s2s.layers.PositionalEncoding()(embedded)  # [2, 7, 32]
    ```

    References:
        Vaswani et al., 2017, "Attention Is All You Need", section 3.5.
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        if not max_wavelength > 1:
            raise ValueError(
                "`max_wavelength` must be greater than 1. "
                f"Received: max_wavelength={max_wavelength}"
            )
        self.max_wavelength = max_wavelength
        self.built = True

    def encoding(self, length, width, start_index=0):
        """The float32 encodings `[length, width]` of positions start_index.. ."""
        positions = ops.cast(ops.arange(length, dtype="int32") + start_index, "float32")
        channels = ops.arange(width, dtype="int32")
        # Channels 2i and 2i+1 share the frequency w^(-2i/D).
        exponents = ops.cast(channels - channels % 2, "float32") / float(width)
        frequencies = ops.power(1.0 / float(self.max_wavelength), exponents)
        angles = positions[:, None] * frequencies[None, :]
        return ops.where(ops.equal(channels % 2, 0), ops.sin(angles), ops.cos(angles))

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        start_index = ops.cast(start_index, "int32")
        encoding = self.encoding(shape[-2], inputs.shape[-1], start_index)
        return inputs + ops.cast(encoding, inputs.dtype)[None]

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
