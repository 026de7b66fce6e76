import keras
import tensorflow as tf
from keras import ops


def smoothed_cross_entropy_with_logits(labels, logits, label_smoothing=0.0):
    """The label-smoothed cross-entropy of each position, from float32 logits, with one fused
    gradient.

    With eps = `label_smoothing`, V = the vocabulary and lse = logsumexp(logits):

        loss = (1 - eps) * -log p(label) + eps * mean over the V ids of -log p(id)
             = lse - (1 - eps) * logits[label] - eps * mean(logits)
        d loss / d logits = softmax(logits) - (1 - eps) * one_hot(label) - eps / V

    The softmax of the forward pass is kept for the backward pass, and the gradient is one
    tensor: autodiff of the same formula would sum three `[B, T, V]` gradients, and the
    sparse cross-entropy kernel would add a second logsumexp.

    Args:
        labels: int `[...]`, ids in [0, V).
        logits: float32 `[..., V]`.
        label_smoothing: eps in [0, 1).

    Returns:
        float32 `[...]`.
    """
    eps = float(label_smoothing)
    labels = ops.cast(labels, "int32")
    logits = tf.convert_to_tensor(logits)  # A variable's value: the gradient is the logits'.
    vocabulary_size = logits.shape[-1]

    @ops.custom_gradient
    def cross_entropy(logits):
        peak = ops.max(logits, axis=-1, keepdims=True)
        exp = ops.exp(logits - peak)
        total = ops.sum(exp, axis=-1, keepdims=True)
        lse = ops.squeeze(peak + ops.log(total), -1)
        picked = ops.squeeze(ops.take_along_axis(logits, labels[..., None], axis=-1), -1)
        loss = lse - (1.0 - eps) * picked
        if eps:
            loss = loss - eps * ops.mean(logits, axis=-1)

        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            grad = exp / total - (1.0 - eps) * ops.one_hot(labels, vocabulary_size)
            if eps:
                grad = grad - eps / vocabulary_size
            return grad * upstream[..., None]

        return loss, gradient

    return cross_entropy(logits)


@keras.saving.register_keras_serializable(package="keras_s2s")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Token cross-entropy averaged over real (non-padding) label tokens only.

    Padding labels get weight 0 and the sum is divided by the number of real tokens, so adding
    padding columns to a batch changes neither the loss nor its gradient. Under a strategy with
    several replicas, the divisor is the real tokens of the global batch (all replicas'), so
    the gradient is the one device's on the same global batch.

    With label smoothing eps, each real token's target distribution over the V vocabulary ids
    is `(1 - eps) * one_hot(label) + eps / V` (Keras's `CategoricalCrossentropy` convention:
    the label keeps 1 - eps + eps/V, every id, pad and bos included, gets eps/V), so the loss of
    a token is

        (1 - eps) * -log p(label) + eps * mean over the V ids of -log p(id)

    computed in float32 whatever the dtype of the predictions (float16 logits under mixed
    precision). Its minimum is the entropy of the smoothed target, not 0.

    Args:
        pad_id: the label id that is padding.
        from_logits: whether predictions are logits (the keras-s2s models output logits).
        label_smoothing: eps in [0, 1); 0 is the plain cross-entropy (the Transformer paper
            uses 0.1).

    Call arguments:
        y_true: int labels `[B, T]`.
        y_pred: logits (or probabilities) `[B, T, V]`.
        sample_weight: optional `[B, T]` weights, multiplied with the padding mask.

    Example:

    >>> loss = keras_s2s.training.MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
        section 7; Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 5.4.
    """

    def __init__(
        self,
        pad_id=0,
        from_logits=True,
        label_smoothing=0.0,
        name="masked_sparse_categorical_crossentropy",
        **kwargs,
    ):
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)
        if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.pad_id = pad_id
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            mask = mask * ops.cast(sample_weight, "float32")
        replica = tf.distribute.get_replica_context()
        if replica is None or replica.num_replicas_in_sync == 1:
            return super().__call__(y_true, y_pred, sample_weight=mask)
        # Several replicas (one step of a strategy): Keras sums the replicas' gradients and
        # expects each replica's loss divided by the replica count, so a mean of per-replica
        # means; replicas with different numbers of real tokens would weigh their tokens
        # differently. This replica's token losses over the global batch's real tokens sum,
        # across replicas, to the mean over the global batch, as under one device.
        total = ops.sum(self.call(y_true, y_pred) * mask)
        count = replica.all_reduce("sum", ops.sum(mask))
        return ops.divide_no_nan(total, count)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        eps = self.label_smoothing
        if self.from_logits:
            return smoothed_cross_entropy_with_logits(y_true, y_pred, eps)
        if not eps:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        epsilon = keras.config.epsilon()
        probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        log_probs = ops.log(ops.clip(probs, epsilon, 1.0 - epsilon))
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1)  # [B, T]
        uniform = -ops.mean(log_probs, axis=-1)  # [B, T]
        return (1.0 - eps) * nll + eps * uniform

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pad_id": self.pad_id,
                "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing,
            }
        )
        return config
