import keras
from keras import ops

from keras_s2s.layers.multi_head_attention import MultiHeadAttention
from keras_s2s.models.transformer.positionwise_feed_forward import PositionwiseFeedForward


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerEncoderLayer(keras.layers.Layer):
    """One Transformer encoder layer: self-attention, then a position-wise feed-forward network.

    Each sublayer is wrapped in a residual connection with dropout on its output and a layer
    normalization: after the addition as in the paper (post-norm,
    `x = LayerNorm(x + Dropout(Sublayer(x)))`), or before the sublayer with
    `normalize_first=True` (pre-norm, `x = x + Dropout(Sublayer(LayerNorm(x)))`; a stack of them
    then needs a final normalization). Padding positions are masked out of the attention: a
    real position's output does not depend on the padding.

    Shape letters: B batch, S source length, D width (the input's, kept).

    Args:
        intermediate_dim: int, the width of the feed-forward hidden layer.
        num_heads: int, attention heads; D must be divisible by it (heads are D / H wide).
        dropout: float, dropout on the attention weights and on each sublayer's output.
        activation: activation of the feed-forward hidden layer.
        layer_norm_epsilon: float, epsilon of the layer normalizations.
        normalize_first: bool, pre-norm instead of the paper's post-norm.
        kernel_initializer: initializer of the dense kernels.
        bias_initializer: initializer of the dense biases.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        encoder_sequence: `[B, S, D]`.
        encoder_padding_mask: bool `[B, S]`, True on real tokens (None: no padding).
        training: bool, dropout if True.

    Returns:
        `[B, S, D]`.

    Example:
    ```python
    layer = keras_s2s.models.transformer.TransformerEncoderLayer(
        intermediate_dim=64, num_heads=4)
    x = layer(np.ones((2, 7, 32), "float32"), encoder_padding_mask=np.ones((2, 7), bool))
    ```

    References:
        Vaswani et al., 2017, "Attention Is All You Need", section 3.1;
        Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture" (pre-norm).
    """

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

    def build(self, encoder_sequence_shape):
        hidden_dim = encoder_sequence_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"The input width {hidden_dim} must be divisible by `num_heads`. "
                f"Received: num_heads={self.num_heads}"
            )
        self.self_attention = MultiHeadAttention(
            self.num_heads,
            hidden_dim // self.num_heads,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="self_attention",
            **self._initializers(),
        )
        self.self_attention.build(encoder_sequence_shape)
        self.self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="self_attention_norm"
        )
        self.self_attention_layer_norm.build(encoder_sequence_shape)
        self.feedforward = PositionwiseFeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="feedforward",
            **self._initializers(),
        )
        self.feedforward.build(encoder_sequence_shape)
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="feedforward_norm"
        )
        self.feedforward_layer_norm.build(encoder_sequence_shape)
        self.built = True

    def call(self, encoder_sequence, encoder_padding_mask=None, training=None):
        attention_mask = None
        if encoder_padding_mask is not None:
            attention_mask = ops.expand_dims(ops.cast(encoder_padding_mask, "bool"), 1)  # [B,1,S]

        x = encoder_sequence
        residual = x
        if self.normalize_first:
            x = self.self_attention_layer_norm(x)
        x = self.self_attention(x, attention_mask=attention_mask, training=training)
        x = residual + self.self_attention_dropout(x, training=training)
        if not self.normalize_first:
            x = self.self_attention_layer_norm(x)

        residual = x
        if self.normalize_first:
            x = self.feedforward_layer_norm(x)
        x = self.feedforward(x)
        x = residual + self.feedforward_dropout(x, training=training)
        if not self.normalize_first:
            x = self.feedforward_layer_norm(x)
        return x

    def compute_output_shape(self, encoder_sequence_shape):
        return encoder_sequence_shape

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
