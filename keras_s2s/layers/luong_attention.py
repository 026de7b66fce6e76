import math

import keras
from keras import ops

#: The score functions `LuongAttention` offers.
SCORES = ("dot", "general", "scaled", "concat")


@keras.saving.register_keras_serializable(package="keras_s2s")
class LuongAttention(keras.layers.Layer):
    """Global attention of decoder outputs over all encoder outputs (after the RNN).

    Scores of a query h_t against each memory vector h_s:
    `dot` h_t . h_s; `scaled` h_t . h_s / sqrt(d); `general` h_t W h_s; `concat`
    v^T tanh(W [h_t; h_s]) (additive). Source padding gets weight exactly 0.

    Shape letters: B batch, T queries, S memory length, D query width, M memory width.

    Args:
        score: "dot", "general", "scaled" or "concat".
        units: width of the additive ("concat") score's hidden layer.

    Call arguments:
        query: `[B, T, D]` (or `[B, D]` for one decoder step).
        memory: `[B, S, M]` (`dot`/`scaled` need M == D).
        memory_mask: bool `[B, S]`, True on real source tokens.
        memory_keys: optional `memory_keys(memory)`, computed once per source so that decode
            steps do not recompute it.

    Returns:
        `(context, weights)`: `[B, T, M]` and `[B, T, S]` (or `[B, M]`, `[B, S]`).

    Example:
    ```python
    attention = keras_s2s.layers.LuongAttention("general")
    context, weights = attention(query, memory, memory_mask)
    ```

    References:
        Luong et al., 2015, "Effective Approaches to Attention-based Neural Machine Translation".
    """

    def __init__(self, score="dot", units=None, **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(
                f"`score` must be one of {', '.join(SCORES)}. Received: score={score!r}"
            )
        self.score = score
        self.units = units
        self.softmax = keras.layers.Softmax(axis=-1, dtype=self.dtype_policy, name="softmax")

    def build(self, query_shape, memory_shape, memory_mask_shape=None, memory_keys_shape=None):
        query_dim, memory_dim = query_shape[-1], memory_shape[-1]
        if self.score in ("dot", "scaled") and query_dim != memory_dim:
            raise ValueError(
                f"score={self.score!r} needs equal query and memory widths; got {query_dim} and "
                f"{memory_dim}. Use score='general' or 'concat'."
            )
        if self.score == "general":
            self.kernel = self.add_weight(
                shape=(query_dim, memory_dim), initializer="glorot_uniform", name="kernel"
            )
        elif self.score == "concat":
            units = self.units or query_dim
            self.query_dense = keras.layers.Dense(
                units, use_bias=False, dtype=self.dtype_policy, name="query_dense"
            )
            self.query_dense.build(query_shape)
            self.memory_dense = keras.layers.Dense(
                units, dtype=self.dtype_policy, name="memory_dense"
            )
            self.memory_dense.build(memory_shape)
            self.v = self.add_weight(shape=(units,), initializer="glorot_uniform", name="v")

    def memory_keys(self, memory):
        """The memory side of the score, `[B, S, K]`: what each query is scored against."""
        if self.score == "concat":
            return self.memory_dense(memory)  # W_m h_s
        if self.score == "general":
            return ops.matmul(memory, ops.transpose(self.kernel))  # (W h_s), so h_t . W h_s
        if self.score == "scaled":
            return memory / math.sqrt(memory.shape[-1])
        return memory

    def _scores(self, query, keys):
        # query [B, T, D], keys [B, S, K] -> [B, T, S]
        if self.score == "concat":
            hidden = ops.expand_dims(self.query_dense(query), 2) + ops.expand_dims(keys, 1)
            return ops.sum(ops.tanh(hidden) * self.v, axis=-1)
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1)))

    def call(self, query, memory, memory_mask=None, memory_keys=None):
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)
        if memory_keys is None:
            memory_keys = self.memory_keys(memory)
        scores = self._scores(query, memory_keys)
        mask = None if memory_mask is None else ops.expand_dims(memory_mask, 1)
        weights = self.softmax(scores, mask=mask)
        context = ops.matmul(weights, memory)
        if single_step:
            return context[:, 0], weights[:, 0]
        return context, weights

    def compute_output_shape(
        self, query_shape, memory_shape, memory_mask_shape=None, memory_keys_shape=None
    ):
        if len(query_shape) == 2:
            return (query_shape[0], memory_shape[-1]), (query_shape[0], memory_shape[1])
        return (
            (query_shape[0], query_shape[1], memory_shape[-1]),
            (query_shape[0], query_shape[1], memory_shape[1]),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"score": self.score, "units": self.units})
        return config
