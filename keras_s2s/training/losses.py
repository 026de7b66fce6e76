import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Token cross-entropy averaged over real (non-padding) label tokens only.

    Padding labels get weight 0 and the sum is divided by the number of real tokens, so adding
    padding columns to a batch changes neither the loss nor its gradient.

    Args:
        pad_id: the label id that is padding.
        from_logits: whether predictions are logits (the keras-s2s models output logits).
    """

    def __init__(
        self, pad_id=0, from_logits=True, name="masked_sparse_categorical_crossentropy", **kwargs
    ):
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)
        self.pad_id = pad_id
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            mask = mask * ops.cast(sample_weight, "float32")
        return super().__call__(y_true, y_pred, sample_weight=mask)

    def call(self, y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits
        )

    def get_config(self):
        config = super().get_config()
        config.update({"pad_id": self.pad_id, "from_logits": self.from_logits})
        return config
