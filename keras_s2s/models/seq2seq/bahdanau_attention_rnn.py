import keras
from keras import ops

from keras_s2s.models.seq2seq._utils import as_list
from keras_s2s.models.seq2seq.rnn_layers import RNN_CELLS, num_states


@keras.saving.register_keras_serializable(package="keras_s2s")
class BahdanauAttentionRNN(keras.layers.Layer):
    """A recurrent layer with additive attention from the previous state, its context fed in.

    At each step t, with s the previous decoder hidden state and h_s the encoder outputs:

        e_s = v^T tanh(W1 h_s + W2 s)          (W1 h_s is computed once per source)
        a = softmax(e) over real source tokens (padding gets weight exactly 0)
        c = sum_s a_s h_s
        s' = RNNCell([y_{t-1}; c], s)

    The loop is written out (`keras.ops.while_loop`) because Keras 3's `RNN` takes no constants;
    every position runs `step`, and a one-position call (a decode step) is the same loop body
    without a loop around it.

    Shape letters: B batch, T target length, S source length, E input width, M memory width,
    H `units`.

    Args:
        units: int, H.
        cell: "lstm", "gru" or "rnn".
        attention_units: width of the additive score's hidden layer (default H).
        dropout: dropout on the cell inputs `[y_{t-1}; c]` during training, one mask per call
            (per sequence), as `keras.layers.RNN` applies it.
        unroll: bool, unroll the loop over time (needs a static T); faster on CPU for short
            targets.

    Call arguments:
        inputs: `[B, T, E]` (embedded decoder inputs).
        initial_state: list of `[B, H]` cell states.
        memory: `[B, S, M]` encoder outputs.
        memory_mask: bool `[B, S]`, True on real source tokens.
        memory_keys: optional `memory_keys(memory)`, computed once per source so that decode
            steps do not recompute it.

    Returns:
        `(outputs [B, T, H], contexts [B, T, M], final_weights [B, S], final_states)`: the
        last position's attention weights, and the final cell states.

    References:
        Bahdanau et al., 2015, "Neural Machine Translation by Jointly Learning to Align and
        Translate".
    """

    def __init__(
        self, units, cell="lstm", attention_units=None, dropout=0.0, unroll=False, **kwargs
    ):
        super().__init__(**kwargs)
        if cell not in RNN_CELLS:
            raise ValueError(
                f"`cell` must be one of {', '.join(RNN_CELLS)}. Received: cell={cell!r}"
            )
        self.units = units
        self.cell = cell
        self.attention_units = attention_units
        self.dropout = dropout
        self.unroll = unroll
        self.num_states = num_states(cell)
        self.rnn_cell = RNN_CELLS[cell](
            units, dropout=dropout, dtype=self.dtype_policy, name="rnn_cell"
        )
        size = attention_units or units
        self.memory_dense = keras.layers.Dense(size, dtype=self.dtype_policy, name="memory_dense")
        self.query_dense = keras.layers.Dense(
            size, use_bias=False, dtype=self.dtype_policy, name="query_dense"
        )
        self.softmax = keras.layers.Softmax(axis=-1, dtype=self.dtype_policy, name="softmax")

    def build(
        self,
        inputs_shape,
        initial_state_shape=None,
        memory_shape=None,
        memory_mask_shape=None,
        memory_keys_shape=None,
    ):
        self.memory_dense.build(memory_shape)
        self.query_dense.build((None, self.units))
        self.rnn_cell.build((None, inputs_shape[-1] + memory_shape[-1]))
        self.v = self.add_weight(
            shape=(self.attention_units or self.units,), initializer="glorot_uniform", name="v"
        )

    def memory_keys(self, memory):
        """W1 h_s, `[B, S, A]`: computed once per source, reused at every step."""
        return self.memory_dense(memory)

    def step(self, x, states, memory, memory_keys, memory_mask, training=False):
        """One step: `x [B, E]`, states -> `(output [B, H], context [B, M], weights [B, S],
        states)`."""
        query = ops.expand_dims(self.query_dense(states[0]), 1)
        scores = ops.sum(ops.tanh(memory_keys + query) * self.v, axis=-1)
        weights = self.softmax(scores, mask=memory_mask)
        context = ops.sum(ops.expand_dims(weights, -1) * memory, axis=1)
        output, new_states = self.rnn_cell(
            ops.concatenate([x, context], axis=-1), list(states), training=training
        )
        return output, context, weights, as_list(new_states)

    def call(self, inputs, initial_state, memory, memory_mask, memory_keys=None, training=None):
        # The cell caches its dropout mask for reuse at every step. As keras.layers.RNN does,
        # draw it once per call before the loop (a mask first drawn inside the while loop's body
        # cannot be read outside it) and clear it after, so no call reads another's tensor.
        if training and self.dropout > 0:
            # Shaped like the cell's input [y_{t-1}; c], [B, E + M].
            self.rnn_cell.get_dropout_mask(ops.concatenate([inputs[:, 0], memory[:, 0]], axis=-1))
        try:
            keys = self.memory_keys(memory) if memory_keys is None else memory_keys
            return self._loop(inputs, initial_state, memory, keys, memory_mask, training)
        finally:
            self.rnn_cell.reset_dropout_mask()
            self.rnn_cell.reset_recurrent_dropout_mask()

    def _loop(self, inputs, initial_state, memory, keys, memory_mask, training):
        if self.unroll or inputs.shape[1] == 1:
            if inputs.shape[1] is None:
                raise ValueError("`unroll=True` needs a static target length; got None")
            states, outputs, contexts = list(initial_state), [], []
            for t in range(inputs.shape[1]):
                output, context, weights, states = self.step(
                    inputs[:, t], states, memory, keys, memory_mask, training
                )
                outputs.append(output)
                contexts.append(context)
            return ops.stack(outputs, axis=1), ops.stack(contexts, axis=1), weights, states

        # A while loop writing fixed-size [B, T, .] buffers in place: it compiles with XLA
        # (bounded iterations) and keeps no growing lists.
        steps = ops.shape(inputs)[1]
        time = ops.expand_dims(ops.arange(steps, dtype="int32"), 0)  # [1, T]
        outputs = ops.zeros_like(inputs[..., :1]) * ops.zeros_like(initial_state[0])[:, None, :]
        contexts = ops.zeros_like(inputs[..., :1]) * ops.zeros_like(memory[:, :1, :])
        weights = ops.zeros_like(memory[..., 0])  # [B, S]

        def cond(t, states, outputs, contexts, weights):
            return t < steps

        def body(t, states, outputs, contexts, weights):
            x = ops.take(inputs, t, axis=1)
            output, context, weights, states = self.step(
                x, states, memory, keys, memory_mask, training
            )
            # Write column t (slice_update has no gradient in TensorFlow; `where` does).
            at_t = ops.expand_dims(ops.equal(time, t), -1)
            outputs = ops.where(at_t, ops.expand_dims(output, 1), outputs)
            contexts = ops.where(at_t, ops.expand_dims(context, 1), contexts)
            return t + 1, states, outputs, contexts, weights

        _, states, outputs, contexts, weights = ops.while_loop(
            cond,
            body,
            (ops.convert_to_tensor(0, "int32"), list(initial_state), outputs, contexts, weights),
            maximum_iterations=steps,
        )
        return outputs, contexts, weights, list(states)

    def compute_output_shape(
        self,
        inputs_shape,
        initial_state_shape=None,
        memory_shape=None,
        memory_mask_shape=None,
        memory_keys_shape=None,
    ):
        batch, steps = inputs_shape[0], inputs_shape[1]
        return (
            (batch, steps, self.units),
            (batch, steps, memory_shape[-1]),
            (batch, memory_shape[1]),
            [(batch, self.units)] * self.num_states,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "cell": self.cell,
                "attention_units": self.attention_units,
                "dropout": self.dropout,
                "unroll": self.unroll,
            }
        )
        return config
