import math
import warnings

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with a key/value cache (fixed-size or growing).

    `Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh)) V` in each of H heads, on learned
    projections of the query and of the value sequence, then an output projection back to the
    query width D: `MultiHead(Q, V) = concat(head_1, ..., head_H) W_O`.

    Shape letters: B batch, T queries, S keys/values, L cache length, D query width, E value
    width, H `num_heads`, Dh `key_dim`.

    The attention mask is boolean, True where a query may attend to a key; the softmax applies
    it (`keras.layers.Softmax(mask=)` fills masked scores with a value that suits the dtype),
    so a masked key gets weight exactly 0. The softmax is computed in float32 under mixed
    precision. Dropout applies to the attention weights in training.

    Keys and values come from one of three places, so the training call and a cached decode
    step run the same code:
    - no `cache`: projected from `value` (or from `query`: self-attention);
    - `cache=(key, value)` with `cache_update_index=None`: used as they are, e.g. the
      cross-attention keys/values of a source, computed once by `project_key_value(memory)`;
    - `cache=(key, value)` `[B, H, L, Dh]` with `cache_update_index=i`: `value`'s (or
      `query`'s) projections are written into the cache at positions `i..i+T-1` with
      `ops.slice_update` (fixed shapes: XLA and TFLite builtins), and the query attends over
      the whole cache (a causal mask hides positions not yet written); with
      `grow_cache=True` they are appended instead (the cache holds the positions before `i`,
      L = i, and comes back L + T long): a step then reads and copies only the positions
      decoded so far, not `max_length` of them.

    Caches are heads-first (`[B, H, L, Dh]`, the layout the attention products read), so a
    decode step never transposes a whole cache.

    Args:
        num_heads: int, H.
        key_dim: int, Dh, the width of each head's queries, keys and values.
        dropout: float, dropout rate on the attention weights.
        use_bias: bool, biases in the four projections.
        kernel_initializer: initializer of the projection kernels.
        bias_initializer: initializer of the projection biases.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, T, D]`.
        value: `[B, S, E]` (or `[B, T, E]` when writing a cache); None: `query`.
        attention_mask: bool, broadcastable to `[B, T, S]` (S = L with a cache), True = may
            attend. Build it from a padding mask `[B, S]` and a causal mask combined with `&`.
        cache: optional `(key, value)`, each `[B, H, S, Dh]` (see above).
        cache_update_index: int or int32 scalar tensor, where to write into `cache`.
        grow_cache: bool, append to `cache` instead of writing into it (see above).
        return_attention_scores: bool, also return the attention weights.
        query_packing: a `keras_s2s.layers.Packing` of the queries' real positions: `query`
            is then `[N, D]`, those positions only, and so is the output (the projections
            skip the padding; attention runs on the unpacked `[B, T, ...]` layout).
        value_packing: a `Packing` of `value`'s real positions: `value` is then `[N_S, E]`.
        training: bool, dropout on the attention weights if True.

    Returns:
        `output` `[B, T, D]` (`[N, D]` with `query_packing`); with a `cache`, `(output, cache)`
        (the updated cache); with `return_attention_scores`, the weights `[B, H, T, S]` are
        appended to the tuple.

    Example:
    ```python
    attention = keras_s2s.layers.MultiHeadAttention(num_heads=4, key_dim=8)
    query, memory = np.ones((2, 5, 32), "float32"), np.ones((2, 7, 32), "float32")
    memory_mask = np.array([[True] * 7, [True] * 3 + [False] * 4])
    output = attention(query, memory, attention_mask=memory_mask[:, None, :])  # [2, 5, 32]
    key_value = attention.project_key_value(memory)  # once per source
    step = attention(query[:, :1], attention_mask=memory_mask[:, None, :], cache=key_value)
    ```

    References:
        Vaswani et al., 2017, "Attention Is All You Need", section 3.2.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # float32 whatever the policy: a float16 softmax over long rows loses mass.
        self.softmax = keras.layers.Softmax(axis=-1, dtype="float32", name="softmax")
        self.attention_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="attention_dropout"
        )

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            bias_initializer=keras.initializers.get(
                keras.initializers.serialize(self.bias_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape=None):
        width = query_shape[-1]
        # Without `value` (self-attention, or a precomputed cache), values are query-wide.
        value_width = width if value_shape is None else value_shape[-1]
        units = self.num_heads * self.key_dim
        self.query_dense = self._dense(units, "query")
        self.query_dense.build((None, None, width))
        self.key_dense = self._dense(units, "key")
        self.key_dense.build((None, None, value_width))
        self.value_dense = self._dense(units, "value")
        self.value_dense.build((None, None, value_width))
        self.output_dense = self._dense(width, "output")
        self.output_dense.build((None, None, units))
        self.built = True

    def _project(self, x, denses, scale=None, packing=None):
        """`x` `[B, T, E]` through several same-input projections in one matmul:
        `x [W_1 | W_2 | ...] + [b_1 | b_2 | ...]` -> `[B, T, len(denses), H, Dh]`. With a
        `packing`, `x` is `[N, E]` (real positions) and the result is unpacked to `[B, T, ...]`.

        One `[B*T, E] x [E, n*H*Dh]` product instead of n: fewer, larger matmuls, and in the
        backward pass one input gradient instead of n summed. The weights stay separate
        (`query`, `key`, `value`); concatenating them copies n*E*H*Dh numbers, not activations.
        `scale` multiplies the first projection (the queries' 1/sqrt(Dh)) through its weights.
        """
        kernels = [ops.cast(dense.kernel, self.compute_dtype) for dense in denses]
        biases = [ops.cast(dense.bias, self.compute_dtype) for dense in denses if dense.use_bias]
        if scale is not None:
            kernels[0] = kernels[0] * scale
            biases[:1] = [b * scale for b in biases[:1]]
        kernel = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, axis=-1)
        y = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), kernel)  # [B*T or N, n*H*Dh]
        if biases:
            y = y + (biases[0] if len(biases) == 1 else ops.concatenate(biases, axis=-1))
        if packing is None:
            shape = ops.shape(x)
        else:
            y = packing.unpack(y)
            shape = ops.shape(y)
        return ops.reshape(y, (shape[0], shape[1], len(denses), self.num_heads, self.key_dim))

    @staticmethod
    def _heads_first(projected):
        """`[B, T, n, H, Dh]` -> n tensors `[B, H, T, Dh]`, with one transpose (unstacking the
        leading axis; its gradient is a stack, where slicing's would pad zeros)."""
        return ops.unstack(ops.transpose(projected, (2, 0, 3, 1, 4)), axis=0)

    def project_key_value(self, value):
        """`value` `[B, S, E]` -> `(key, value)` projections, each `[B, H, S, Dh]`: what a
        source's cross-attention reuses at every decode step (`cache=` without an index)."""
        key, value = self._heads_first(self._project(value, [self.key_dense, self.value_dense]))
        return key, value

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        query_packing=None,
        value_packing=None,
        training=None,
        grow_cache=False,
    ):
        if cache is None and cache_update_index is not None:
            raise ValueError(
                "`cache_update_index` needs a `cache`. "
                f"Received: cache=None, cache_update_index={cache_update_index}"
            )
        # Scaling the queries (through their weights), not the scores, keeps float16
        # products small.
        scale = 1.0 / math.sqrt(self.key_dim)
        key_value_denses = [self.key_dense, self.value_dense]
        if cache is not None and cache_update_index is None:
            # Precomputed keys/values (cross-attention while decoding): project the query only.
            (queries,) = self._heads_first(
                self._project(query, [self.query_dense], scale, query_packing)
            )
            keys, values = cache
        elif value is None:
            # Self-attention: queries, keys and values of `query` in one product.
            queries, keys, values = self._heads_first(
                self._project(query, [self.query_dense] + key_value_denses, scale, query_packing)
            )
        else:
            (queries,) = self._heads_first(
                self._project(query, [self.query_dense], scale, query_packing)
            )
            keys, values = self._heads_first(
                self._project(value, key_value_denses, packing=value_packing)
            )
        if cache is not None and cache_update_index is not None:
            keys, values = ops.cast(keys, cache[0].dtype), ops.cast(values, cache[1].dtype)
            if grow_cache:  # The positions so far, then the new ones.
                keys = ops.concatenate([cache[0], keys], axis=2)
                values = ops.concatenate([cache[1], values], axis=2)
            else:  # Written into the fixed-size cache `[B, H, L, Dh]`.
                start = [0, 0, ops.cast(cache_update_index, "int32"), 0]
                keys = ops.slice_update(cache[0], start, keys)
                values = ops.slice_update(cache[1], start, values)
            cache = (keys, values)
        if cache is not None:
            keys, values = ops.cast(keys, self.compute_dtype), ops.cast(values, self.compute_dtype)

        # Q K^T without transposing K (a batched matmul with adjoint keys).
        scores = ops.cast(ops.einsum("bhtd,bhsd->bhts", queries, keys), "float32")
        mask = None
        if attention_mask is not None:
            mask = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)  # [B, 1, T, S]
        if grow_cache:
            with warnings.catch_warnings():
                # A growing cache's first step attends over one position (bos), which
                # Keras's softmax warns of (an axis of size 1); that is the right result.
                warnings.filterwarnings("ignore", "You are using a softmax over axis")
                weights = self.softmax(scores, mask=mask)
        else:
            weights = self.softmax(scores, mask=mask)
        weights = ops.cast(weights, self.compute_dtype)  # [B, H, T, S]
        dropped = self.attention_dropout(weights, training=training)
        context = ops.matmul(dropped, values)  # [B, H, T, Dh]
        context = ops.transpose(context, (0, 2, 1, 3))  # [B, T, H, Dh]
        shape = ops.shape(context)
        context = ops.reshape(context, (shape[0], shape[1], self.num_heads * self.key_dim))
        if query_packing is not None:
            context = query_packing.pack(context)  # [N, H*Dh]
        output = self.output_dense(context)

        outputs = (output,)
        if cache is not None:
            outputs += (cache,)
        if return_attention_scores:
            outputs += (weights,)
        return outputs[0] if len(outputs) == 1 else outputs

    # No `compute_output_shape`: the output structure depends on `cache` and
    # `return_attention_scores`, so Keras traces `call` for symbolic inputs.

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
