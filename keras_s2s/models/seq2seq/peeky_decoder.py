import keras
from keras import ops

from keras_s2s.models.seq2seq._utils import along_time
from keras_s2s.models.seq2seq.rnn_decoder import RNNDecoder


@keras.saving.register_keras_serializable(package="keras_s2s")
class PeekyDecoder(RNNDecoder):
    """The Peeky decoder: the encoder's summary fed to every step and to the output layer.

    The summary is the top encoder layer's final hidden state `[B, H]`; it is concatenated to
    the decoder inputs at every position and to the features the output layer reads. Args and
    call as `RNNDecoder`; `encoding` is `{"summary": [B, H]}`.

    References:
        Saitoh, 2018, "Deep Learning from Scratch 2", chapter 7 (Peeky).
    """

    def encoding(self, encoder_outputs, encoder_mask, encoder_states):
        del encoder_outputs, encoder_mask
        return {"summary": encoder_states[-1][0]}

    def _input_width(self, inputs_shape, encoding_shape):
        return inputs_shape[-1] + encoding_shape["summary"][-1]

    def _decoder_inputs(self, inputs, encoding):
        return ops.concatenate([inputs, along_time(encoding["summary"], inputs)], axis=-1)

    def _features(self, outputs, context, weights, encoding):
        del context
        return ops.concatenate(
            [outputs, along_time(encoding["summary"], outputs)], axis=-1
        ), weights
