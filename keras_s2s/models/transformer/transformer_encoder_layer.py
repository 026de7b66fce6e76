import keras
from keras import ops

from keras_s2s.layers.packing import Packing
from keras_s2s.models.transformer._transformer_layer import TransformerLayer


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerEncoderLayer(TransformerLayer):
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
        `[B, S, D]`. In training (without XLA) the position-wise parts run on the real positions
        only (`keras_s2s.layers.Packing`) and the output is 0 at padding positions.

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

    def build(self, encoder_sequence_shape):
        self._build_self_attention(encoder_sequence_shape)
        self._build_feedforward(encoder_sequence_shape)
        self.built = True

    def call(self, encoder_sequence, encoder_padding_mask=None, training=None):
        attention_mask = None
        if encoder_padding_mask is not None:
            attention_mask = ops.expand_dims(ops.cast(encoder_padding_mask, "bool"), 1)  # [B,1,S]
        # In training, the position-wise work runs on the real positions only.
        packing = Packing.for_mask(encoder_padding_mask, training)
        x = encoder_sequence if packing is None else packing.pack(encoder_sequence)
        x, _ = self._residual(
            x,
            lambda h: (
                self.self_attention(
                    h, attention_mask=attention_mask, query_packing=packing, training=training
                ),
            ),
            self.self_attention_dropout,
            self.self_attention_layer_norm,
            training,
        )
        x = self._feedforward_block(x, training)
        return x if packing is None else packing.unpack(x)

    def compute_output_shape(self, encoder_sequence_shape):
        return encoder_sequence_shape
