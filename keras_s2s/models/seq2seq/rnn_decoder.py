import keras

from keras_s2s.models.seq2seq.rnn_layers import RNN_LAYERS, run_rnn


@keras.saving.register_keras_serializable(package="keras_s2s")
class RNNDecoder(keras.layers.Layer):
    """The plain RNN decoder, and the base class of every decoder variant of `Seq2Seq`.

    Stacked RNN layers over the embedded target, started from the encoder's final states. Every
    variant answers the same call (after OpenNMT-tf's `rnn_decoder.py`): inputs, states and the
    encoding of the source in; output features, states and the attention weights (or None) out. The
    training call runs it over the whole target, a decode step over one position: one code
    path. A variant overrides the hooks `encoding`, `_decoder_inputs`, `_run_layer` and
    `_features`; `keras_s2s.models.seq2seq.DECODERS` maps the `decoder` config string to it.

    Shape letters: B batch, T target length, E input width, H `units`, S source length, M
    width of the encoder outputs, O feature width.

    Args:
        units: int, H.
        cell: "lstm", "gru" or "rnn" (tanh).
        num_layers: int, stacked layers.
        residual: bool, a skip connection around every layer from the second on.
        dropout: float, dropout on each layer's inputs during training (one mask per sequence).
        unroll: bool, unroll the loops over time (needs a static T).

    Call arguments:
        inputs: `[B, T, E]`, the embedded decoder inputs.
        initial_state: per layer, its states (`[h, c]` for an LSTM, `[h]` otherwise), `[B, H]`.
        encoding: the dict `encoding(...)` made from the encoder's results (None or empty for this
            plain decoder).

    Returns:
        A dict: `"features"` `[B, T, O]`, what the output layer reads; `"states"`, the final
        states per layer; and, for decoders with attention, `"attention"`, the last position's
        attention weights `[B, S]`.

    Example:
    ```python
    decoder = keras_s2s.models.seq2seq.RNNDecoder(32)
    state = [[np.zeros((2, 32), "float32")] * 2]
    outputs = decoder(np.ones((2, 5, 16), "float32"), state, {})
    outputs["features"]  # [2, 5, 32]
    ```

    References:
        Sutskever et al., 2014, "Sequence to Sequence Learning with Neural Networks".
    """

    #: Whether `call` returns attention weights (and `encoding` holds the encoder outputs).
    has_attention = False

    def __init__(
        self, units, cell="lstm", num_layers=1, residual=False, dropout=0.0, unroll=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.residual = residual
        self.dropout = dropout
        self.unroll = unroll
        self.rnn_layers = [self._make_layer(i) for i in range(num_layers)]

    def _make_layer(self, index):
        return RNN_LAYERS[self.cell](
            self.units,
            return_sequences=True,
            return_state=True,
            dropout=self.dropout,
            unroll=self.unroll,
            dtype=self.dtype_policy,
            name=f"rnn_{index}",
        )

    # === Hooks of the variants ===

    def encoding(self, encoder_outputs, encoder_mask, encoder_states):
        """What the decoder reads from the encoder at every step (a dict of tensors, constant
        during decoding): nothing for the plain decoder."""
        del encoder_outputs, encoder_mask, encoder_states
        return {}

    def precompute(self, encoding):
        """`encoding` plus what is computed once per source for the decode steps."""
        return encoding

    def _decoder_inputs(self, inputs, encoding):
        del encoding
        return inputs

    def _build_layer(self, index, input_shape, encoding_shape):
        del encoding_shape
        self.rnn_layers[index].build(input_shape)

    def _run_layer(self, index, x, states, encoding, training):
        """One stacked layer -> `(outputs, states, context or None, weights or None)`."""
        del encoding
        outputs, states = run_rnn(self.rnn_layers[index], x, states, training)
        return outputs, states, None, None

    def _build_features(self, outputs_shape, encoding_shape):
        del outputs_shape, encoding_shape

    def _features(self, outputs, context, weights, encoding):
        """The top outputs -> `(features, weights)` for the output layer."""
        del context, encoding
        return outputs, weights

    def _input_width(self, inputs_shape, encoding_shape):
        del encoding_shape
        return inputs_shape[-1]

    # === One code path for a sequence and for one position ===

    def build(self, inputs_shape, initial_state_shape=None, encoding_shape=None):
        encoding_shape = encoding_shape or {}
        width = self._input_width(inputs_shape, encoding_shape)
        for i in range(self.num_layers):
            self._build_layer(i, (inputs_shape[0], inputs_shape[1], width), encoding_shape)
            width = self.units
        self._build_features((inputs_shape[0], inputs_shape[1], self.units), encoding_shape)

    def call(self, inputs, initial_state, encoding=None, training=None):
        encoding = encoding or {}
        x = self._decoder_inputs(inputs, encoding)
        final_states, context, weights = [], None, None
        for i in range(self.num_layers):
            outputs, states, layer_context, layer_weights = self._run_layer(
                i, x, initial_state[i], encoding, training
            )
            if layer_context is not None:
                context, weights = layer_context, layer_weights
            x = outputs + x if self.residual and i > 0 else outputs
            final_states.append(states)
        features, weights = self._features(x, context, weights, encoding)
        outputs = {"features": features, "states": final_states}
        if self.has_attention:
            outputs["attention"] = weights
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "cell": self.cell,
                "num_layers": self.num_layers,
                "residual": self.residual,
                "dropout": self.dropout,
                "unroll": self.unroll,
            }
        )
        return config
