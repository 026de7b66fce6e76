import keras
from keras import ops

from keras_s2s.layers.luong_attention import LuongAttention
from keras_s2s.models.seq2seq.rnn_decoder import RNNDecoder


@keras.saving.register_keras_serializable(package="keras_s2s")
class LuongDecoder(RNNDecoder):
    """Stacked RNNs, then global attention of the top outputs over all encoder outputs.

    The output layer reads `[h_t; c_t]`, the top decoder output and its context. Source padding
    gets weight exactly 0. Other arguments and the call are as `RNNDecoder`'s; `encoding` is
    `{"outputs": [B, S, M], "mask": bool [B, S]}`, plus `"keys"` (the memory side of the score)
    once `precompute`d.

    Args:
        attention_score: the score, "dot", "general", "scaled" or "concat" (see
            `keras_s2s.layers.LuongAttention`).

    References:
        Luong et al., 2015, "Effective Approaches to Attention-based Neural Machine Translation".
    """

    has_attention = True

    def __init__(self, units, attention_score="general", **kwargs):
        super().__init__(units, **kwargs)
        self.attention_score = attention_score
        self.attention = LuongAttention(attention_score, dtype=self.dtype_policy, name="attention")

    def encoding(self, encoder_outputs, encoder_mask, encoder_states):
        del encoder_states
        return {"outputs": encoder_outputs, "mask": encoder_mask}

    def precompute(self, encoding):
        return {**encoding, "keys": self.attention.memory_keys(encoding["outputs"])}

    def _build_features(self, outputs_shape, encoding_shape):
        self.attention.build(outputs_shape, encoding_shape["outputs"])

    def _features(self, outputs, context, weights, encoding):
        context, weights = self.attention(
            outputs, encoding["outputs"], encoding["mask"], memory_keys=encoding.get("keys")
        )
        return ops.concatenate([outputs, context], axis=-1), weights[:, -1]

    def get_config(self):
        config = super().get_config()
        config["attention_score"] = self.attention_score
        return config
