import keras
from keras import ops

from keras_s2s.models.seq2seq.rnn_layers import RNN_LAYERS, num_states

#: How a bidirectional layer merges its two directions.
MERGE_MODES = ("concat", "sum", "ave")


@keras.saving.register_keras_serializable(package="keras_s2s")
class RNNEncoder(keras.layers.Layer):
    """Stacked (optionally bidirectional) RNN layers over an embedded source.

    Shape letters: B batch, S source length, E input width, H `units`, M output width (H, or
    2H for bidirectional layers merged by "concat").

    Args:
        units: int, H.
        cell: "lstm", "gru" or "rnn" (tanh).
        num_layers: int, stacked layers.
        bidirectional: bool, bidirectional layers.
        merge_mode: how the two directions merge: "concat" (outputs 2H; the final states are
            bridged to H by a linear layer per state), "sum" or "ave".
        residual: bool, a skip connection around every layer from the second on.
        dropout: float, dropout on each layer's inputs during training (one mask per sequence).
        unroll: bool, unroll the loops over time (needs a static S).

    Call arguments:
        inputs: `[B, S, E]`.
        mask: optional bool `[B, S]`, True on real tokens.

    Returns:
        `(outputs [B, S, M], states)`: the top layer's outputs and, per layer, its final states
        (`[h, c]` for an LSTM, `[h]` otherwise; each `[B, H]`).

    Example:
    ```python
    encoder = keras_s2s.models.seq2seq.RNNEncoder(32, bidirectional=True)
    outputs, states = encoder(np.ones((2, 7, 16), "float32"))  # [2, 7, 64], [[h, c]]
    ```
    """

    def __init__(
        self,
        units,
        cell="lstm",
        num_layers=1,
        bidirectional=False,
        merge_mode="concat",
        residual=False,
        dropout=0.0,
        unroll=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"`merge_mode` must be one of {', '.join(MERGE_MODES)}. "
                f"Received: merge_mode={merge_mode!r}"
            )
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.residual = residual
        self.dropout = dropout
        self.unroll = unroll
        self.supports_masking = True  # Reads the mask; its outputs carry none.
        self.rnn_layers = []
        self.bridges = []
        for i in range(num_layers):
            layer = self._rnn_layer(f"rnn_{i}")
            if bidirectional:
                # The backward layer is built here, not by `Bidirectional` (which copies the
                # forward layer through Keras's serialization; while a model loads, that copy
                # can come back as the forward layer itself when an object id is reused, and
                # the load fails at random).
                layer = keras.layers.Bidirectional(
                    layer,
                    merge_mode=merge_mode,
                    backward_layer=self._rnn_layer(f"backward_rnn_{i}", go_backwards=True),
                    dtype=self.dtype_policy,
                    name=f"birnn_{i}",
                )
                if unroll:
                    # Keras 3.15's unrolled loop zeroes masked outputs with the mask in forward
                    # order while a backward layer's outputs are reversed, zeroing real steps
                    # instead. For right-padded sources, the backward layer's padded steps come
                    # first and already output zeros, so the zeroing is not needed.
                    layer.backward_layer.zero_output_for_mask = False
            self.rnn_layers.append(layer)
            if bidirectional and merge_mode == "concat":
                self.bridges.append(
                    [
                        keras.layers.Dense(units, dtype=self.dtype_policy, name=f"bridge_{i}_{k}")
                        for k in range(num_states(cell))
                    ]
                )

    def build(self, inputs_shape, mask_shape=None):
        shape = tuple(inputs_shape)
        width = self.compute_output_shape(inputs_shape)[0][-1]
        for i, layer in enumerate(self.rnn_layers):
            layer.build(shape)
            for bridge in self.bridges[i] if self.bridges else []:
                bridge.build((shape[0], 2 * self.units))
            shape = (*shape[:2], width)

    def _merge_directions(self, index, states):
        """Bidirectional final states `[fwd..., bwd...]` -> decoder-sized states `[B, H]`."""
        half = len(states) // 2
        forward, backward = states[:half], states[half:]
        if self.merge_mode == "concat":
            return [
                bridge(ops.concatenate([f, b], axis=-1))
                for bridge, f, b in zip(self.bridges[index], forward, backward, strict=True)
            ]
        if self.merge_mode == "sum":
            return [f + b for f, b in zip(forward, backward, strict=True)]
        return [(f + b) / 2.0 for f, b in zip(forward, backward, strict=True)]

    def _rnn_layer(self, name, go_backwards=False):
        return RNN_LAYERS[self.cell](
            self.units,
            return_sequences=True,
            return_state=True,
            go_backwards=go_backwards,
            dropout=self.dropout,
            unroll=self.unroll,
            dtype=self.dtype_policy,
            name=name,
        )

    def call(self, inputs, mask=None, training=None):
        x, final_states = inputs, []
        for i, layer in enumerate(self.rnn_layers):
            outputs, *states = layer(x, mask=mask, training=training)
            x = outputs + x if self.residual and i > 0 else outputs
            final_states.append(self._merge_directions(i, states) if self.bidirectional else states)
        return x, final_states

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, inputs_shape, mask_shape=None):
        width = self.units * (2 if self.bidirectional and self.merge_mode == "concat" else 1)
        state = (inputs_shape[0], self.units)
        return (
            (*inputs_shape[:2], width),
            [[state] * num_states(self.cell) for _ in range(self.num_layers)],
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "cell": self.cell,
                "num_layers": self.num_layers,
                "bidirectional": self.bidirectional,
                "merge_mode": self.merge_mode,
                "residual": self.residual,
                "dropout": self.dropout,
                "unroll": self.unroll,
            }
        )
        return config
