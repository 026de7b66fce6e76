"""What the Transformer's encoder and decoder layers share: arguments, sublayers, residuals."""

import keras

from keras_s2s.layers.multi_head_attention import MultiHeadAttention
from keras_s2s.models.transformer.positionwise_feed_forward import PositionwiseFeedForward


class TransformerLayer(keras.layers.Layer):
    """Base of `TransformerEncoderLayer` and `TransformerDecoderLayer` (see their docstrings
    for the arguments): stores and checks the arguments, builds the self-attention and
    feed-forward sublayers with their normalizations, and wraps a sublayer in its residual
    connection (post-norm or pre-norm)."""

    def __init__(
        self,
        intermediate_dim,
        num_heads,
        dropout=0.0,
        activation="relu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.self_attention_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="self_attention_dropout"
        )
        self.feedforward_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="feedforward_dropout"
        )

    def _initializers(self):
        return {
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    def _head_dim(self, sequence_shape):
        hidden_dim = sequence_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"The input width {hidden_dim} must be divisible by `num_heads`. "
                f"Received: num_heads={self.num_heads}"
            )
        return hidden_dim // self.num_heads

    def _attention(self, sequence_shape, name):
        return MultiHeadAttention(
            self.num_heads,
            self._head_dim(sequence_shape),
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name=name,
            **self._initializers(),
        )

    def _norm(self, shape, name):
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        norm.build(shape)
        return norm

    def _build_self_attention(self, sequence_shape):
        self.self_attention = self._attention(sequence_shape, "self_attention")
        self.self_attention.build(sequence_shape)
        self.self_attention_layer_norm = self._norm(sequence_shape, "self_attention_norm")

    def _build_feedforward(self, sequence_shape):
        self.feedforward = PositionwiseFeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="feedforward",
            **self._initializers(),
        )
        self.feedforward.build(sequence_shape)
        self.feedforward_layer_norm = self._norm(sequence_shape, "feedforward_norm")

    def _residual(self, x, sublayer, dropout, norm, training):
        """Post-norm `norm(x + dropout(sublayer(x)))` or pre-norm
        `x + dropout(sublayer(norm(x)))`; `sublayer` returns its output and any extras."""
        output, *extras = sublayer(norm(x) if self.normalize_first else x)
        x = x + dropout(output, training=training)
        return (x if self.normalize_first else norm(x)), extras

    def _feedforward_block(self, x, training):
        x, _ = self._residual(
            x,
            lambda h: (self.feedforward(h),),
            self.feedforward_dropout,
            self.feedforward_layer_norm,
            training,
        )
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalize_first": self.normalize_first,
                **self._initializers(),
            }
        )
        return config
