import keras
from keras import ops

from keras_s2s.layers.packing import Packing
from keras_s2s.models.transformer._transformer_layer import TransformerLayer


def causal_mask(query_length, key_length, start_index=0):
    """bool `[1, T, L]`: query i (at position `start_index + i`) may attend to keys 0..its
    position. Works with tensor lengths and a tensor `start_index` (cached decoding)."""
    positions = ops.arange(query_length, dtype="int32") + ops.cast(start_index, "int32")
    keys = ops.arange(key_length, dtype="int32")
    return ops.expand_dims(ops.greater_equal(positions[:, None], keys[None, :]), 0)


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerDecoderLayer(TransformerLayer):
    """One Transformer decoder layer: masked self-attention, cross-attention over the encoder
    outputs, then a position-wise feed-forward network.

    Each sublayer is wrapped in a residual connection with dropout on its output and a layer
    normalization, after the addition (post-norm, as in the paper) or before the sublayer
    (`normalize_first=True`). The self-attention mask is the causal mask `&` the decoder padding
    mask, so a position never sees a later one; the cross-attention mask is the source padding
    mask, so source padding gets weight exactly 0.

    One forward path serves training and decoding (as keras-hub's `TransformerDecoder.call`):
    a decode step is this call on one position, with a self-attention cache written at
    `cache_update_index` (or grown by a position) and the cross-attention keys/values computed
    once per source
    (`self.cross_attention.project_key_value(encoder_sequence)`).

    Shape letters: B batch, T target length, S source length, L cache length, D width, H heads,
    Dh = D / H.

    Args:
        intermediate_dim: int, the width of the feed-forward hidden layer.
        num_heads: int, H; D must be divisible by it.
        dropout: float, dropout on the attention weights and on each sublayer's output.
        **kwargs: passed on to the shared base layer: `activation` (of the feed-forward hidden
            layer), `layer_norm_epsilon`, `normalize_first` (bool, pre-norm instead of the
            paper's post-norm), `kernel_initializer`, `bias_initializer`, and the
            `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        decoder_sequence: `[B, T, D]` (T = 1 for a decode step).
        encoder_sequence: `[B, S, E]`, the encoder outputs; or None with `cross_key_value`.
        decoder_padding_mask: bool `[B, T]` (`[B, L]` with a cache), True on real tokens.
        encoder_padding_mask: bool `[B, S]`, True on real source tokens.
        cross_key_value: `(key, value)`, each `[B, H, S, Dh]`, precomputed from the encoder
            outputs by `cross_attention.project_key_value`; replaces `encoder_sequence`.
        self_attention_cache: `(key, value)`, each `[B, H, L, Dh]`: the self-attention
            keys/values of the positions decoded so far.
        cache_update_index: int or int32 scalar tensor, the position of
            `decoder_sequence[:, 0]`, where its keys/values are written into the cache.
        grow_cache: bool, append the new keys/values to a cache that holds exactly the
            positions before `cache_update_index` (L = `cache_update_index`) instead of
            writing them into a fixed-size one.
        return_attention_scores: bool, also return the cross-attention weights.
        training: bool, dropout if True.

    Returns:
        `outputs` `[B, T, D]` (in training without XLA, the position-wise parts run on the real
        positions only, `keras_s2s.layers.Packing`, and the outputs are 0 at padding); with a
        cache, `(outputs, self_attention_cache)` (updated); with `return_attention_scores`, the
        cross-attention weights `[B, H, T, S]` are appended.

    Example:
    ```python
    layer = keras_s2s.models.transformer.TransformerDecoderLayer(
        intermediate_dim=64, num_heads=4)
    memory = np.ones((2, 7, 32), "float32")
    y = layer(np.ones((2, 5, 32), "float32"), memory)  # [2, 5, 32]
    # Cached decoding, position 0 of at most 5:
    cache = (np.zeros((2, 4, 5, 8), "float32"),) * 2  # [B, H, L, Dh]
    kv = layer.cross_attention.project_key_value(memory)
    y0, cache = layer(np.ones((2, 1, 32), "float32"), cross_key_value=kv,
                      self_attention_cache=cache, cache_update_index=0)
    ```

    References:
        Vaswani et al., 2017, "Attention Is All You Need", section 3.1;
        Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture" (pre-norm).
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, **kwargs):
        super().__init__(intermediate_dim, num_heads, dropout=dropout, **kwargs)
        self.cross_attention_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="cross_attention_dropout"
        )

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        self._build_self_attention(decoder_sequence_shape)
        # Built from `cross_key_value` alone, the encoder outputs are taken to be D wide.
        self.cross_attention = self._attention(decoder_sequence_shape, "cross_attention")
        self.cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
        self.cross_attention_layer_norm = self._norm(decoder_sequence_shape, "cross_attention_norm")
        self._build_feedforward(decoder_sequence_shape)
        self.built = True

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        cross_key_value=None,
        self_attention_cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        training=None,
        grow_cache=False,
    ):
        if (encoder_sequence is None) == (cross_key_value is None):
            raise ValueError(
                "Pass exactly one of `encoder_sequence` and `cross_key_value`. Received: "
                f"encoder_sequence={encoder_sequence}, cross_key_value={cross_key_value}"
            )
        if (self_attention_cache is None) != (cache_update_index is None):
            raise ValueError(
                "`self_attention_cache` and `cache_update_index` go together. Received: "
                f"self_attention_cache={self_attention_cache}, "
                f"cache_update_index={cache_update_index}"
            )
        query_length = ops.shape(decoder_sequence)[1]
        if self_attention_cache is None:
            self_mask = causal_mask(query_length, query_length)  # [1, T, T]
        else:
            cache_length = ops.shape(self_attention_cache[0])[2]
            if grow_cache:
                cache_length = cache_length + query_length
            self_mask = causal_mask(query_length, cache_length, cache_update_index)  # [1, T, L]
        if decoder_padding_mask is not None:
            padding = ops.expand_dims(ops.cast(decoder_padding_mask, "bool"), 1)
            self_mask = ops.logical_and(self_mask, padding)  # [B, T, T or L]
        cross_mask = None
        if encoder_padding_mask is not None:
            cross_mask = ops.expand_dims(ops.cast(encoder_padding_mask, "bool"), 1)  # [B,1,S]

        # In training, the position-wise work runs on the real positions only.
        packing = memory_packing = None
        if self_attention_cache is None:
            packing = Packing.for_mask(decoder_padding_mask, training)
            if encoder_sequence is not None:
                memory_packing = Packing.for_mask(encoder_padding_mask, training)
        packed_memory = encoder_sequence
        if memory_packing is not None:
            packed_memory = memory_packing.pack(encoder_sequence)

        def self_attention(x):
            outputs = self.self_attention(
                x,
                attention_mask=self_mask,
                cache=self_attention_cache,
                cache_update_index=cache_update_index,
                grow_cache=grow_cache,
                query_packing=packing,
                training=training,
            )
            return outputs if self_attention_cache is not None else (outputs,)

        def cross_attention(x):
            outputs = self.cross_attention(
                x,
                packed_memory,
                attention_mask=cross_mask,
                cache=cross_key_value,
                return_attention_scores=True,
                query_packing=packing,
                value_packing=memory_packing,
                training=training,
            )
            if cross_key_value is not None:
                outputs = (outputs[0], outputs[2])  # The unchanged keys/values are dropped.
            return outputs

        x, extras = self._residual(
            decoder_sequence if packing is None else packing.pack(decoder_sequence),
            self_attention,
            self.self_attention_dropout,
            self.self_attention_layer_norm,
            training,
        )
        new_cache = extras[0] if extras else None
        x, (cross_weights,) = self._residual(
            x, cross_attention, self.cross_attention_dropout, self.cross_attention_layer_norm,
            training,
        )  # fmt: skip
        x = self._feedforward_block(x, training)
        if packing is not None:
            x = packing.unpack(x)

        outputs = (x,)
        if new_cache is not None:
            outputs += (new_cache,)
        if return_attention_scores:
            outputs += (cross_weights,)
        return outputs[0] if len(outputs) == 1 else outputs

    # No `compute_output_shape`: the output structure depends on the cache and
    # `return_attention_scores`, so Keras traces `call` for symbolic inputs.
