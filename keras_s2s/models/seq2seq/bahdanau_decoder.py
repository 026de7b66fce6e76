import keras
from keras import ops

from keras_s2s.models.seq2seq.bahdanau_attention_rnn import BahdanauAttentionRNN
from keras_s2s.models.seq2seq.rnn_decoder import RNNDecoder


@keras.saving.register_keras_serializable(package="keras_s2s")
class BahdanauDecoder(RNNDecoder):
    """Additive attention from the previous state, its context fed into the first RNN.

    The first layer is a `BahdanauAttentionRNN`; the layers above it are plain RNNs. The output
    layer reads `[h_t; c_t]`, the top decoder output and the context of step t. Args and call
    as `RNNDecoder`; `encoding` is `{"outputs": [B, S, M], "mask": bool [B, S]}`, plus `"keys"`
    (W1 h_s) once `precompute`d.

    References:
        Bahdanau et al., 2015, "Neural Machine Translation by Jointly Learning to Align and
        Translate".
    """

    has_attention = True

    def _make_layer(self, index):
        if index > 0:
            return super()._make_layer(index)
        return BahdanauAttentionRNN(
            self.units,
            cell=self.cell,
            dropout=self.dropout,
            unroll=self.unroll,
            dtype=self.dtype_policy,
            name="attention_rnn",
        )

    def encoding(self, encoder_outputs, encoder_mask, encoder_states):
        del encoder_states
        return {"outputs": encoder_outputs, "mask": encoder_mask}

    def precompute(self, encoding):
        return {**encoding, "keys": self.rnn_layers[0].memory_keys(encoding["outputs"])}

    def _build_layer(self, index, input_shape, encoding_shape):
        if index > 0:
            return super()._build_layer(index, input_shape, encoding_shape)
        self.rnn_layers[0].build(input_shape, memory_shape=encoding_shape["outputs"])

    def _run_layer(self, index, x, states, encoding, training):
        if index > 0:
            return super()._run_layer(index, x, states, encoding, training)
        outputs, contexts, weights, states = self.rnn_layers[0](
            x, states, encoding["outputs"], encoding["mask"], memory_keys=encoding.get("keys"),
            training=training,
        )  # fmt: skip
        return outputs, states, contexts, weights

    def _features(self, outputs, context, weights, encoding):
        del encoding
        return ops.concatenate([outputs, context], axis=-1), weights
