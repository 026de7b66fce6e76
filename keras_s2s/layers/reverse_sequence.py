import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class ReverseSequence(keras.layers.Layer):
    """Reverses the real tokens of right-padded sequences; padding stays at the end.

    `[a, b, c, pad, pad]` becomes `[c, b, a, pad, pad]`: the "reversed source" trick of
    Sutskever et al. that puts the first source words next to the first target words.
    With `pad_id=None` whole rows are reversed, padding included (`[pad, pad, c, b, a]`), as
    the DLFS2 book does with its fixed-width sources.

    Args:
        pad_id: the padding id, or None to reverse whole rows.

    Call arguments:
        token_ids: int tensor `[B, S]`, right-padded with `pad_id`.

    Returns:
        int tensor `[B, S]`.

    Example:
    ```python
    layer = keras_s2s.layers.ReverseSequence()
    layer(np.array([[5, 6, 7, 0]]))  # [[7, 6, 5, 0]]
    ```

    References:
        Sutskever et al., 2014, "Sequence to Sequence Learning with Neural Networks".
    """

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id
        self.supports_masking = True

    def indices(self, token_ids):
        """int32 `[B, S]`: the position each output position reads (the reversal is its own
        inverse, so also where each input token goes)."""
        positions = ops.expand_dims(ops.arange(ops.shape(token_ids)[1], dtype="int32"), 0)
        if self.pad_id is None:
            lengths = ops.shape(token_ids)[1] + ops.zeros_like(positions[:, :1])
        else:
            real = ops.cast(ops.not_equal(token_ids, self.pad_id), "int32")
            lengths = ops.sum(real, axis=1, keepdims=True)
        index = ops.where(positions < lengths, lengths - 1 - positions, positions)
        return ops.broadcast_to(index, ops.shape(token_ids))

    def call(self, token_ids):
        if self.pad_id is None:
            return ops.flip(token_ids, axis=1)
        return ops.take_along_axis(token_ids, self.indices(token_ids), axis=1)

    def compute_output_shape(self, token_ids_shape):
        return token_ids_shape

    def get_config(self):
        config = super().get_config()
        config.update({"pad_id": self.pad_id})
        return config
